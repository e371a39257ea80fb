"""Scoring one checkpoint on one benchmark task, with the task's own code.

The scoring is the task's: `Task.setup`, `Task.tokenize` and `Task.write_predictions` through the task's Trainer in
evaluation-only mode, exactly as at the end of training, so every task (summarization, translation, generation) is
scored here with its own metrics as soon as it exists.

Two things are added on top, because scores must not depend on how the evaluation is batched:
- classification labels are matched by name between the checkpoint's `id2label` and the data's label names;
- for generative tasks the loss (and perplexity) is the mean over all scored tokens, not the Trainer's mean of
  per-batch means, which moves with the batch size whenever examples differ in length.
What a checkpoint is: `finetune.eval.checkpoints`. Orchestration, results files: `finetune.eval.run`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from finetune.eval.checkpoints import FAMILIES, Checkpoint, evaluation_task_name
from finetune.errors import UserError
from finetune.eval.suites import BenchmarkTask, result_key

if TYPE_CHECKING:
    import datasets

    from finetune.config.recipe import Recipe

logger = logging.getLogger("finetune")

# Recipe data keys that describe how the model reads its input; they carry over to any benchmark's data.
_KEPT_DATA_KEYS = ("max_length", "max_target_length", "source_prefix", "source_lang", "target_lang", "format",
                   "block_size")
_GENERIC_LABEL = re.compile(r"LABEL_\d+$")


def evaluation_recipe(checkpoint: Checkpoint, spec: BenchmarkTask, task_name: str, data_dir: str | None,
                      overrides: list[str]) -> Recipe:
    """The run's recipe (or the defaults) pointed at the benchmark's data and at the checkpoint's weights."""
    from finetune.config.recipe import build_recipe, parse_overrides

    base = checkpoint.recipe.model_dump(mode="json") if checkpoint.recipe else {}
    base.update(task=task_name, peft={"enabled": False}, output_dir=None)
    base["model"] = {**base.get("model", {}), "name": checkpoint.config_source}
    data = dict(base.get("data") or {})
    if spec.own_data:
        data.update(train_file=None, test_file=None, test_split=None, max_train_samples=None, train_split="")
        if data_dir:
            data["data_dir"] = data_dir
    else:
        data = {key: data[key] for key in _KEPT_DATA_KEYS if key in data}
        data.update(spec.data_section(data_dir or (base.get("data") or {}).get("data_dir")), train_split="")
    data["max_eval_samples"] = None  # --limit (or the run's max_eval_samples) is applied after counting the split
    base["data"] = data
    layers = [(str(checkpoint.spec) + " (evaluation)", base)]
    if overrides:
        layers.append(("--set", parse_overrides(overrides, "--set")))
    return build_recipe(layers)


@dataclass
class SplitResult:
    key: str  # results entry: sst2, mnli_matched
    task_key: str
    split: str
    checkpoint: Checkpoint
    metrics: dict[str, float]
    main_metric: str
    n: int
    n_original: int
    runtime: float
    fingerprint: str
    predictions: Path
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def examples_per_second(self) -> float:
        return self.n / self.runtime if self.runtime > 0 else float("inf")


def fingerprint(split: datasets.Dataset) -> str:
    """sha256 of the rows scored (canonical JSON, one row per line): equal data, equal fingerprint."""
    digest = hashlib.sha256()
    for row in split.to_list():
        digest.update(json.dumps(row, sort_keys=True, ensure_ascii=False, default=str).encode("utf-8") + b"\n")
    return f"sha256:{digest.hexdigest()}"


def _load_eval_data(recipe: Recipe, spec: BenchmarkTask, splits: list[str] | None) -> Any:
    from finetune.data.sources import LoadedData, load_data

    loaded: LoadedData | None = None
    for split in splits or [None]:
        if split is not None:
            recipe.data.eval_split = split
        part = load_data(recipe.data, need_train=False)
        if loaded is None:
            loaded = part
        else:
            loaded.eval.update(part.eval)
    if not loaded.eval and spec.own_data and recipe.data.dataset is None and recipe.data.validation_file is None:
        raise UserError(f"The run {recipe.model.name} had no validation data (it held out training rows); pass "
                        f"--dataset FILE to score it on a file.")
    if not loaded.eval:
        raise UserError(f"No evaluation split in {loaded.source}. Pass --split NAME.")
    return loaded


