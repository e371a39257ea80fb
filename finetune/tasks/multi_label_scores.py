"""Multi-label scoring without the task: the decision threshold, its tuning, the metrics, and what makes data
multi-label. Used by the task (multi_label.py), `finetune predict` (classification_predict.py) and the classifier's
setup (classification.py), none of which this module imports.

A threshold is one number for every label, or a list with one per label id (`train.tune_threshold: per_label`):
`probabilities >= threshold` broadcasts either over the label axis.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from finetune.config.schema import DataSection

PROBLEM_TYPE = "multi_label_classification"
THRESHOLD_KEY = "multi_label_threshold"  # config.json: the decision threshold `finetune predict` uses
TUNING_GRID = [round(0.05 * step, 2) for step in range(1, 20)]  # thresholds tried by train.tune_threshold
Threshold = float | list[float]  # one for all labels, or one per label id


def is_multi_label(data: DataSection, feature: Any) -> bool:
    """Chosen (`data.multi_label`), or list-valued label cells (JSON lists, parquet, Sequence(ClassLabel))."""
    return data.multi_label or isinstance(feature, list) or type(feature).__name__ in ("List", "LargeList",
                                                                                       "Sequence")


def multi_label_scores(probabilities: Any, references: Any, threshold: Threshold) -> dict[str, float]:
    """Micro/macro F1, precision, recall and subset accuracy of `probabilities >= threshold` (scikit-learn); a list
    threshold holds one per label id."""
    import numpy as np
    from sklearn.metrics import f1_score, precision_score, recall_score

    predicted = np.asarray(probabilities) >= threshold
    truth = np.asarray(references) >= 0.5
    scores: dict[str, float] = {}
    for average in ("macro", "micro"):
        scores[f"f1_{average}"] = float(f1_score(truth, predicted, average=average, zero_division=0))
        scores[f"precision_{average}"] = float(precision_score(truth, predicted, average=average, zero_division=0))
        scores[f"recall_{average}"] = float(recall_score(truth, predicted, average=average, zero_division=0))
    scores["subset_accuracy"] = float((predicted == truth).all(axis=1).mean()) if len(truth) else 0.0
    return scores


def _search_order() -> list[float]:
    """TUNING_GRID from 0.5 outwards: among thresholds that score the same, the one nearest 0.5 wins."""
    return sorted(TUNING_GRID, key=lambda value: (abs(value - 0.5), value))


def best_threshold(probabilities: Any, references: Any) -> float:
    """The threshold of TUNING_GRID with the best macro F1 (the first of equals, searched from 0.5 outwards)."""
    return max(_search_order(), key=lambda value: multi_label_scores(probabilities, references, value)["f1_macro"])


def best_thresholds(probabilities: Any, references: Any, fallback: float) -> list[float]:
    """One threshold of TUNING_GRID per label, each the best for that label's own F1 (nearest 0.5 among equals).

    Macro F1 is the mean of the labels' F1 and each label's F1 depends on its threshold alone, so these thresholds
    give the best macro F1 any choice from the grid can give on this data (at least the global threshold's). A label
    without a positive example here scores F1 0 at every threshold: it keeps `fallback` (the global threshold),
    since nothing in the data says where it should be.
    """
    import numpy as np

    scores = np.asarray(probabilities, dtype=np.float64)
    truth = np.asarray(references) >= 0.5
    grid = _search_order()
    f1 = np.empty((len(grid), truth.shape[1]))
    for row, value in enumerate(grid):
        predicted = scores >= value
        true_positives = (predicted & truth).sum(axis=0)
        wrong = (predicted ^ truth).sum(axis=0)  # false positives + false negatives
        denominator = 2 * true_positives + wrong
        f1[row] = np.divide(2 * true_positives, denominator, out=np.zeros(truth.shape[1]), where=denominator > 0)
    best = f1.argmax(axis=0)  # the first maximum: the grid is ordered from 0.5 outwards
    return [float(grid[best[label]]) if truth[:, label].any() else float(fallback) for label in range(truth.shape[1])]


def sigmoid(logits: Any) -> Any:
    import numpy as np

    return 1.0 / (1.0 + np.exp(-np.asarray(logits, dtype=np.float64)))
