"""`finetune predict` for a trained classifier or regressor: a label and its probability per input."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from finetune.config.schema import Recipe
    from finetune.tasks.base import PredictRequest, TaskFamily


def predict_labels(run_dir: Path, recipe: Recipe | None, family: TaskFamily,
                   request: PredictRequest) -> list[dict[str, Any]]:
    """A label and its probability per input (regression: the predicted value), batch by batch."""
    import torch
    from transformers import AutoTokenizer

    from finetune.outputs.run_dir import tokenizer_folder

    model = family.load_trained_model(run_dir)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_folder(run_dir))
    # The run's own max_length, so inference truncates as training did; a plain model folder: its limit.
    max_length = recipe.data.max_length if recipe else min(tokenizer.model_max_length, 512)
    regression = model.config.problem_type == "regression" or model.config.num_labels == 1
    threshold = multi_label_threshold(model.config, run_dir)
    records: list[dict[str, Any]] = []
    for start in range(0, len(request.inputs), request.batch_size):
        batch = request.inputs[start:start + request.batch_size]
        texts = [text for text, _ in batch]
        pairs = [pair or "" for _, pair in batch] if any(pair for _, pair in batch) else None
        encoded = tokenizer(texts, pairs, truncation=True, max_length=max_length, padding=True,
                            return_tensors="pt")
        with torch.inference_mode():
            logits = model(**encoded).logits
        for (text, pair), row in zip(batch, logits):
            record: dict[str, Any] = {"text": text}
            if pair is not None:
                record["text_pair"] = pair
            if regression:
                record.update(label=float(row[0]), score=None)
            elif threshold is not None:  # multi-label: every label whose probability reaches its threshold
                probabilities = row.sigmoid()
                cut = threshold if isinstance(threshold, list) else [threshold] * len(probabilities)
                hits = [(float(p), index) for index, p in enumerate(probabilities) if float(p) >= cut[index]]
                record.update(labels=[{"label": model.config.id2label[index], "score": p}
                                      for p, index in sorted(hits, reverse=True)], threshold=threshold)
            else:
                probabilities = row.softmax(-1)
                best = int(probabilities.argmax())
                record.update(label=model.config.id2label[best], score=float(probabilities[best]))
            records.append(record)
    return records


def multi_label_threshold(config: Any, run_dir: Path) -> float | list[float] | None:
    """A multi-label model's decision threshold (one, or a list by label id when tuned per label): its config's,
    else the run's metrics.json (a LoRA run saves no config of its own), else 0.5; None for a single-label
    classifier."""
    import json

    from finetune.tasks.multi_label_scores import PROBLEM_TYPE, THRESHOLD_KEY

    if config.problem_type != PROBLEM_TYPE:
        return None
    saved = getattr(config, THRESHOLD_KEY, None)
    metrics = Path(run_dir) / "metrics.json"
    if saved is None and metrics.is_file():
        saved = json.loads(metrics.read_text(encoding="utf-8")).get("threshold")
    if isinstance(saved, list):
        return [float(value) for value in saved]
    return float(saved) if saved is not None else 0.5


def prediction_line(record: dict[str, Any]) -> str:
    """label<TAB>score<TAB>text (regression: value<TAB>text; multi-label: label score, label score<TAB>text)."""
    shown = record["text"] if "text_pair" not in record else f"{record['text']} ||| {record['text_pair']}"
    if "labels" in record:  # multi-label: every label over the threshold, most likely first
        hits = [f"{hit['label']} {hit['score']:.4f}" for hit in record["labels"]]
        return f"{', '.join(hits) or '(none)'}\t{shown}"
    if record["score"] is None:
        return f"{record['label']:.4f}\t{shown}"
    return f"{record['label']}\t{record['score']:.4f}\t{shown}"
