"""Label hygiene for classification data: the mistakes that train without an error but learn the wrong thing.

Labels that differ only by case or spaces become separate classes; a training set with one class learns nothing;
a class only the evaluation data has can never be predicted. The first two are errors, the third is reported
(`check`) and warned about.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from finetune.errors import UserError, preview, shorten

logger = logging.getLogger("finetune")


def refuse_label_variants(values: Iterable[Any], column: str) -> None:
    """Labels that differ only by case or surrounding spaces ('positive', 'Positive ', 'POSITIVE') are almost
    always one class written several ways; training them as separate classes fails silently, so refuse."""
    groups: dict[str, list[str]] = {}
    for value in dict.fromkeys(values):  # a repeated spelling is one class, not a variant
        if isinstance(value, str):
            groups.setdefault(value.strip().casefold(), []).append(value)
    clashes = [sorted(group) for group in groups.values() if len(group) > 1]
    if clashes:
        shown = "; ".join(" / ".join(repr(variant) for variant in group[:4]) for group in clashes[:3])
        raise UserError(f"Labels in column '{column}' differ only by case or spaces: {shorten(shown, 300)}. "
                        f"Write each class one way in the data (or list the classes in data.label_names).")


def label_coverage(values: list[tuple[str, Any]], label_id: Callable[[Any], Any], label_names: list[str],
                   column: str, has_train: bool, inferred: bool) -> list[str]:
    """Refuse spelling variants (labels read from the data, `inferred`) and a training set with one class; return
    the classes only the evaluation data has (and warn). `values`: (split name, label) pairs, training's "train"."""
    if inferred:
        refuse_label_variants({value for _, value in values}, column)
    if not has_train:
        return []
    trained = {label_id(value) for name, value in values if name == "train"}
    if len(trained) < 2:
        only = label_names[int(next(iter(trained)))] if trained else "none"
        raise UserError(f"The training data has one class only ({preview(only)}) in column '{column}': a "
                        f"classifier needs examples of at least two.")
    evaluated = {label_id(value) for name, value in values if name != "train"}
    untrained = [label_names[int(index)] for index in sorted(evaluated - trained)]
    if untrained:
        logger.warning("Labels %s appear in the evaluation data but never in training: the model cannot predict "
                       "them.", preview(untrained))
    return untrained