def _checkpoint_label_names(config: Any) -> list[str] | None:
    """The checkpoint's label names in id order; None for a regressor or generic LABEL_0, LABEL_1 names."""
    if config.num_labels == 1 and config.problem_type == "regression":
        return None
    names = [str(config.id2label[index]) for index in range(config.num_labels)]
    return None if all(_GENERIC_LABEL.match(name) for name in names) else names


def _preset_label_names(recipe: Recipe, data: Any, config: Any) -> None:
    """Data without label names of its own (a csv of strings or ints) takes the checkpoint's: then a small --limit
    that misses a label cannot change the label ids. GLUE and ClassLabel data keep theirs; names are matched below."""
    from finetune.tasks.classification import _LABEL_COLUMN_GUESSES

    names = _checkpoint_label_names(config)
    if recipe.data.label_names or data.glue_task is not None or names is None:
        return
    split = next(iter(data.eval.values()))
    column = recipe.data.label_column or next((c for c in _LABEL_COLUMN_GUESSES if c in split.column_names), None)
    if column is None or column not in split.column_names or getattr(split.features[column], "names", None):
        return
    if any(isinstance(value, float) and not value.is_integer() for value in split[column][:1000]):
        return  # regression data
    # In the order `finetune classify` gives such data (sorted values), which decides F1's positive class.
    recipe.data.label_names = sorted(names, key=lambda name: (not name.lstrip("-").isdigit(),
                                                             int(name) if name.lstrip("-").isdigit() else name))


def label_permutation(task: Any, config: Any, checkpoint: str) -> list[int] | None:
    """data label id -> checkpoint label id, matched by name; None when they already agree."""
    if task.is_regression or config.num_labels == 1:
        if task.is_regression != (config.num_labels == 1):
            kind = "a regression (one score)" if task.is_regression else f"{len(task.label_names)}-class"
            raise UserError(f"{checkpoint} has {config.num_labels} output(s) but the data is {kind} task. "
                            f"Evaluate a checkpoint trained for this task.")
        return None
    names = _checkpoint_label_names(config)
    data = list(task.label_names)
    if names is None:
        if config.num_labels != len(data):
            raise UserError(f"{checkpoint} has {config.num_labels} unnamed labels but the data has {len(data)} "
                            f"({', '.join(data)}).")
        logger.warning("%s has no label names (LABEL_0, ...): assuming they are in the data's order (%s).",
                       checkpoint, ", ".join(data))
        return None
    if names == data:
        return None
    missing = [name for name in data if name not in names]
    extra = [name for name in names if name not in data]
    if missing or extra:
        problem = (f"the data's label(s) {', '.join(missing)} are not among the checkpoint's" if missing
                   else f"the checkpoint's label(s) {', '.join(extra)} are not in the data")
        raise UserError(f"Labels do not match: {problem}. Checkpoint {checkpoint}: {', '.join(names)}; data: "
                        f"{', '.join(data)}. Evaluate on data with the same labels (or set data.label_names).")
    return [names.index(name) for name in data]


def _permuted_metrics(task: Any, to_data: Any) -> Any:
    """compute_metrics for a checkpoint whose label ids differ from the data's: scores in the data's label ids,
    so F1's positive class stays the data's (GLUE: label 1)."""
    import numpy as np

    def compute(prediction: Any) -> dict[str, float]:
        logits = prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
        return task.score(to_data[np.argmax(logits, axis=-1)], to_data[np.asarray(prediction.label_ids)])

    return compute


