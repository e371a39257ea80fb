"""train.class_weights: the loss is the documented weighted loss (checked by hand on one batch), `auto` is inverse
frequency, and `check` warns about a rare class and says how to use the weights."""

from __future__ import annotations

import json
import math

import pytest

from finetune.errors import UserError
from finetune.tasks.class_weights import resolve_class_weights, weighted_trainer
from tests.helpers import write_csv


def test_auto_weights_are_inverse_frequency():
    # sklearn's "balanced": N / (K * n_c)
    assert resolve_class_weights("auto", [90, 10], 100, False, ["a", "b"]) == pytest.approx([100 / 180, 5.0])
    # multi-label pos_weight: negatives / positives per label (20 rows; a label absent from training gets 1)
    assert resolve_class_weights("auto", [4, 10, 0], 20, True, ["a", "b", "c"]) == pytest.approx([4.0, 1.0, 1.0])
    assert resolve_class_weights([1, 3], [5, 5], 10, False, ["a", "b"]) == [1.0, 3.0]
    assert resolve_class_weights(None, [5, 5], 10, False, ["a", "b"]) is None


def test_one_weight_per_label_or_a_clear_error():
    with pytest.raises(UserError, match=r"3 weights but there are 2 labels \(a, b\): give one per label"):
        resolve_class_weights([1, 2, 3], [5, 5], 10, False, ["a", "b"])


def _batch(tiny_bert, texts):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=2).eval()
    torch.nn.init.normal_(model.classifier.weight, std=5.0)  # a head far from uniform, so the weights matter
    return model, dict(tokenizer(texts, padding=True, return_tensors="pt"))


def _trainer(trainer_class, model, tmp_path):
    from transformers import TrainingArguments

    return trainer_class(model=model, args=TrainingArguments(str(tmp_path), use_cpu=True, report_to="none"))


def test_weighted_cross_entropy_matches_the_formula_by_hand(tiny_bert, tmp_path):
    """loss = sum_i w[y_i] * -log softmax(x_i)[y_i] / sum_i w[y_i], as documented in class_weights.py."""
    import torch

    model, inputs = _batch(tiny_bert, ["a good film", "bad", "the plot was dull", "great fun"])
    labels = [0, 1, 1, 0]
    weights = [1.0, 4.0]
    with torch.no_grad():
        logits = model(**inputs).logits.double().tolist()
    expected = sum(weights[y] * -(row[y] - math.log(sum(math.exp(v) for v in row))) for row, y in zip(logits, labels))
    expected /= sum(weights[y] for y in labels)
    plain = sum(-(row[y] - math.log(sum(math.exp(v) for v in row))) for row, y in zip(logits, labels)) / len(labels)

    with torch.no_grad():
        loss = _trainer(weighted_trainer(weights, multi_label=False), model, tmp_path).compute_loss(
            model, {**inputs, "labels": torch.tensor(labels)})
        unweighted = _trainer(weighted_trainer(None, multi_label=False), model, tmp_path).compute_loss(
            model, {**inputs, "labels": torch.tensor(labels)})
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    assert float(unweighted) == pytest.approx(plain, rel=1e-5)  # no weights: the model's own loss
    assert abs(expected - plain) > 1e-3  # the weights changed it


def test_pos_weight_matches_the_formula_by_hand(tiny_bert, tmp_path):
    """loss = mean over cells of -(p_j * y * log s(x) + (1 - y) * log(1 - s(x))), PyTorch's pos_weight."""
    import torch

    model, inputs = _batch(tiny_bert, ["a good film", "bad", "the plot was dull"])
    model.config.problem_type = "multi_label_classification"
    labels = [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]
    weights = [3.0, 0.5]
    with torch.no_grad():
        logits = model(**inputs).logits.double().tolist()

    def log_sigmoid(value):
        return -math.log1p(math.exp(-value))

    cells = [-(weights[j] * y * log_sigmoid(x) + (1 - y) * log_sigmoid(-x))
             for row, targets in zip(logits, labels) for j, (x, y) in enumerate(zip(row, targets))]
    with torch.no_grad():
        loss = _trainer(weighted_trainer(weights, multi_label=True), model, tmp_path).compute_loss(
            model, {**inputs, "labels": torch.tensor(labels)})
    assert float(loss) == pytest.approx(sum(cells) / len(cells), rel=1e-5)


def _imbalanced_rows(count: int, rare_every: int) -> list[dict]:
    return [{"text": "bad awful film" if index % rare_every == 0 else "good great film",
             "label": "negative" if index % rare_every == 0 else "positive"} for index in range(count)]


def test_check_warns_about_a_rare_class_and_says_how_to_weight(cli, tmp_path, tiny_bert):
    train = write_csv(tmp_path / "train.csv", _imbalanced_rows(100, rare_every=25))  # 4% negative
    result = cli(["classify", "--model", tiny_bert, "--train-file", train, "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "imbalanced labels: the rarest, negative, is 4.0% of the training labels" in result.output
    assert "--class-weights auto" in result.output
    result = cli(["classify", "--model", tiny_bert, "--train-file", train, "--dry-run", "--class-weights", "auto"])
    assert "imbalanced labels" not in result.output and "weighted by train.class_weights (auto)" in result.output
    balanced = write_csv(tmp_path / "balanced.csv", _imbalanced_rows(100, rare_every=2))
    assert "class-weights" not in cli(["classify", "--model", tiny_bert, "--train-file", balanced,
                                       "--dry-run"]).output


def test_a_weighted_run_records_its_weights(cli, tmp_path, tiny_bert):
    train = write_csv(tmp_path / "train.csv", _imbalanced_rows(40, rare_every=5))
    result = cli(["classify", "--model", tiny_bert, "--train-file", train, "--validation-file", train,
                  "--class-weights", "auto", "--max-steps", "2", "--output-dir", tmp_path / "run"])
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["class_weights"] == pytest.approx([40 / (2 * 8), 40 / (2 * 32)])  # negative, positive


def test_weights_for_regression_are_refused(cli, tmp_path, tiny_bert):
    train = write_csv(tmp_path / "train.csv", [{"text": "good", "label": 0.5}, {"text": "bad", "label": 2.25}])
    result = cli(["classify", "--model", tiny_bert, "--train-file", train, "--class-weights", "1,2", "--dry-run"])
    assert result.exit_code == 2
    assert "train.class_weights applies to classification" in result.output
