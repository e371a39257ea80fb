"""Scoring a trained classifier on data whose labels it may know in another order, for `finetune evaluate`.

Labels are matched by name between the checkpoint's `id2label` and the data's label names, so a checkpoint trained
with its labels in another order scores the same; a label the checkpoint does not have is an error. Scores are
computed in the data's label ids, so F1's positive class stays the data's (GLUE: label 1).
"""

from __future__ import annotations

import logging
import re
from typing import Any

from finetune.errors import UserError

logger = logging.getLogger("finetune")

_GENERIC_LABEL = re.compile(r"LABEL_\d+$")


def checkpoint_label_names(config: Any) -> list[str] | None:
    """The checkpoint's label names in id order; None for a regressor or generic LABEL_0, LABEL_1 names."""
    if config.num_labels == 1 and config.problem_type == "regression":
        return None
    names = [str(config.id2label[index]) for index in range(config.num_labels)]
    return None if all(_GENERIC_LABEL.match(name) for name in names) else names


def sorted_like_training(names: list[str]) -> list[str]:
    """Label names in the order `finetune classify` gives data without names of its own (sorted values; numbers
    as numbers), which decides F1's positive class."""
    def numeric(name: str) -> bool:
        return name.lstrip("-").isdigit()

    return sorted(names, key=lambda name: (not numeric(name), int(name) if numeric(name) else name))


def label_permutation(is_regression: bool, data_labels: list[str], config: Any, checkpoint: str) -> list[int] | None:
    """data label id -> checkpoint label id, matched by name; None when they already agree."""
    if is_regression or config.num_labels == 1:
        if is_regression != (config.num_labels == 1):
            kind = "a regression (one score)" if is_regression else f"a {len(data_labels)}-class"
            raise UserError(f"{checkpoint} has {config.num_labels} output(s) but the data is {kind} task. "
                            f"Evaluate a checkpoint trained for this task.")
        return None
    names = checkpoint_label_names(config)
    if names is None:
        if config.num_labels != len(data_labels):
            raise UserError(f"{checkpoint} has {config.num_labels} unnamed labels but the data has "
                            f"{len(data_labels)} ({', '.join(data_labels)}).")
        logger.warning("%s has no label names (LABEL_0, ...): assuming they are in the data's order (%s).",
                       checkpoint, ", ".join(data_labels))
        return None
    if names == data_labels:
        return None
    missing = [name for name in data_labels if name not in names]
    extra = [name for name in names if name not in data_labels]
    if missing or extra:
        problem = (f"the data's label(s) {', '.join(missing)} are not among the checkpoint's" if missing
                   else f"the checkpoint's label(s) {', '.join(extra)} are not in the data")
        raise UserError(f"Labels do not match: {problem}. Checkpoint {checkpoint}: {', '.join(names)}; data: "
                        f"{', '.join(data_labels)}. Evaluate on data with the same labels (or set data.label_names).")
    return [names.index(name) for name in data_labels]


def permuted_metrics(score: Any, to_data: Any) -> Any:
    """compute_metrics for a checkpoint whose label ids differ from the data's: `score` sees the data's label ids."""
    import numpy as np

    def compute(prediction: Any) -> dict[str, float]:
        logits = prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
        return score(to_data[np.argmax(logits, axis=-1)], to_data[np.asarray(prediction.label_ids)])

    return compute


def adopt_label_names(recipe_data: Any, data: Any, checkpoint_config: Any, label_guesses: tuple[str, ...]) -> None:
    """Data without label names of its own (a csv of strings or ints) takes the checkpoint's: then a small
    --limit that misses a label cannot change the label ids. GLUE and ClassLabel data keep theirs. A multi-label
    checkpoint makes the data multi-label."""
    names = checkpoint_label_names(checkpoint_config)
    if getattr(checkpoint_config, "problem_type", None) == "multi_label_classification":
        recipe_data.multi_label = True
        if names is not None and not recipe_data.label_names:
            recipe_data.label_names = names  # integer label ids index the checkpoint's names
        return
    if recipe_data.label_names or data.glue_task is not None or names is None:
        return
    split = next(iter(data.eval.values()))
    column = recipe_data.label_column or next((c for c in label_guesses if c in split.column_names), None)
    if column is None or column not in split.column_names or getattr(split.features[column], "names", None):
        return
    if any(isinstance(value, float) and not value.is_integer() for value in split[column][:1000]):
        return  # regression data
    recipe_data.label_names = sorted_like_training(names)