def token_loss(model: Any, dataset: datasets.Dataset, collator: Any, batch_size: int, shift: bool) -> float:
    """Mean negative log-likelihood over every scored token (labels != -100) of the split; batch-size independent."""
    import torch

    device = next(model.parameters()).device
    total, count = 0.0, 0
    model.eval()
    for start in range(0, len(dataset), batch_size):
        batch = collator([dataset[index] for index in range(start, min(start + batch_size, len(dataset)))])
        batch = {key: value.to(device) for key, value in batch.items() if hasattr(value, "to")}
        labels = batch.pop("labels")
        with torch.inference_mode():
            logits = model(**batch).logits
        if shift:  # causal LM: position t predicts token t + 1
            logits, labels = logits[:, :-1], labels[:, 1:]
        losses = torch.nn.functional.cross_entropy(logits.float().transpose(1, 2), labels, ignore_index=-100,
                                                   reduction="none")
        total += float(losses.double().sum())
        count += int((labels != -100).sum())
    return total / count if count else float("nan")


def _load_model(checkpoint: Checkpoint, recipe: Recipe) -> tuple[Any, Any]:
    import transformers

    from finetune.models.lora import AUTO_CLASSES, load_run_model
    from finetune.models.loading import load_pretrained, load_tokenizer
    from finetune.config.recipe import ModelSection

    if checkpoint.path is not None:
        model = load_run_model(checkpoint.path, recipe.task)  # full weights, or base model + LoRA adapter
    else:
        model = load_pretrained(getattr(transformers, AUTO_CLASSES[recipe.task]), recipe.model)
    model.eval()
    tokenizer = load_tokenizer(ModelSection(name=checkpoint.tokenizer_source), model.config)
    return model, tokenizer


def _prepare(task: Any, recipe: Recipe, model: Any, tokenizer: Any) -> None:
    """What Task.load_model leaves behind, for a model loaded from a checkpoint as it was saved."""
    if model.config.pad_token_id is None or recipe.task == "generation":
        model.config.pad_token_id = tokenizer.pad_token_id  # GPT-2 style: pad with eos, as in training
    if recipe.task == "generation":
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    if FAMILIES[recipe.task] == "seq2seq":
        from finetune.tasks.seq2seq import configure_generation

        configure_generation(model.generation_config, recipe.generation.model_dump())
    task.model, task.tokenizer = model, tokenizer


def _settings(recipe: Recipe, task: Any, model: Any, tokenizer: Any, batch_size: int, device: str,
              permutation: list[int] | None) -> dict[str, Any]:
    family = FAMILIES[recipe.task]
    settings: dict[str, Any] = {
        "task": recipe.task, "batch_size": batch_size, "device": device,
        "dtype": str(getattr(model, "dtype", "")).removeprefix("torch."),
        "padding_side": ("right (loss), left (generation)" if family == "generation" else tokenizer.padding_side),
        "pad_token": tokenizer.pad_token, "max_length": recipe.data.max_length,
    }
    if family == "classification":
        settings.update(label_names=list(task.label_names) if not task.is_regression else None,
                        label_mapping="by name (checkpoint order differs)" if permutation else "identity")
    else:
        settings["generation"] = recipe.generation.model_dump(exclude={"num_samples", "sample_prompts"})
    if family == "seq2seq":
        settings.update(max_target_length=recipe.data.max_target_length, source_prefix=recipe.data.source_prefix)
    if family == "generation":
        settings.update(format=getattr(task, "format", None), block_size=getattr(task, "block_size", None),
                        loss="mean over scored tokens")
    return settings


