"""Inference from a run directory (or any fine-tuned classifier folder): label and score per input."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from finetune.errors import UserError


@dataclass
class Prediction:
    text: str
    text_pair: str | None
    label: str | float
    score: float | None


def run_task(run_dir: Path) -> str:
    """The task a run directory (or a checkpoint inside one) was trained for, from its recipe.yaml."""
    if not run_dir.is_dir():
        raise UserError(f"Run directory not found: {run_dir}.")
    for recipe_file in (run_dir / "recipe.yaml", run_dir.parent / "recipe.yaml"):
        if recipe_file.is_file():
            import yaml

            return (yaml.safe_load(recipe_file.read_text(encoding="utf-8")) or {}).get("task", "classification")
    return "classification"  # a plain model folder: classification is the only task without a recipe


def run_recipe_file(run_dir: Path) -> Path | None:
    """recipe.yaml of a run directory, or of the run holding a checkpoint-N (or merged) folder; None for neither."""
    return next((path for path in (run_dir / "recipe.yaml", run_dir.parent / "recipe.yaml") if path.is_file()), None)


def load_inputs(texts: list[str], pairs: list[str], file: Path | None) -> list[tuple[str, str | None]]:
    """Inputs from --text/--text-pair and --file, as (text, pair-or-None)."""
    if pairs and len(pairs) != len(texts):
        raise UserError(f"{len(texts)} --text but {len(pairs)} --text-pair: give one --text-pair per --text.")
    inputs: list[tuple[str, str | None]] = [(text, pairs[i] if pairs else None) for i, text in enumerate(texts)]
    if file is not None:
        inputs += _read_input_file(file)
    if not inputs:
        raise UserError("Nothing to predict: pass --text \"...\" (repeatable) or --file FILE.")
    return inputs


def _read_input_file(file: Path) -> list[tuple[str, str | None]]:
    if not file.is_file():
        raise UserError(f"Input file not found: {file}.")
    try:
        content = file.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise UserError(f"{file}: not UTF-8 text ({error.reason}). Convert it to UTF-8.") from error
    suffix = file.suffix.lower()
    if suffix in (".jsonl", ".csv"):
        rows = ([json.loads(line) for line in content.splitlines() if line.strip()] if suffix == ".jsonl"
                else list(csv.DictReader(content.splitlines())))
        return [_row_to_input(row, file) for row in rows]
    return [(parts[0], parts[1] if len(parts) > 1 else None)
            for parts in (line.split("\t", 1) for line in content.splitlines() if line.strip())]


def _row_to_input(row: dict[str, Any], file: Path) -> tuple[str, str | None]:
    values = [str(value) for key, value in row.items() if key not in ("label", "idx", "id") and value is not None]
    if not values:
        raise UserError(f"{file}: a row has no text column: {row}.")
    return values[0], values[1] if len(values) > 1 else None


def predict_texts(run_dir: Path, inputs: list[tuple[str, str | None]], batch_size: int = 32) -> list[Prediction]:
    if not run_dir.is_dir():
        raise UserError(f"Run directory not found: {run_dir}.")
    from finetune.models.lora import is_adapter_dir, load_run_model

    if not (run_dir / "config.json").is_file() and not is_adapter_dir(run_dir):
        raise UserError(f"{run_dir} holds no trained model (no config.json). Pass the run's output directory "
                        f"or one of its checkpoint-N folders.")
    import torch
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(run_dir)
    model = load_run_model(run_dir, "classification")  # full weights, or base model + LoRA adapter
    model.eval()
    max_length = _max_length(run_dir, tokenizer)
    regression = model.config.problem_type == "regression" or model.config.num_labels == 1
    results: list[Prediction] = []
    for start in range(0, len(inputs), batch_size):
        batch = inputs[start:start + batch_size]
        texts = [text for text, _ in batch]
        pairs = [pair or "" for _, pair in batch] if any(pair for _, pair in batch) else None
        encoded = tokenizer(texts, pairs, truncation=True, max_length=max_length, padding=True, return_tensors="pt")
        with torch.inference_mode():
            logits = model(**encoded).logits
        for (text, pair), row in zip(batch, logits):
            if regression:
                results.append(Prediction(text, pair, float(row[0]), None))
            else:
                probabilities = row.softmax(-1)
                best = int(probabilities.argmax())
                results.append(Prediction(text, pair, model.config.id2label[best], float(probabilities[best])))
    return results


def _max_length(run_dir: Path, tokenizer: Any) -> int:
    """The run's own max_length from its recipe, so inference truncates as training did."""
    recipe_file = run_dir / "recipe.yaml"
    if not recipe_file.is_file():
        recipe_file = run_dir.parent / "recipe.yaml"  # a checkpoint-N folder inside a run
    if recipe_file.is_file():
        import yaml

        recipe = yaml.safe_load(recipe_file.read_text(encoding="utf-8")) or {}
        length = (recipe.get("data") or {}).get("max_length")
        if length:
            return int(length)
    return min(tokenizer.model_max_length, 512)


def format_prediction(prediction: Prediction, as_json: bool = False) -> str:
    if as_json:
        record = {"text": prediction.text, "label": prediction.label, "score": prediction.score}
        if prediction.text_pair is not None:
            record["text_pair"] = prediction.text_pair
        return json.dumps(record, ensure_ascii=False)
    shown = prediction.text if prediction.text_pair is None else f"{prediction.text} ||| {prediction.text_pair}"
    if prediction.score is None:
        return f"{prediction.label:.4f}\t{shown}"
    return f"{prediction.label}\t{prediction.score:.4f}\t{shown}"
