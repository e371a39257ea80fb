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
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from finetune.errors import UserError
from finetune.eval.checkpoints import Checkpoint, evaluation_task_name
from finetune.eval.results_files import samples_path, write_samples
from finetune.eval.stderr import bootstrap_stderr
from finetune.eval.suites import BenchmarkTask, result_key

if TYPE_CHECKING:
    import datasets

    from finetune.config.schema import Recipe
    from finetune.tasks.base import TaskFamily

logger = logging.getLogger("finetune")

# Recipe data keys that describe how the model reads its input; they carry over to any benchmark's data.
_KEPT_DATA_KEYS = ("max_length", "max_target_length", "source_prefix", "source_lang", "target_lang", "format",
                   "block_size", "system_prompt")


def evaluation_recipe(checkpoint: Checkpoint, spec: BenchmarkTask, task_name: str, data_dir: str | None,
                      overrides: list[str]) -> Recipe:
    """The run's recipe (or the defaults) pointed at the benchmark's data and at the checkpoint's weights."""
    from finetune.config.loading import build_recipe, parse_overrides

    base = checkpoint.recipe.model_dump(mode="json") if checkpoint.recipe else {}
    base.update(task=task_name, peft={"enabled": False}, output_dir=None)
    # The plain loss: class weights were a training choice, and the evaluation data's own would be another loss.
    base["train"] = {**(base.get("train") or {}), "class_weights": None}
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
    predictions: Path  # samples_<task>_<time>.jsonl
    settings: dict[str, Any] = field(default_factory=dict)
    stderr: dict[str, float | str] = field(default_factory=dict)  # metric -> standard error or "N/A"
    task_hash: str = ""

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
    for split in splits or [None]:  # type: ignore[list-item]
        if split is not None:
            recipe.data.eval_split = split
        part = load_data(recipe.data, need_train=False)
        if loaded is None:
            loaded = part
        else:
            loaded.eval.update(part.eval)
    assert loaded is not None
    if not loaded.eval and spec.own_data and recipe.data.dataset is None and recipe.data.validation_file is None:
        raise UserError(f"The run {recipe.model.name} had no validation data (it held out training rows); pass "
                        f"--dataset FILE to score it on a file.")
    if not loaded.eval:
        raise UserError(f"No evaluation split in {loaded.source}. Pass --split NAME.")
    return loaded


def _load_model(checkpoint: Checkpoint, recipe: Recipe, family: TaskFamily) -> tuple[Any, Any]:
    import transformers

    from finetune.config.schema import ModelSection
    from finetune.models.loading import load_pretrained, load_tokenizer

    if checkpoint.path is not None:
        model = family.load_trained_model(checkpoint.path)  # full weights, or base model + LoRA adapter
    else:
        model = load_pretrained(getattr(transformers, family.auto_model), recipe.model)
    model.eval()
    tokenizer = load_tokenizer(ModelSection(name=checkpoint.tokenizer_source), model.config,
                               **family.task_class.tokenizer_options(model.config))
    return model, tokenizer


def evaluate_task(checkpoint: Checkpoint, task_key: str, spec: BenchmarkTask, model_dir: Path, stamp: str, *,
                  batch_size: int = 32, limit: int | None = None, split: str | None = None,
                  data_dir: str | None = None, overrides: list[str] | None = None,
                  bootstrap_iters: int = 1000) -> list[SplitResult]:
    """Score `checkpoint` on one benchmark task: one SplitResult per split, its predictions written to
    model_dir/samples_<task>_<stamp>.jsonl (lm-eval's samples layout)."""
    import torch
    from transformers import AutoConfig

    from finetune.config.loading import parse_overrides
    from finetune.tasks import get_task
    from finetune.training.trainer import configure_library_logging, evaluating_in_order

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
    task.prepare_for_checkpoint(data, AutoConfig.from_pretrained(checkpoint.config_source))
    task.setup(data)

    model, tokenizer = _load_model(checkpoint, recipe, task.family)
    compute_metrics = task.adopt_model(model, tokenizer, checkpoint.spec)
    tokenized_splits = {name: task.relabel(task.tokenize(raw, tokenizer)) for name, raw in data.eval.items()}

    results: list[SplitResult] = []
    with tempfile.TemporaryDirectory(prefix="finetune-evaluate-") as workdir:
        args = task.training_arguments(
            output_dir=workdir, per_device_eval_batch_size=batch_size, report_to="none", seed=recipe.train.seed,
            disable_tqdm=not sys.stderr.isatty(), use_cpu=recipe.train.use_cpu,
            dataloader_pin_memory=torch.cuda.is_available())
        trainer = evaluating_in_order(task.trainer_class())(model=model, args=args, processing_class=tokenizer,
                                                            data_collator=task.data_collator(tokenizer),
                                                            compute_metrics=compute_metrics)
        settings = {"task": recipe.task, "batch_size": batch_size, "device": str(args.device),
                    "dtype": str(getattr(trainer.model, "dtype", "")).removeprefix("torch."),
                    "pad_token": tokenizer.pad_token, **task.evaluation_settings(tokenizer)}
        for split_name, raw in data.eval.items():
            key = result_key(task_key, split_name, list(data.eval))
            tokenized = tokenized_splits[split_name]
            written = Path(workdir) / f"{key}.jsonl"
            start = time.perf_counter()
            metrics = task.write_predictions(trainer, raw, tokenized, written, "eval")
            runtime = time.perf_counter() - start
            metrics = {name.removeprefix("eval_"): float(value) for name, value in metrics.items()
                       if isinstance(value, (int, float)) and not name.endswith(
                           ("_runtime", "_per_second", "_before_training", "_preparation_time"))}
            metrics.pop("epoch", None)
            metrics.update(task.extra_scores(trainer.model, tokenized, batch_size))
            records = [json.loads(line) for line in written.read_text(encoding="utf-8").splitlines() if line.strip()]
            errors = bootstrap_stderr(task.resampling_scorer(records), len(records), list(metrics), bootstrap_iters)
            path = samples_path(model_dir, key, stamp)
            digest = write_samples(records, path, list(metrics))
            results.append(SplitResult(key, task_key, split_name, checkpoint, metrics, task.main_metric, len(raw),
                                       originals[split_name], runtime, fingerprint(raw), path,
                                       {**settings, "split": split_name, "source": data.source}, errors, digest))
    return results