def evaluate_task(checkpoint: Checkpoint, task_key: str, spec: BenchmarkTask, predictions_dir: Path, *,
                  batch_size: int = 32, limit: int | None = None, split: str | None = None,
                  data_dir: str | None = None, overrides: list[str] | None = None) -> list[SplitResult]:
    """Score `checkpoint` on one benchmark task: one SplitResult per split, predictions written as jsonl."""
    import numpy as np
    from transformers import AutoConfig

    from finetune.config.recipe import parse_overrides
    from finetune.tasks import get_task
    import torch

    from finetune.training.run import evaluating_in_order, configure_library_logging

    task_name = evaluation_task_name(checkpoint, spec, parse_overrides(overrides or [], "--set"))
    recipe = evaluation_recipe(checkpoint, spec, task_name, data_dir, overrides or [])
    configure_library_logging()
    task = get_task(recipe)
    splits = [split] if split else spec.splits
    data = _load_eval_data(recipe, spec, splits)
    if limit is None and spec.own_data:
        limit = (checkpoint.recipe.data.max_eval_samples if checkpoint.recipe else None)
    originals = {name: len(part) for name, part in data.eval.items()}
    if limit:
        data.eval = {name: part.select(range(min(limit, len(part)))) for name, part in data.eval.items()}
    # Tasks learn columns and labels from a training split; the first evaluation split stands in (a copy: a task
    # may treat its training split differently, e.g. drop a partial last block).
    first = next(iter(data.eval.values()))
    data.train = data.train if data.train is not None else first.select(range(len(first)))
    config = AutoConfig.from_pretrained(checkpoint.config_source) if FAMILIES[task_name] == "classification" else None
    if config is not None:
        _preset_label_names(recipe, data, config)
    task.setup(data)

    model, tokenizer = _load_model(checkpoint, recipe)
    _prepare(task, recipe, model, tokenizer)
    permutation = label_permutation(task, model.config, checkpoint.spec) if config is not None else None
    # Tokenized while the task still holds the data's label ids; moved to the checkpoint's ids below.
    tokenized_splits = {name: task.tokenize(raw, tokenizer) for name, raw in data.eval.items()}
    compute_metrics = task.compute_metrics
    if permutation is not None:
        to_checkpoint = np.asarray(permutation)
        compute_metrics = _permuted_metrics(task, np.argsort(to_checkpoint))
        checkpoint_names = [str(model.config.id2label[i]) for i in range(model.config.num_labels)]
        task.label_names, task.label2id = checkpoint_names, {name: i for i, name in enumerate(checkpoint_names)}

    results: list[SplitResult] = []
    with tempfile.TemporaryDirectory(prefix="finetune-evaluate-") as workdir:
        args = task.training_arguments(
            output_dir=workdir, per_device_eval_batch_size=batch_size, report_to="none", seed=recipe.train.seed,
            disable_tqdm=not sys.stderr.isatty(), use_cpu=recipe.train.use_cpu,
            dataloader_pin_memory=torch.cuda.is_available())
        trainer = evaluating_in_order(task.trainer_class())(model=model, args=args, processing_class=tokenizer,
                                                  data_collator=task.data_collator(tokenizer),
                                                  compute_metrics=compute_metrics)
        settings = _settings(recipe, task, trainer.model, tokenizer, batch_size, str(args.device), permutation)
        for split_name, raw in data.eval.items():
            key = result_key(task_key, split_name, list(data.eval))
            tokenized = tokenized_splits[split_name]
            if permutation is not None and "labels" in tokenized.column_names:
                tokenized = tokenized.map(lambda batch: {"labels": [permutation[i] for i in batch["labels"]]},
                                          batched=True)
            path = predictions_dir / f"{key}.jsonl"
            start = time.perf_counter()
            metrics = task.write_predictions(trainer, raw, tokenized, path, "eval")
            runtime = time.perf_counter() - start
            metrics = {name.removeprefix("eval_"): float(value) for name, value in metrics.items()
                       if isinstance(value, (int, float)) and not name.endswith(
                           ("_runtime", "_per_second", "_before_training", "_preparation_time"))}
            metrics.pop("epoch", None)
            if FAMILIES[task_name] != "classification" and len(tokenized) and (
                    "labels" in tokenized.column_names or getattr(task, "format", None) == "text"):
                loss = token_loss(trainer.model, tokenized, task.data_collator(tokenizer), batch_size,
                                  shift=FAMILIES[task_name] == "generation")
                metrics["loss"] = loss
                if FAMILIES[task_name] == "generation":
                    from finetune.tasks.causal_lm import perplexity

                    metrics["perplexity"] = perplexity(loss)
            results.append(SplitResult(key, task_key, split_name, checkpoint, metrics, task.main_metric, len(raw),
                                       originals[split_name], runtime, fingerprint(raw), path,
                                       {**settings, "split": split_name, "source": data.source}))
    return results
