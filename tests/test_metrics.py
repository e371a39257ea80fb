"""Named metrics equal the reference implementations on the same inputs."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
import sklearn.metrics

from finetune.errors import UserError
from finetune.tasks import metrics

rng = np.random.default_rng(0)
LABELS = rng.integers(0, 2, 200).tolist()
PREDICTIONS = [label if rng.random() < 0.7 else 1 - label for label in LABELS]
MULTI_LABELS = rng.integers(0, 3, 200).tolist()
MULTI_PREDICTIONS = rng.integers(0, 3, 200).tolist()
SCORES = rng.uniform(0, 5, 200)
NOISY = (SCORES + rng.normal(0, 1, 200)).tolist()


@pytest.mark.parametrize("name, reference", [
    ("accuracy", lambda p, r: sklearn.metrics.accuracy_score(r, p)),
    ("f1", lambda p, r: sklearn.metrics.f1_score(r, p)),
    ("precision", lambda p, r: sklearn.metrics.precision_score(r, p)),
    ("recall", lambda p, r: sklearn.metrics.recall_score(r, p)),
    ("matthews_correlation", lambda p, r: sklearn.metrics.matthews_corrcoef(r, p)),
])
def test_classification_metrics_equal_scikit_learn(name, reference):
    result = metrics.load(name).compute(predictions=PREDICTIONS, references=LABELS)
    assert result == {name: pytest.approx(reference(PREDICTIONS, LABELS), abs=1e-12)}


def test_macro_f1_for_multi_class():
    result = metrics.load("f1").compute(predictions=MULTI_PREDICTIONS, references=MULTI_LABELS, average="macro")
    assert result["f1"] == pytest.approx(sklearn.metrics.f1_score(MULTI_LABELS, MULTI_PREDICTIONS, average="macro"))


def test_correlations_equal_scipy():
    assert metrics.load("pearson").compute(predictions=NOISY, references=SCORES.tolist())["pearson"] == \
        pytest.approx(scipy.stats.pearsonr(SCORES, NOISY)[0], abs=1e-12)
    assert metrics.load("spearmanr").compute(predictions=NOISY, references=SCORES.tolist())["spearmanr"] == \
        pytest.approx(scipy.stats.spearmanr(SCORES, NOISY)[0], abs=1e-12)


def test_add_batch_then_compute_equals_one_call():
    metric = metrics.load("accuracy")
    metric.add_batch(predictions=PREDICTIONS[:50], references=LABELS[:50])
    metric.add_batch(predictions=PREDICTIONS[50:], references=LABELS[50:])
    assert metric.compute() == metrics.load("accuracy").compute(predictions=PREDICTIONS, references=LABELS)


def test_glue_metric_sets():
    from finetune.data.glue import get_glue_task

    result = metrics.compute(get_glue_task("mrpc").metrics, PREDICTIONS, LABELS)
    assert set(result) == {"f1", "accuracy"}


def test_unknown_metric_offline_is_a_user_error():
    with pytest.raises(UserError, match="Did you mean 'accuracy'"):
        metrics.load("acuracy")


def test_length_mismatch_is_an_error():
    with pytest.raises(ValueError, match="2 predictions but 1 references"):
        metrics.load("accuracy").compute(predictions=[0, 1], references=[0])
