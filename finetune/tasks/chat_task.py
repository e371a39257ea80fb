"""Chat and instruction fine-tuning in the generation family (`finetune generate --format chat`): conversations
rendered with the chat template, loss on assistant turns only, replies scored and sampled as conversations.

`ChatSupport` comes before CausalLMTask in the family's task class (causal_lm.GenerationTask): every method here
handles chat data and hands anything else to CausalLMTask. data.format `chat`, or `auto` with a `messages` or
`conversations` column, makes a run a chat run; the run's recipe.yaml then says `format: chat`, which is how
`finetune predict`, `finetune chat` and `finetune evaluate` know it. Data layouts: chat_format.py; templates and
masks: chat_template.py; predict and the interactive chat: chat_predict.py.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from finetune.errors import UserError
from finetune.tasks import metrics as metric_registry
from finetune.tasks.answer_match import answer_hits, answer_scores, has_final_answers
from finetune.tasks.base import PredictRequest, Task, TaskFamily
from finetune.tasks.chat_format import (
    ChatLayout,
    Messages,
    chat_layout,
    conversation_problem,
    describe_problems,
    last_exchange,
    message_layout,
    readable,
    row_messages,
)
from finetune.tasks.chat_template import encode_example, encode_prompt, prepare_tokenizer, template_digest
from finetune.tasks.decoding import generate_continuations, predict_texts
from finetune.tasks.lm_inputs import hold_out_tail
from finetune.tasks.losses import example_losses

if TYPE_CHECKING:
    import datasets
    from transformers import PreTrainedModel, PreTrainedTokenizerBase, Trainer

    from finetune.config.schema import GenerationSection, Recipe
    from finetune.data.sources import LoadedData

logger = logging.getLogger("finetune")


def _spread(count: int, wanted: int) -> list[int]:
    wanted = min(wanted, count)
    return [index * count // wanted for index in range(wanted)]


class ChatSupport(Task):
    """Chat data for a causal LM task; put it before the task class in the bases (see the module notes), which
    gives the `super()` calls below their implementation (hence mypy's safe-super ignores)."""

    supports_chat = True  # `finetune predict --message` asks the family's task class
    chat: ChatLayout | None = None
    scored_losses: tuple[Any, list[tuple[float, int]]] | None = None  # CausalLMTask's (see there)

    # ---- data -------------------------------------------------------------------------------------------------

    def setup(self, data: LoadedData) -> None:
        section = self.recipe.data
        assert data.train is not None
        columns = list(data.train.column_names)
        layout = None
        if section.format == "chat":
            if bool(section.prompt_column) != bool(section.completion_column):
                raise UserError("Give both --prompt-column and --completion-column (or neither, to guess them).")
            pair = (section.prompt_column, section.completion_column) if section.prompt_column else None
            layout = chat_layout(columns, pair)  # type: ignore[arg-type]
            if layout is None:
                raise UserError(f"format chat needs a 'messages' or 'conversations' column, or a prompt/completion "
                                f"pair (question/answer, instruction/output, ...). Columns: {', '.join(columns)}. "
                                f"Pass --prompt-column and --completion-column.")
        elif section.format == "auto" and not (section.prompt_column or section.text_columns):
            layout = message_layout(columns)
        if layout is None:
            super().setup(data)  # type: ignore[safe-super]
            return
        if section.block_size:
            raise UserError("Chat conversations are not packed into blocks: packing needs attention kept within each "
                            "conversation, which this toolkit does not set up. Remove data.block_size; chat batches "
                            "are padded to their longest conversation, with lengths grouped.")
        self.chat, self.format, self.block_size = layout, "chat", section.max_length
        section.format = "chat"  # the run's recipe.yaml records it: predict, chat and evaluate read it there
        hold_out_tail(data, section.max_eval_samples)
        self.chat_data = data
        self.malformed: dict[str, str] = {}
        data.train = self._checked(data.train, "train", need_reply=True)
        data.eval = {name: self._checked(split, name, True) for name, split in data.eval.items()}
        data.test = {name: self._checked(split, name, False) for name, split in data.test.items()}
        self.chat_samples: list[Messages] = []
        self.chat_before: list[str] = []
        self.chat_before_metrics: dict[str, float] = {}
        self.chat_counts: dict[str, int] = {}
        self.template_origin = ""

    def _checked(self, split: datasets.Dataset, name: str, need_reply: bool) -> datasets.Dataset:
        """The split without malformed conversations (data.skip_invalid), or a UserError naming them by row."""
        assert self.chat is not None
        needed = [column for column in (self.chat.messages_column, self.chat.prompt_column) if column]
        if need_reply and self.chat.completion_column:
            needed.append(self.chat.completion_column)
        missing = [column for column in needed if column not in split.column_names]
        if missing:
            raise UserError(f"Column '{missing[0]}' is not in the {name} data ({self.chat_data.source}). Columns "
                            f"there: {', '.join(split.column_names)}.")
        # Read a thousand rows at a time: the whole split as Python dicts would not fit a large data set's memory.
        rows = (row for batch in split.select_columns(self.chat.columns(split.column_names)).iter(batch_size=1000)
                for row in (dict(zip(batch, values)) for values in zip(*batch.values())))
        problems = [(number, problem) for number, row in enumerate(rows, start=1)
                    if (problem := conversation_problem(row_messages(row, self.chat, self.recipe.data.system_prompt),
                                                        need_reply)) is not None]
        if not problems:
            return split
        message = describe_problems(name, problems, len(split))
        if not self.recipe.data.skip_invalid:
            raise UserError(f"{message}. Fix them, or pass --skip-invalid to leave them out.")
        logger.warning("%s; left out (data.skip_invalid).", message)
        self.malformed[name] = f"{message}; left out"
        bad = {number - 1 for number, _ in problems}
        return split.select([index for index in range(len(split)) if index not in bad])

    def conversations(self, split: datasets.Dataset) -> list[Messages]:
        assert self.chat is not None
        rows = split.select_columns(self.chat.columns(split.column_names)).to_list()
        return [row_messages(row, self.chat, self.recipe.data.system_prompt) for row in rows]

    # ---- model and inputs -------------------------------------------------------------------------------------

    def load_model(self) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
        model, tokenizer = super().load_model()  # type: ignore[safe-super]
        if self.format != "chat":
            return model, tokenizer
        limit = getattr(model.config, "max_position_embeddings", None) or getattr(model.config, "n_positions", None)
        if limit is not None and self.recipe.data.max_length > limit:
            raise UserError(f"max_length {self.recipe.data.max_length} is larger than '{self.recipe.model.name}' "
                            f"allows ({limit} positions). Pass --max-length {limit} or less.")
        self.template_origin = prepare_tokenizer(tokenizer, self.recipe.data.chat_template)
        embeddings: Any = model.get_input_embeddings()
        if len(tokenizer) > embeddings.num_embeddings:
            if self.recipe.peft.enabled:
                raise UserError(f"'{self.recipe.model.name}' has no chat template, and the default one needs new "
                                f"tokens ({', '.join(tokenizer.get_added_vocab())}) whose embeddings LoRA would not "
                                f"train. Train without --lora, or pass --chat-template FILE written with tokens the "
                                f"model has.")
            model.resize_token_embeddings(len(tokenizer))
        from finetune.tasks.chat_template import stop_token_ids

        stops = stop_token_ids(tokenizer)  # saved with the model: pipelines stop at the end of the turn too
        model.generation_config.eos_token_id = stops if len(stops) > 1 else stops[0]
        return model, tokenizer

    def adopt_model(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, checkpoint: str) -> Any:
        compute_metrics = super().adopt_model(model, tokenizer, checkpoint)
        if self.format == "chat":  # scoring a checkpoint (finetune evaluate) on chat data
            self.template_origin = prepare_tokenizer(tokenizer, self.recipe.data.chat_template)
            embeddings: Any = model.get_input_embeddings()
            if len(tokenizer) > embeddings.num_embeddings:
                logger.warning("%s has no chat template: scored with the default ChatML template, whose new tokens "
                               "it has never seen (their embeddings start random).", checkpoint)
                model.resize_token_embeddings(len(tokenizer))
        return compute_metrics

    def tokenize(self, split: datasets.Dataset, tokenizer: PreTrainedTokenizerBase) -> datasets.Dataset:
        if self.format != "chat" or self.chat is None:
            return super().tokenize(split, tokenizer)  # type: ignore[safe-super]
        from finetune.data.caching import map_cached

        self.template_origin = prepare_tokenizer(tokenizer, self.recipe.data.chat_template)
        layout, system, max_length = self.chat, self.recipe.data.system_prompt, self.recipe.data.max_length
        # Training rows too long even for their last exchange are dropped; evaluation rows are cut from the left
        # (every one is scored); test rows are prompts (no labels).
        training = not any(split is part for part in [*self.chat_data.eval.values(), *self.chat_data.test.values()])
        has_replies = not any(split is part for part in self.chat_data.test.values())

        def encode(rows: dict[str, list]) -> dict[str, list]:
            out: dict[str, list] = {"input_ids": [], "labels": [], "dropped_turns": []}
            for values in zip(*rows.values()):
                messages = row_messages(dict(zip(rows, values)), layout, system)
                if not has_replies:
                    out["input_ids"].append(encode_prompt(tokenizer, last_exchange(messages)[0], max_length))
                    out["dropped_turns"].append(0)
                    continue
                example = encode_example(tokenizer, messages, max_length, keep=not training)
                if example is not None:
                    for key, value in zip(("input_ids", "labels", "dropped_turns"), example):
                        out[key].append(value)
            if not has_replies:
                del out["labels"]
            return out

        from finetune.tasks import chat_format, chat_template

        tokenized = map_cached(split, encode, tokenizer=tokenizer, columns=layout.columns(split.column_names),
                               code=[chat_format, chat_template],
                               settings={"format": "chat", "max_length": max_length, "system": system,
                                         "template": template_digest(tokenizer), "training": training,
                                         "has_replies": has_replies, "layout": layout.describe()})
        if training and len(split) and not len(tokenized):
            raise UserError(f"No conversation of the {len(split)} fits in max_length {max_length} tokens, not even "
                            f"its last exchange. Pass a larger --max-length.")
        dropped_turns = tokenized["dropped_turns"] if len(tokenized) else []
        self.chat_counts = {"rows": len(split), "examples": len(tokenized),
                            "truncated": sum(1 for value in dropped_turns if value)}
        return tokenized

    # ---- training: samples before and after -------------------------------------------------------------------

    def _sample_conversations(self) -> list[Messages]:
        generation = self.recipe.generation
        system = self.recipe.data.system_prompt
        if generation.sample_prompts:
            start = [{"role": "system", "content": system}] if system else []
            return [[*start, {"role": "user", "content": prompt}] for prompt in generation.sample_prompts]
        split: Any = next(iter(self.chat_data.eval.values()), self.chat_data.train)
        chosen = self.conversations(split.select(_spread(len(split), generation.num_samples)))
        return [last_exchange(messages)[0] for messages in chosen]

    def chat_replies(self, model: Any, tokenizer: Any, conversations: list[Messages], settings: GenerationSection,
                     batch_size: int) -> list[str]:
        if not conversations:
            return []
        if settings.do_sample:
            from transformers import set_seed

            set_seed(self.recipe.train.seed)  # the same samples for the same run
        prompts = [encode_prompt(tokenizer, messages, self.recipe.data.max_length) for messages in conversations]
        return generate_continuations(model, tokenizer, prompts, settings, batch_size=batch_size)

    def before_training(self, trainer: Trainer, run_dir: Path) -> None:
        if self.format != "chat":
            return super().before_training(trainer, run_dir)
        self.chat_samples = self._sample_conversations()
        self.chat_before = self.chat_replies(trainer.model, trainer.processing_class, self.chat_samples,
                                             self.recipe.generation, trainer.args.per_device_eval_batch_size)
        if trainer.eval_dataset is not None:
            metrics = trainer.evaluate()  # the untrained model's loss on the same assistant tokens
            self.chat_before_metrics = {f"{key}_before_training": value for key, value in metrics.items()
                                        if key.endswith(("_loss", "_perplexity"))}

    def after_training(self, trainer: Trainer, run_dir: Path) -> dict[str, Any]:
        if self.format != "chat":
            return super().after_training(trainer, run_dir)
        after = self.chat_replies(trainer.model, trainer.processing_class, self.chat_samples,
                                  self.recipe.generation, trainer.args.per_device_eval_batch_size)
        from finetune.outputs.files import write_text_atomic
        from finetune.outputs.run_dir import SAMPLES_FILE

        records = [{"conversation": readable(messages), "before": before, "after": text, "messages": messages}
                   for messages, before, text in zip(self.chat_samples, self.chat_before, after)]
        if trainer.is_world_process_zero():
            write_text_atomic(run_dir / SAMPLES_FILE,
                              "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records))
        return dict(self.chat_before_metrics)

    # ---- evaluation -------------------------------------------------------------------------------------------

    def write_predictions(self, trainer: Trainer, raw: datasets.Dataset, tokenized: datasets.Dataset,
                          path: Path, metric_key_prefix: str = "eval") -> dict[str, float]:
        if self.format != "chat":
            return super().write_predictions(trainer, raw, tokenized, path, metric_key_prefix)  # type: ignore[safe-super]
        from finetune.outputs.files import write_text_atomic

        tokenizer: Any = trainer.processing_class
        metrics: dict[str, float] = {}
        losses: list[tuple[float, int]] = []
        if "labels" in tokenized.column_names and len(tokenized):
            metrics = dict(trainer.predict(tokenized, metric_key_prefix=metric_key_prefix).metrics or {})
            losses = example_losses(trainer.model, tokenized, self.data_collator(tokenizer),
                                    trainer.args.per_device_eval_batch_size)
            self.scored_losses = (tokenized, losses)
        asked = [last_exchange(messages) for messages in self.conversations(raw)] if len(raw) else []
        greedy = self.recipe.generation.model_copy(update={"do_sample": False})  # scores must be reproducible
        predictions = self.chat_replies(trainer.model, tokenizer, [self._with_shots(messages) for messages, _ in asked],
                                        greedy, trainer.args.per_device_eval_batch_size)
        records: list[dict[str, Any]] = [{"messages": messages, "prediction": prediction}
                                         for (messages, _), prediction in zip(asked, predictions)]
        references = [reference for _, reference in asked]
        if losses and all(reference is not None for reference in references):
            for record, reference, (loss, count) in zip(records, references, losses):
                record.update(reference=reference, loss=loss, tokens=count)
            scores = metric_registry.load("bleu").compute(predictions=predictions, references=references)
            scores["rougeL"] = metric_registry.load("rouge").compute(predictions=predictions,
                                                                     references=references)["rougeL"]
            if has_final_answers(references):  # GSM8K-style "#### 42" answers: exact match of the number
                scores.update(answer_scores(predictions, [str(text) for text in references], records))
            metrics.update({f"{metric_key_prefix}_{key}": value for key, value in scores.items()})
        write_text_atomic(path, "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records))
        return metrics

    def resampling_scorer(self, records: list[dict[str, Any]]) -> Callable[[Sequence[int]], dict[str, float]] | None:
        if self.format != "chat" or not records or any("reference" not in record for record in records):
            return super().resampling_scorer(records)
        texts = metric_registry.resampling_scorer(["bleu", "rouge"], [r["prediction"] for r in records],
                                                  [r["reference"] for r in records])
        hits = answer_hits(records) or {}

        def score(rows: Sequence[int]) -> dict[str, float]:
            means = {name: sum(values[row] for row in rows) / len(rows) for name, values in hits.items()}
            return {**texts(rows), **means}

        return score

    def _with_shots(self, messages: Messages) -> Messages:
        """The conversation after data.few_shot example exchanges (after its system turn, if any)."""
        if not self.recipe.data.few_shot:
            return messages
        if not hasattr(self, "_shots"):
            file = self.recipe.data.few_shot_file or self.recipe.data.train_file
            if not file:
                raise UserError("data.few_shot needs example conversations: set data.few_shot_file (a file of them).")
            from finetune.config.schema import DataSection
            from finetune.data.sources import load_data

            examples: Any = load_data(DataSection(train_file=file, max_train_samples=self.recipe.data.few_shot)).train
            layout = chat_layout(list(examples.column_names), None)
            if layout is None:
                raise UserError(f"{file} has no conversations (a messages or conversations column, or a "
                                f"prompt/completion pair such as question/answer) for data.few_shot.")
            shots = [row_messages(row, layout) for row in examples.to_list()]
            self._shots = [turn for shot in shots if conversation_problem(shot) is None
                           for turn in shot if turn["role"] != "system"]
        start = 1 if messages and messages[0]["role"] == "system" else 0
        return [*messages[:start], *self._shots, *messages[start:]]

    def check_report(self, data: LoadedData) -> list[tuple[str, str]]:
        if self.format != "chat" or self.chat is None:
            return super().check_report(data)
        lines = [("chat data", self.chat.describe())]
        if self.recipe.data.system_prompt:
            lines.append(("system prompt", self.recipe.data.system_prompt[:60]))
        lines += [("malformed", text) for text in self.malformed.values()] or [("malformed", "none")]
        return lines

    def check_tokens(self, lengths: list[int], sampled_rows: int, train_rows: int) -> tuple[list[tuple[str, str]], int]:
        if self.format != "chat":
            return super().check_tokens(lengths, sampled_rows, train_rows)
        lines, _ = Task.check_tokens(self, lengths, sampled_rows, train_rows)
        counts = self.chat_counts
        dropped = counts.get("rows", 0) - counts.get("examples", 0)
        lines = [("chat template", self.template_origin), lines[0]] if lines else [("chat template",
                                                                                   self.template_origin)]
        lines.append(("truncated", f"{counts.get('truncated', 0)} of {sampled_rows} sampled conversations lose "
                                   f"their earliest turns to fit max_length {self.recipe.data.max_length}; "
                                   f"{dropped} dropped (their last exchange alone is longer)"))
        return lines, round(train_rows * (sampled_rows - dropped) / max(sampled_rows, 1))

    def evaluation_settings(self, tokenizer: PreTrainedTokenizerBase) -> dict[str, Any]:
        settings = super().evaluation_settings(tokenizer)
        if self.format == "chat":
            settings.update(chat_template=template_digest(tokenizer), loss="mean over assistant tokens",
                            system_prompt=self.recipe.data.system_prompt, few_shot=self.recipe.data.few_shot)
        return settings

    # ---- predict ----------------------------------------------------------------------------------------------

    @classmethod
    def predict(cls, run_dir: Path, recipe: Recipe | None, family: TaskFamily,
                request: PredictRequest) -> list[dict[str, Any]]:
        if not request.conversations and (recipe is None or recipe.data.format != "chat"):
            return predict_texts(run_dir, recipe, family, request)
        from finetune.tasks.chat_predict import predict_chat

        return predict_chat(run_dir, recipe, family, request)
