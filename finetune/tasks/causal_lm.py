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

Without validation data, the last 5% of the training rows (at least one) are held out for evaluation: the tail, not
a random sample, so neighbouring lines of a text do not leak between the two.
"""

from __future__ import annotations

import functools
import json
import logging
import math
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from finetune.tasks import metrics as metric_registry
from finetune.tasks.decoding import encode_prompt, generate_continuations
from finetune.errors import UserError
from finetune.tasks.base import Task
from finetune.tasks.lm_inputs import (IGNORE_INDEX, CausalLMCollator, lines_to_documents, pack_blocks,
                                      prompt_completion_example)

if TYPE_CHECKING:
    import datasets
    from transformers import PreTrainedModel, PreTrainedTokenizerBase, Trainer, TrainingArguments

    from finetune.data.sources import LoadedData
    from finetune.config.recipe import GenerationSection

logger = logging.getLogger("finetune")

HOLDOUT_FRACTION = 0.05
SAMPLE_PROMPT_TOKENS = 32  # text mode: a sample prompt is the start of an evaluation block
SAMPLES_FILE = "samples.jsonl"

# (prompt, completion) column names tried in order when the recipe names none.
_PAIR_GUESSES = (("prompt", "completion"), ("prompt", "response"), ("instruction", "response"),
                 ("instruction", "output"), ("input", "output"), ("question", "answer"))
# Instruction datasets (Alpaca, Dolly) keep an optional context next to the instruction; it belongs to the prompt.
_CONTEXT_COLUMNS = ("input", "context")
_TEXT_COLUMN_GUESSES = ("text", "content", "document", "sentence")


def perplexity(loss: float) -> float:
    """exp(mean token loss); infinite rather than an overflow error for a diverged model."""
    try:
        return math.exp(loss)
    except OverflowError:
        return float("inf")


def _spread(count: int, wanted: int) -> list[int]:
    """`wanted` indices spread evenly over range(count), first one included."""
    wanted = min(wanted, count)
    return [index * count // wanted for index in range(wanted)]


def example_losses(model: PreTrainedModel, dataset: datasets.Dataset, collator: CausalLMCollator,
                   batch_size: int) -> list[tuple[float, int]]:
    """(mean token loss, scored tokens) per example, for the predictions file."""
    import torch

    device = next(model.parameters()).device
    results: list[tuple[float, int]] = []
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(dataset), batch_size):
            batch = collator([dataset[index] for index in range(start, min(start + batch_size, len(dataset)))])
            batch = {key: value.to(device) for key, value in batch.items()}
            with torch.inference_mode():
                logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            # Token t predicts token t + 1, as inside the model's own loss.
            labels = batch["labels"][:, 1:]
            token_losses = torch.nn.functional.cross_entropy(
                logits[:, :-1].float().transpose(1, 2), labels, ignore_index=IGNORE_INDEX, reduction="none")
            counts = (labels != IGNORE_INDEX).sum(dim=1)
            for total, count in zip(token_losses.sum(dim=1).tolist(), counts.tolist()):
                results.append((total / count if count else float("nan"), count))
    finally:
        model.train(was_training)
    return results


@functools.cache
def _causal_lm_trainer() -> type[Trainer]:
    from transformers import Trainer

    class CausalLMTrainer(Trainer):
        """Reports perplexity next to every evaluation loss (logged, in metrics and in trainer_state.json)."""

        def evaluation_loop(self, *args: Any, **kwargs: Any) -> Any:
            output = super().evaluation_loop(*args, **kwargs)
            for key, value in list(output.metrics.items()):
                if key.endswith("_loss"):
                    output.metrics[f"{key[:-len('_loss')]}_perplexity"] = perplexity(value)
            return output

        def _issue_warnings_after_load(self, load_result: Any) -> None:
            # Checkpoints leave out tied output embeddings (GPT-2's lm_head is its input embedding); loading the best
            # one then reports them missing although nothing is. Re-tie instead of warning.
            tied = set(getattr(self.model, "_tied_weights_keys", None) or ())
            if load_result.missing_keys and set(load_result.missing_keys) <= tied:
                self.model.tie_weights()
                return
            super()._issue_warnings_after_load(load_result)

    return CausalLMTrainer


# ---- the task -------------------------------------------------------------------------------------------------


class CausalLMTask(Task):
    def setup(self, data: LoadedData) -> None:
        self.data = data
        self._hold_out_if_needed(data)
        columns = list(data.train.column_names)
        section = self.recipe.data
        pair = self._pair_columns(columns)
        self.format = section.format if section.format != "auto" else ("prompt_completion" if pair else "text")
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

    def _hold_out_if_needed(self, data: LoadedData) -> None:
        count = len(data.train)
        if data.eval or count < 2:
            return
        held = max(1, round(count * HOLDOUT_FRACTION))
        if self.recipe.data.max_eval_samples:
            held = min(held, self.recipe.data.max_eval_samples)
        data.eval = {"validation": data.train.select(range(count - held, count))}
        data.train = data.train.select(range(count - held))
        logger.warning("No validation data given: evaluating on the last %d of %d training rows (held out, not "
                       "trained on). Pass --validation-file to choose.", held, count)

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
        model = load_pretrained(AutoModelForCausalLM, model_section, config=config)
        # Saved with the run, so the model pads and generates without warnings in plain transformers too.
        model.config.pad_token_id = model.generation_config.pad_token_id = tokenizer.pad_token_id
        return model, tokenizer

    def tokenize(self, split: datasets.Dataset, tokenizer: PreTrainedTokenizerBase) -> datasets.Dataset:
        if self.format == "prompt_completion":
            return self._tokenize_pairs(split, tokenizer)
        import datasets

        sequences = self._document_token_ids(self.documents(split), tokenizer)
        # Every training block is full; evaluation splits keep their last partial block (see the module notes).
        blocks = pack_blocks(sequences, self.block_size, keep_remainder=split is not self.data.train)
        return datasets.Dataset.from_dict({"input_ids": blocks})

    def documents(self, split: datasets.Dataset) -> list[str]:
        texts = ["" if text is None else str(text) for text in split[self.text_column]]
        if split.info.builder_name == "text":  # a .txt file: one row per line
            return lines_to_documents(texts)
        return [text for text in texts if text.strip()]

    @staticmethod
    def _document_token_ids(documents: list[str], tokenizer: PreTrainedTokenizerBase) -> Iterator[list[int]]:
        for start in range(0, len(documents), 1000):
            # verbose=False: documents longer than the model are expected here; packing cuts them into blocks.
            for ids in tokenizer(documents[start:start + 1000], verbose=False)["input_ids"]:
                yield [*ids, tokenizer.eos_token_id]

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

        return split.map(encode, batched=True, remove_columns=split.column_names, desc="Tokenizing")

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
        return _causal_lm_trainer()

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

        lines = [json.dumps({"prompt": prompt, "before": before, "after": text}, ensure_ascii=False)
                 for (prompt, _), before, text in zip(self.sample_prompts, self.samples_before, after)]
        if trainer.is_world_process_zero():
            write_text_atomic(run_dir / SAMPLES_FILE, "".join(line + "\n" for line in lines))
        return dict(self.before_metrics)

    def _sample_prompts(self, trainer: Trainer) -> list[tuple[str, list[int]]]:
        """(prompt text, token ids) for samples.jsonl: the recipe's prompts, else a few evaluation examples."""
        tokenizer = trainer.processing_class
        generation = self.recipe.generation
        max_length = self.recipe.data.max_length
        if generation.sample_prompts:
            return [(prompt, encode_prompt(tokenizer, prompt, max_length)) for prompt in generation.sample_prompts]
        if self.format == "prompt_completion":
            split = next(iter(self.data.eval.values()), self.data.train)
            rows = split.select(_spread(len(split), generation.num_samples))
            return [(prompt, encode_prompt(tokenizer, prompt, max_length)) for prompt in self.prompts(rows[:])]
        blocks = trainer.eval_dataset if trainer.eval_dataset is not None else trainer.train_dataset
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
        return generate_continuations(trainer.model, trainer.processing_class, prompts, settings,
                                      batch_size=trainer.args.per_device_eval_batch_size)

    # ---- predictions ------------------------------------------------------------------------------------------

    def write_predictions(self, trainer: Trainer, raw: datasets.Dataset, tokenized: datasets.Dataset,
                          path: Path, metric_key_prefix: str = "eval") -> dict[str, float]:
        from finetune.outputs.files import write_text_atomic

        tokenizer = trainer.processing_class
        has_labels = self.format == "text" or "labels" in tokenized.column_names
        metrics: dict[str, float] = {}
        losses: list[tuple[float, int]] = []
        if has_labels and len(tokenized):
            metrics = dict(trainer.predict(tokenized, metric_key_prefix=metric_key_prefix).metrics)
            losses = example_losses(trainer.model, tokenized, self.data_collator(tokenizer),
                                    trainer.args.per_device_eval_batch_size)
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
        tokenizer = trainer.processing_class
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


