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
            else:
                probabilities = row.softmax(-1)
                best = int(probabilities.argmax())
                record.update(label=model.config.id2label[best], score=float(probabilities[best]))
            records.append(record)
    return records
