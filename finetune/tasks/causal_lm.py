"""Causal language modelling (GPT-2, Llama, Qwen): fine-tune a decoder-only model on raw text or on prompt/completion
pairs, report loss and perplexity, and show generations before and after training.

Two data modes (`data.format`; `auto` picks prompt_completion when the data has a prompt/completion column pair):

- text: documents are tokenized, each followed by EOS, concatenated and cut into blocks of `data.block_size` tokens
  (default `data.max_length`). No padding. The training stream drops only its final partial block; evaluation splits
  keep it (padded in its batch), so even a tiny validation file is scored. A `.txt` file arrives as one row per line:
  runs of non-blank lines form one document, so a blank line becomes a document boundary (EOS).
- prompt_completion (also instruction/response, instruction/output, input/output, question/answer): the loss is on
  the completion and its EOS only; prompt positions and padding carry label -100. Prompt and completion are joined as
  written: put any template or separator in the data.
- chat (a messages/conversations column, or --format chat on pairs): see chat_task.py.

Without validation data, the last 5% of the training rows (at least one) are held out for evaluation: the tail, not
a random sample, so neighbouring lines of a text do not leak between the two.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from finetune.compat import use_causal_lm_loss
from finetune.errors import UserError
from finetune.models.tiny import build_tiny_gpt2
from finetune.tasks import lm_inputs, smoke_data
from finetune.tasks import metrics as metric_registry
from finetune.tasks.base import Flag, PredictRequest, Task, TaskFamily
from finetune.tasks.chat_format import CONTEXT_COLUMNS as _CONTEXT_COLUMNS
from finetune.tasks.chat_format import PAIR_GUESSES as _PAIR_GUESSES
from finetune.tasks.chat_task import ChatSupport
from finetune.tasks.decoding import encode_prompt, generate_continuations, predict_texts
from finetune.tasks.lm_inputs import (
    CausalLMCollator,
    StreamPacker,
    hold_out_tail,
    lines_to_documents,
    prompt_completion_example,
)
from finetune.tasks.losses import example_losses, mean_token_loss, perplexity, perplexity_trainer, token_loss

if TYPE_CHECKING:
    import datasets
    from transformers import PreTrainedModel, PreTrainedTokenizerBase, Trainer, TrainingArguments

    from finetune.config.schema import GenerationSection, Recipe
    from finetune.data.sources import LoadedData

logger = logging.getLogger("finetune")

SAMPLE_PROMPT_TOKENS = 32  # text mode: a sample prompt is the start of an evaluation block

_TEXT_COLUMN_GUESSES = ("text", "content", "document", "sentence")


def _spread(count: int, wanted: int) -> list[int]:
    """`wanted` indices spread evenly over range(count), first one included."""
    wanted = min(wanted, count)
    return [index * count // wanted for index in range(wanted)]


# ---- the task -------------------------------------------------------------------------------------------------


class CausalLMTask(Task):
    def setup(self, data: LoadedData) -> None:
        self.data = data
        hold_out_tail(data, self.recipe.data.max_eval_samples)
        assert data.train is not None  # load_data gives a training split (evaluation: the first eval split)
        columns = list(data.train.column_names)
        section = self.recipe.data
        pair = self._pair_columns(columns)
        self.format: str = section.format if section.format != "auto" else ("prompt_completion" if pair else "text")
        self.block_size = section.block_size or section.max_length
        if self.format == "prompt_completion":
            if pair is None:
                raise UserError(f"format prompt_completion needs a prompt and a completion column. Columns: "
                                f"{', '.join(columns)}. Pass --prompt-column and --completion-column.")
            self.prompt_column, self.completion_column = pair
            self._require(data.train, list(pair), "train")
            for name, split in data.eval.items():
                self._require(split, list(pair), name)
            for name, split in data.test.items():
                self._require(split, [self.prompt_column], name)  # a test split may come without completions
        else:
            self.text_column = self._text_column(columns)
            for name, split in [("train", data.train), *data.eval.items(), *data.test.items()]:
                self._require(split, [self.text_column], name)
        self.sample_prompts: list[tuple[str, list[int]]] = []  # filled in before_training
        self.samples_before: list[str] = []
        self.before_metrics: dict[str, float] = {}
        # The split and its example_losses from the last write_predictions: extra_scores takes the split's loss from
        # them instead of another forward pass over it (finetune evaluate scores each split with both).
        self.scored_losses: tuple[Any, list[tuple[float, int]]] | None = None

    def _pair_columns(self, columns: list[str]) -> tuple[str, str] | None:
        section = self.recipe.data
        if section.prompt_column or section.completion_column:
            if not (section.prompt_column and section.completion_column):
                raise UserError("Give both --prompt-column and --completion-column (or neither, to guess them).")
            return section.prompt_column, section.completion_column
        return next((pair for pair in _PAIR_GUESSES if all(column in columns for column in pair)), None)

    def _text_column(self, columns: list[str]) -> str:
        if self.recipe.data.text_columns:
            return self.recipe.data.text_columns[0]
        found = next((guess for guess in _TEXT_COLUMN_GUESSES if guess in columns), None)
        if found is None and len(columns) == 1:
            found = columns[0]
        if found is None:
            raise UserError(f"Cannot tell which column holds the text. Columns: {', '.join(columns)}. Set "
                            f"data.text_columns=[NAME], or --prompt-column/--completion-column for pairs.")
        return found

    def _require(self, split: datasets.Dataset, needed: list[str], split_name: str) -> None:
        missing = [column for column in needed if column not in split.column_names]
        if missing:
            raise UserError(f"Column '{missing[0]}' is not in the {split_name} data ({self.data.source}). "
                            f"Columns there: {', '.join(split.column_names)}.")

    # ---- model and inputs -------------------------------------------------------------------------------------

    def load_model(self) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
        from transformers import AutoModelForCausalLM

        from finetune.models.loading import load_config, load_pretrained, load_tokenizer

        model_section = self.recipe.model
        config = load_config(model_section)
        limit = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
        if self.format == "text" and limit is not None and self.block_size > limit:
            raise UserError(f"block_size {self.block_size} is larger than '{model_section.name}' allows ({limit} "
                            f"positions). Pass --block-size {limit} or less.")
        max_length = self.recipe.data.max_length if self.format == "prompt_completion" else None
        tokenizer = load_tokenizer(model_section, config, max_length)
        model = use_causal_lm_loss(load_pretrained(AutoModelForCausalLM, model_section, config=config))
        # Saved with the run, so the model pads and generates without warnings in plain transformers too.
        model.config.pad_token_id = model.generation_config.pad_token_id = tokenizer.pad_token_id
        return model, tokenizer

    def tokenize(self, split: datasets.Dataset, tokenizer: PreTrainedTokenizerBase) -> datasets.Dataset:
        if self.format == "prompt_completion":
            return self._tokenize_pairs(split, tokenizer)
        from finetune.data.caching import map_cached

        # Every training block is full; evaluation splits keep their last partial block (see the module notes).
        keep_remainder = split is not self.data.train
        line_based = split.info.builder_name == "text"

        def tokenize(documents: list[str]) -> list[list[int]]:
            # verbose=False: documents longer than the model are expected here; packing cuts them into blocks.
            return tokenizer(documents, verbose=False)["input_ids"]

        # One stream of tokens over the whole split, cut into blocks batch by batch (lm_inputs.StreamPacker).
        packer = StreamPacker(tokenize, tokenizer.eos_token_id, self.block_size, len(split), line_based,
                              keep_remainder)

        def pack(rows: dict[str, list], indices: list[int]) -> dict[str, list]:
            return {"input_ids": packer(rows[self.text_column], indices)}

        return map_cached(split, pack, tokenizer=tokenizer, columns=[self.text_column], with_indices=True,
                          code=[lm_inputs], settings={"format": "text", "block_size": self.block_size,
                                                      "line_based": line_based, "keep_remainder": keep_remainder,
                                                      "text_column": self.text_column})

    @staticmethod
    def documents(values: list[Any], line_based: bool) -> list[str]:
        """The documents of a text column; `line_based` (a .txt file, one row per line): blank lines separate them."""
        texts = ["" if text is None else str(text) for text in values]
        if line_based:
            return lines_to_documents(texts)
        return [text for text in texts if text.strip()]

    def prompts(self, rows: dict[str, list]) -> list[str]:
        """Prompt texts of a batch of rows, an instruction's optional context appended after a blank line."""
        prompts = ["" if value is None else str(value) for value in rows[self.prompt_column]]
        context = next((column for column in _CONTEXT_COLUMNS
                        if column in rows and column not in (self.prompt_column, self.completion_column)), None)
        if self.prompt_column == "instruction" and context:
            prompts = [f"{prompt}\n\n{extra}" if extra else prompt for prompt, extra in zip(prompts, rows[context])]
        return prompts

    def _tokenize_pairs(self, split: datasets.Dataset, tokenizer: PreTrainedTokenizerBase) -> datasets.Dataset:
        max_length = self.recipe.data.max_length
        has_completions = self.completion_column in split.column_names

        def encode(rows: dict[str, list]) -> dict[str, list]:
            prompt_ids = tokenizer(self.prompts(rows))["input_ids"]
            if not has_completions:
                return {"input_ids": [ids[-max_length:] for ids in prompt_ids]}
            completions = ["" if value is None else str(value) for value in rows[self.completion_column]]
            completion_ids = tokenizer(completions, add_special_tokens=False)["input_ids"]
            examples = [prompt_completion_example(prompt, completion, tokenizer.eos_token_id, max_length)
                        for prompt, completion in zip(prompt_ids, completion_ids)]
            return {"input_ids": [example["input_ids"] for example in examples],
                    "labels": [example["labels"] for example in examples]}

        from finetune.data.caching import map_cached

        context = [column for column in _CONTEXT_COLUMNS if column in split.column_names]
        return map_cached(split, encode, tokenizer=tokenizer, code=[lm_inputs],
                          columns=[self.prompt_column, self.completion_column, *context],
                          settings={"format": "prompt_completion", "max_length": max_length,
                                    "prompt": self.prompt_column, "completion": self.completion_column,
                                    "has_completions": has_completions})

    def data_collator(self, tokenizer: PreTrainedTokenizerBase) -> CausalLMCollator:
        return CausalLMCollator(pad_token_id=tokenizer.pad_token_id)

    # ---- training ---------------------------------------------------------------------------------------------

    @property
    def main_metric(self) -> str:
        return "loss"

    def compute_metrics(self, eval_prediction: Any) -> dict[str, float]:
        # Never called: evaluation keeps only the loss (prediction_loss_only), because gathering vocabulary-sized
        # logits for every token would not fit in memory. Perplexity comes from the loss in CausalLMTrainer.
        return {}

    def training_arguments(self, **kwargs: Any) -> TrainingArguments:
        return super().training_arguments(prediction_loss_only=True, **kwargs)

    def trainer_class(self) -> type[Trainer]:
        return perplexity_trainer()

    def before_training(self, trainer: Trainer, run_dir: Path) -> None:
        self.sample_prompts = self._sample_prompts(trainer)
        self.samples_before = self._generate(trainer, [ids for _, ids in self.sample_prompts], self.recipe.generation)
        if trainer.eval_dataset is not None:
            # The untrained model's score on the same data: how much the run changed it.
            metrics = trainer.evaluate()
            self.before_metrics = {f"{key}_before_training": value for key, value in metrics.items()
                                   if key.endswith(("_loss", "_perplexity"))}

    def after_training(self, trainer: Trainer, run_dir: Path) -> dict[str, Any]:
        after = self._generate(trainer, [ids for _, ids in self.sample_prompts], self.recipe.generation)
        from finetune.outputs.files import write_text_atomic
        from finetune.outputs.run_dir import SAMPLES_FILE

        lines = [json.dumps({"prompt": prompt, "before": before, "after": text}, ensure_ascii=False)
                 for (prompt, _), before, text in zip(self.sample_prompts, self.samples_before, after)]
        if trainer.is_world_process_zero():
            write_text_atomic(run_dir / SAMPLES_FILE, "".join(line + "\n" for line in lines))
        return dict(self.before_metrics)

    def _sample_prompts(self, trainer: Trainer) -> list[tuple[str, list[int]]]:
        """(prompt text, token ids) for samples.jsonl: the recipe's prompts, else a few evaluation examples."""
        tokenizer: Any = trainer.processing_class
        generation = self.recipe.generation
        max_length = self.recipe.data.max_length
        if generation.sample_prompts:
            return [(prompt, encode_prompt(tokenizer, prompt, max_length)) for prompt in generation.sample_prompts]
        if self.format == "prompt_completion":
            split: Any = next(iter(self.data.eval.values()), self.data.train)
            rows = split.select(_spread(len(split), generation.num_samples))
            return [(prompt, encode_prompt(tokenizer, prompt, max_length)) for prompt in self.prompts(rows[:])]
        blocks: Any = trainer.eval_dataset if trainer.eval_dataset is not None else trainer.train_dataset
        if isinstance(blocks, dict):
            blocks = next(iter(blocks.values()))
        length = max(1, min(SAMPLE_PROMPT_TOKENS, self.block_size // 2))
        starts = [blocks[index]["input_ids"][:length] for index in _spread(len(blocks), generation.num_samples)]
        # Special tokens stay visible in the prompt: they are what the model was given (document boundaries).
        return [(tokenizer.decode(ids), ids) for ids in starts]

    def _generate(self, trainer: Trainer, prompts: list[list[int]], settings: GenerationSection) -> list[str]:
        if not prompts:
            return []
        if settings.do_sample:
            from transformers import set_seed

            set_seed(self.recipe.train.seed)  # the same samples for the same run
        model: Any = trainer.model
        return generate_continuations(model, trainer.processing_class, prompts, settings,  # type: ignore[arg-type]
                                      batch_size=trainer.args.per_device_eval_batch_size)

    # ---- predictions ------------------------------------------------------------------------------------------

    def write_predictions(self, trainer: Trainer, raw: datasets.Dataset, tokenized: datasets.Dataset,
                          path: Path, metric_key_prefix: str = "eval") -> dict[str, float]:
        from finetune.outputs.files import write_text_atomic

        tokenizer: Any = trainer.processing_class
        has_labels = self.format == "text" or "labels" in tokenized.column_names
        metrics: dict[str, float] = {}
        losses: list[tuple[float, int]] = []
        if has_labels and len(tokenized):
            metrics = dict(trainer.predict(tokenized, metric_key_prefix=metric_key_prefix).metrics or {})
            losses = example_losses(trainer.model, tokenized, self.data_collator(tokenizer),
                                    trainer.args.per_device_eval_batch_size)
            self.scored_losses = (tokenized, losses)
        if self.format == "text":
            records = [{"text": tokenizer.decode(row["input_ids"]), "tokens": count,
                        "loss": loss, "perplexity": perplexity(loss)}
                       for row, (loss, count) in zip(tokenized, losses)]
        else:
            records, scores = self._completion_records(trainer, raw, losses)
            metrics.update({f"{metric_key_prefix}_{key}": value for key, value in scores.items()})
        write_text_atomic(path, "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records))
        return metrics

    def _completion_records(self, trainer: Trainer, raw: datasets.Dataset,
                            losses: list[tuple[float, int]]) -> tuple[list[dict[str, Any]], dict[str, float]]:
        """Greedy completions of every prompt, with BLEU and ROUGE-L against the references when there are any."""
        tokenizer: Any = trainer.processing_class
        prompts = self.prompts(raw[:]) if len(raw) else []
        prompt_ids = [encode_prompt(tokenizer, prompt, self.recipe.data.max_length) for prompt in prompts]
        greedy = self.recipe.generation.model_copy(update={"do_sample": False})  # scores must be reproducible
        predictions = self._generate(trainer, prompt_ids, greedy)
        if self.completion_column not in raw.column_names:
            return [{"prompt": text, "prediction": prediction} for text, prediction in zip(prompts, predictions)], {}
        references = ["" if value is None else str(value) for value in raw[self.completion_column]]
        records = [{"prompt": prompt, "reference": reference, "prediction": prediction, "loss": loss}
                   for prompt, reference, prediction, (loss, _) in zip(prompts, references, predictions, losses)]
        scores = metric_registry.load("bleu").compute(predictions=predictions, references=references)
        scores["rougeL"] = metric_registry.load("rouge").compute(predictions=predictions,
                                                                 references=references)["rougeL"]
        return records, scores

    # ---- finetune check, scoring a saved checkpoint, predict --------------------------------------------------

    def check_tokens(self, lengths: list[int], sampled_rows: int, train_rows: int) -> tuple[list[tuple[str, str]], int]:
        if self.format != "text":
            return super().check_tokens(lengths, sampled_rows, train_rows)
        # Packed blocks: every one is full by design, none truncated; the steps count blocks, not rows.
        blocks = round(len(lengths) * train_rows / max(sampled_rows, 1))
        return [("packed blocks", f"about {blocks} blocks of {lengths[0] if lengths else 0} tokens "
                                  f"(from {len(lengths)} in the first {sampled_rows} rows)")], blocks

    def adopt_model(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, checkpoint: str) -> Any:
        super().adopt_model(model, tokenizer, checkpoint)
        # GPT-2 style: pad with eos, as in training (load_model).
        model.config.pad_token_id = model.generation_config.pad_token_id = tokenizer.pad_token_id
        return self.compute_metrics

    def extra_scores(self, model: PreTrainedModel, tokenized: datasets.Dataset, batch_size: int) -> dict[str, float]:
        if not len(tokenized) or (self.format != "text" and "labels" not in tokenized.column_names):
            return {}
        if self.scored_losses is not None and self.scored_losses[0] is tokenized:
            loss = mean_token_loss(self.scored_losses[1])
        else:
            loss = token_loss(model, tokenized, self.data_collator(self.tokenizer), batch_size, shift=True)
        return {"loss": loss, "perplexity": perplexity(loss)}

    def evaluation_settings(self, tokenizer: PreTrainedTokenizerBase) -> dict[str, Any]:
        return {**super().evaluation_settings(tokenizer), "padding_side": "right (loss), left (generation)",
                "generation": self.recipe.generation.model_dump(exclude={"num_samples", "sample_prompts"}),
                "format": self.format, "block_size": self.block_size, "loss": "mean over scored tokens"}

    @classmethod
    def predict(cls, run_dir: Path, recipe: Recipe | None, family: TaskFamily,
                request: PredictRequest) -> list[dict[str, Any]]:
        return predict_texts(run_dir, recipe, family, request)

    @staticmethod
    def format_prediction(record: dict[str, Any]) -> str | None:
        return None if record.get("streamed") else str(record["output"])


class GenerationTask(ChatSupport, CausalLMTask):
    """The generation family's task: chat data (tasks/chat_task.py) first, everything else as above."""


FAMILIES = (TaskFamily(
    name="generation",
    command="generate",
    summary="Fine-tune a causal language model (GPT-2, Llama, Qwen) on text, prompt/completion pairs or chat "
            "conversations. [model: gpt2]",
    task_class=GenerationTask,
    default_model="gpt2",
    auto_model="AutoModelForCausalLM",
    peft_task_type="CAUSAL_LM",
    pipeline_tag="text-generation",
    flags=(Flag("data.train_file", help="Raw text (.txt) or prompt/completion rows (.jsonl/.csv) to train on."),
           Flag("data.format", help="text (packed blocks), prompt_completion or chat. Default: from the data."),
           Flag("data.prompt_column", help="Prompt/instruction column."),
           Flag("data.completion_column", help="Completion/response column."),
           Flag("data.block_size", help="Tokens per packed block in text mode."),
           Flag("data.max_length", help="Longest prompt+completion (chat: conversation) in tokens."),
           Flag("data.system_prompt"), Flag("data.chat_template"), Flag("data.skip_invalid"),
           Flag("generation.sample_prompts", name="--sample-prompt",
                help="Prompt to sample before and after training (samples.jsonl); repeatable."),
           Flag("generation.max_new_tokens")),
    architectures=("ForCausalLM", "LMHeadModel"),
    checkpoint_hint="a causal language model, e.g. a `finetune generate` run",
    tiny_model=build_tiny_gpt2, smoke=smoke_data.generation,
),)
