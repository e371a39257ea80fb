"""The model card (README.md) of a run, built with huggingface_hub's ModelCardData and EvalResult: the metadata the
Hugging Face Hub reads (license, language, base model, datasets, pipeline tag, library, model-index results), then
a page a person can read, with a usage snippet that loads the run.

Nothing here knows tasks: the caller passes its task family's pipeline tag and transformers Auto class.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from finetune.config.schema import Recipe

# Timings, counts and the untrained model's scores are not results of the model: metrics.json keeps them.
_SKIPPED = ("_runtime", "_per_second", "_samples", "_preparation_time", "_before_training")
# A Hub id: name or owner/name, letters, digits, - _ . only.
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_DATA_FILE_SUFFIXES = (".csv", ".tsv", ".json", ".jsonl", ".parquet", ".txt", ".arrow")
# Pipelines transformers has for a card's pipeline tag; other tags get an Auto class + generate snippet.
_PIPELINES = {"text-classification", "text-generation", "token-classification", "fill-mask"}
LOCAL_DATASET = "local"  # model-index dataset type of data that is not on the Hub


def headline_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """Final evaluation numbers (eval_*), without timings, counts and the before-training scores."""
    return {key: value for key, value in metrics.items()
            if key.startswith("eval_") and isinstance(value, (int, float)) and not isinstance(value, bool)
            and not key.endswith(_SKIPPED)}


def hub_id(name: str | None) -> str | None:
    """`name` when it can only be a Hub repo id: not a path on this machine, not a data file, id-shaped."""
    if not name or Path(name).expanduser().exists() or name.endswith(_DATA_FILE_SUFFIXES):
        return None
    return name if _HUB_ID.match(name) else None


def base_model_license(name: str | None) -> str | None:
    """The base model's license from its Hub card, when the Hub answers; None offline or for a local model."""
    repo = hub_id(name)
    if repo is None:
        return None
    from finetune.hub import hub_is_reachable

    if not hub_is_reachable():
        return None
    try:
        from huggingface_hub import HfApi

        card_data = HfApi().model_info(repo, timeout=10).card_data
    except Exception:  # a card without a license must not fail a finished run
        return None
    license_id = getattr(card_data, "license", None) if card_data is not None else None
    return license_id if isinstance(license_id, str) else None


def _languages(recipe: Recipe) -> list[str] | None:
    if recipe.card.language:
        return list(recipe.card.language)
    pair = [code for code in (recipe.data.source_lang, recipe.data.target_lang) if code]
    return list(dict.fromkeys(pair)) or None


def card_data(recipe: Recipe, metrics: dict[str, float], run_name: str, pipeline_tag: str,
              dataset: dict[str, Any], license_id: str | None = None) -> Any:
    """The card's metadata as huggingface_hub.ModelCardData."""
    from huggingface_hub import EvalResult, ModelCardData

    dataset_id = hub_id(dataset.get("type"))
    results = [EvalResult(task_type=pipeline_tag, dataset_type=dataset_id or LOCAL_DATASET,
                          dataset_name=dataset["name"], dataset_config=dataset.get("config"),
                          dataset_split=dataset.get("split"), metric_type=key.removeprefix("eval_"),
                          metric_name=key.removeprefix("eval_"), metric_value=round(float(value), 6))
               for key, value in metrics.items()]
    tags = ["finetune", pipeline_tag] + (["lora"] if recipe.peft.enabled else [])
    return ModelCardData(
        model_name=run_name,
        base_model=hub_id(recipe.model.name),
        datasets=[dataset_id] if dataset_id else None,
        language=_languages(recipe),
        license=recipe.card.license or license_id,
        # The Hub shows adapters as PEFT models (and offers PEFT's loading code) only with library_name: peft.
        library_name="peft" if recipe.peft.enabled else "transformers",
        pipeline_tag=pipeline_tag,
        tags=tags,
        eval_results=results or None,
    )


def usage_snippet(model_id: str, pipeline_tag: str, auto_model: str, recipe: Recipe,
                  label_kwargs: dict[str, Any] | None = None) -> str:
    """Python that loads the model with plain transformers and runs it on one input (the source prefix included)."""
    labels = f"labels = {label_kwargs!r}\n" if label_kwargs else ""
    if pipeline_tag in _PIPELINES:
        extra = ", model_kwargs=labels" if label_kwargs else ""
        return (f"from transformers import pipeline\n\n{labels}"
                f"model = pipeline({pipeline_tag!r}, model={model_id!r}{extra})\n"
                f"print(model({(recipe.data.source_prefix or '') + 'Your text here.'!r}))\n")
    generation = recipe.generation
    return (f"from transformers import AutoTokenizer, {auto_model}\n\n"
            f"tokenizer = AutoTokenizer.from_pretrained({model_id!r})\n"
            f"model = {auto_model}.from_pretrained({model_id!r})\n"
            f"inputs = tokenizer({(recipe.data.source_prefix or '') + 'Your text here.'!r}, return_tensors='pt')\n"
            f"outputs = model.generate(**inputs, max_new_tokens={generation.max_new_tokens}, "
            f"num_beams={generation.num_beams})\n"
            f"print(tokenizer.decode(outputs[0], skip_special_tokens=True))\n")


def model_card(recipe: Recipe, metrics: dict[str, Any], run_dir: Path, pipeline_tag: str, dataset: dict[str, Any],
               auto_model: str, label_kwargs: dict[str, Any] | None = None) -> str:
    """The card: `pipeline_tag` and `auto_model` are the task family's, `dataset` the model-index entry of the data
    (name, type, config, split), `label_kwargs` what a LoRA classifier needs to load with its labels."""
    from huggingface_hub import ModelCard

    results = headline_metrics(metrics)
    data = card_data(recipe, results, run_dir.name, pipeline_tag, dataset,
                     None if recipe.card.license else base_model_license(recipe.model.name))
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
    model_id = recipe.push_to_hub or str(run_dir)
    snippet = usage_snippet(model_id, pipeline_tag, auto_model, recipe, label_kwargs)
    adapter_note = ("\nThis is a LoRA adapter: loading it needs `pip install peft` and downloads the base model "
                    f"`{recipe.model.name}`" + (" (the label arguments give the head its size and names)"
                                                 if label_kwargs else "") + ".\n") if recipe.peft.enabled else ""
    data_words = dataset["name"] if hub_id(dataset.get("type")) else f"local data ({dataset['name']})"
    body = f"""
# {run_dir.name}

{recipe.description or f"A {recipe.task} model"} fine-tuned from `{recipe.model.name}`
on {data_words} with finetune. {metrics.get('train_samples', '?')} training examples,
{int(metrics.get('epoch', 0) or 0)} epoch(s), {metrics.get('train_runtime', 0):.0f} s of training.

## Usage

```python
{snippet.rstrip()}
```
{adapter_note}
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
    return str(ModelCard(f"---\n{data.to_yaml()}\n---\n{body}"))