# ---- `finetune predict` -----------------------------------------------------------------------------------------


def predict_run(run_dir: Path, prompts: list[str], settings: dict[str, Any], stream: bool = False) -> list[str]:
    """Continuations of `prompts` from a trained run (full model or LoRA adapter), with the run's generation
    settings overridden by `settings`; `stream` prints each continuation token by token as it is generated."""
    from transformers import AutoTokenizer

    from finetune.models.lora import load_run_model
    from finetune.tasks.predict_inputs import run_recipe_file
    from finetune.config.recipe import GenerationSection, load_recipe

    run_dir = Path(run_dir)
    recipe_file = run_recipe_file(run_dir)
    recipe = load_recipe(recipe_file) if recipe_file else None
    try:
        generation = GenerationSection(**{**(recipe.generation.model_dump() if recipe else {}), **settings})
    except ValueError as error:
        raise UserError(f"Invalid generation setting: {error}") from error
    model = load_run_model(run_dir, "generation")  # first: a folder without a model fails with a clear message
    tokenizer = AutoTokenizer.from_pretrained(run_dir if (run_dir / "tokenizer_config.json").is_file()
                                              else run_dir.parent)
    if tokenizer.pad_token is None:  # the same stand-in as in training (modeling.load_tokenizer)
        tokenizer.pad_token = tokenizer.eos_token
    # Prompts are cut to the longest input the run trained on.
    max_length = max(recipe.data.max_length, recipe.data.block_size or 0) if recipe else 1024
    prompt_ids = [encode_prompt(tokenizer, prompt, max_length) for prompt in prompts]
    if not stream:
        return generate_continuations(model, tokenizer, prompt_ids, generation)
    from transformers import TextStreamer

    streamer = TextStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
    # One prompt at a time: a streamer follows a single sequence.
    return [generate_continuations(model, tokenizer, [ids], generation, batch_size=1, streamer=streamer)[0]
            for ids in prompt_ids]
