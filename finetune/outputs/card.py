"""The model card (README.md) of a run, in the format the Hugging Face Hub reads: YAML metadata with model-index
results, then a page a person can read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from finetune.config.schema import Recipe

_SKIPPED = ("_runtime", "_per_second", "_samples", "_preparation_time")


def headline_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """Final evaluation numbers (eval_*), without timings and counts."""
    return {key: value for key, value in metrics.items()
            if key.startswith("eval_") and isinstance(value, (int, float)) and not key.endswith(_SKIPPED)}


def _metadata(recipe: Recipe, run_name: str, metrics: dict[str, float], task_type: str,
              dataset: dict[str, Any]) -> dict[str, Any]:
    metadata: dict[str, Any] = {"library_name": "transformers", "pipeline_tag": task_type,
                                "tags": ["finetune", task_type]}
    base = recipe.model.name or ""
    if base and not Path(base).exists():  # the Hub only accepts repo ids here, not local paths
        metadata["base_model"] = base
    if not Path(dataset["type"]).exists():
        metadata["datasets"] = [dataset["type"]]
    if recipe.peft.enabled:
        metadata["tags"].append("lora")
    metadata["model-index"] = [{"name": run_name, "results": [{
        "task": {"type": task_type},
        "dataset": dataset,
        "metrics": [{"type": key.removeprefix("eval_"), "value": round(float(value), 6),
                     "name": key.removeprefix("eval_")} for key, value in metrics.items()],
    }]}]
    return metadata


def model_card(recipe: Recipe, metrics: dict[str, Any], run_dir: Path, pipeline_tag: str,
               dataset: dict[str, Any]) -> str:
    """The card: `pipeline_tag` is the task family's, `dataset` the model-index entry of the data (name, type, ...)."""
    results = headline_metrics(metrics)
    metadata = _metadata(recipe, run_dir.name, results, pipeline_tag, dataset)
    train = recipe.train
    rows = "\n".join(f"| {key.removeprefix('eval_')} | {value:.4f} |" for key, value in results.items())
    hyperparameters = {
        "epochs": train.epochs, "max_steps": train.max_steps, "learning_rate": train.learning_rate,
        "batch_size (per device)": train.batch_size, "gradient_accumulation_steps": train.gradient_accumulation_steps,
        "processes": metrics.get("world_size", 1), "weight_decay": train.weight_decay,
        "warmup_ratio": train.warmup_ratio, "scheduler": train.lr_scheduler, "seed": train.seed,
        "max_length": recipe.data.max_length, "mixed_precision": metrics.get("mixed_precision", "no"),
        "LoRA": f"r={recipe.peft.r}, alpha={recipe.peft.alpha}" if recipe.peft.enabled else "no",
    }
    hyper_rows = "\n".join(f"| {key} | {value} |" for key, value in hyperparameters.items() if value is not None)
    versions = ", ".join(f"{name} {version}" for name, version in (metrics.get("versions") or {}).items())
    return f"""---
{yaml.safe_dump(metadata, sort_keys=False, allow_unicode=True).strip()}
---

# {run_dir.name}

{recipe.description or f"A {recipe.task} model"} fine-tuned from `{recipe.model.name}`
on {metrics.get('data', dataset['name'])}
with finetune. {metrics.get('train_samples', '?')} training examples,
{int(metrics.get('epoch', 0) or 0)} epoch(s), {metrics.get('train_runtime', 0):.0f} s of training.

## Results

| metric | value |
|---|---|
{rows or "| (no evaluation set) | |"}

## Training

| setting | value |
|---|---|
{hyper_rows}

Reproduce with `finetune train recipe.yaml` (the fully resolved recipe saved beside this card).

## Intended use and limitations

Intended for {pipeline_tag.replace('-', ' ')} on text like its training data. It inherits the biases
and limits of `{recipe.model.name}` and of that data; check it on your own examples before relying on it.

## Framework versions

{versions}
"""
