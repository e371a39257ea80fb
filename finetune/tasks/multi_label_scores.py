"""Multi-label scoring without the task: the decision threshold, its tuning, the metrics, and what makes data
multi-label. Used by the task (multi_label.py), `finetune predict` (classification_predict.py) and the classifier's
setup (classification.py), none of which this module imports."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from finetune.config.schema import DataSection

PROBLEM_TYPE = "multi_label_classification"
THRESHOLD_KEY = "multi_label_threshold"  # config.json: the decision threshold `finetune predict` uses
TUNING_GRID = [round(0.05 * step, 2) for step in range(1, 20)]  # thresholds tried by train.tune_threshold


def is_multi_label(data: DataSection, feature: Any) -> bool:
    """Chosen (`data.multi_label`), or list-valued label cells (JSON lists, parquet, Sequence(ClassLabel))."""
    return data.multi_label or isinstance(feature, list) or type(feature).__name__ in ("List", "LargeList",
                                                                                       "Sequence")


def multi_label_scores(probabilities: Any, references: Any, threshold: float) -> dict[str, float]:
    """Micro/macro F1, precision, recall and subset accuracy of `probabilities >= threshold` (scikit-learn)."""
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


def best_threshold(probabilities: Any, references: Any) -> float:
    """The threshold of TUNING_GRID with the best macro F1 (the first of equals, searched from 0.5 outwards)."""
    grid = sorted(TUNING_GRID, key=lambda value: (abs(value - 0.5), value))
    return max(grid, key=lambda value: multi_label_scores(probabilities, references, value)["f1_macro"])


def sigmoid(logits: Any) -> Any:
    import numpy as np

    return 1.0 / (1.0 + np.exp(-np.asarray(logits, dtype=np.float64)))
