"""Per-label decision thresholds for multi-label classification (`train.tune_threshold: per_label`): tuned on the
validation data, better macro F1 than one global threshold when labels need different ones, saved as a list by label
id in config.json and honoured by `finetune predict`, `finetune evaluate` and a plain transformers load."""

from __future__ import annotations

import json
import random
import re
import shutil

import pytest

from finetune.tasks.multi_label_scores import best_threshold, best_thresholds, multi_label_scores
from finetune.tasks.smoke_data import FILLER, NEGATIVE, POSITIVE
from tests.helpers import invoke, write_jsonl

RARE = ["twist", "surprise"]
SHORT = ["--epochs", "5", "--learning-rate", "3e-3", "--batch-size", "16", "--max-length", "32"]


def test_per_label_thresholds_beat_one_global_threshold_by_hand():
    # Label 0's positives score 0.8 and its negatives 0.6 (any threshold in (0.6, 0.8] separates them); label 1's
    # positives 0.3 and negatives 0.1 (a threshold in (0.1, 0.3]); no single threshold does both.
    probabilities = [[0.8, 0.1, 0.2], [0.6, 0.3, 0.1], [0.8, 0.3, 0.4], [0.6, 0.1, 0.3]]
    references = [[1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 0, 0]]  # label 2 has no positive example
    thresholds = best_thresholds(probabilities, references, fallback=0.45)
    assert thresholds[0] in (0.65, 0.7, 0.75, 0.8) and 0.1 < thresholds[1] <= 0.3
    assert thresholds[0] == 0.65 and thresholds[1] == 0.3  # nearest 0.5 among the equally good
    assert thresholds[2] == 0.45  # nothing to tune on: the global threshold
    per_label = multi_label_scores(probabilities, references, thresholds)
    # Both labels perfect (F1 1), label 2 never predicted (F1 0, as scikit-learn's zero_division=0): 2/3.
    assert per_label["f1_macro"] == pytest.approx(2 / 3) and per_label["subset_accuracy"] == 1.0
    # The best global threshold, 0.3: label 1 right, label 0 predicted on every row (F1 2/3), label 2 on two
    # (F1 0): 5/9. Above 0.3, label 1 is never predicted: 1/3 at best.
    best_global = best_threshold(probabilities, references)
    assert best_global == 0.3
    assert multi_label_scores(probabilities, references, best_global)["f1_macro"] == pytest.approx(5 / 9)


def test_true_still_means_one_global_threshold():
    from finetune.config.schema import TrainSection

    assert TrainSection(tune_threshold=True).tune_threshold == "global"
    assert TrainSection(tune_threshold="per_label").tune_threshold == "per_label"
    assert TrainSection().tune_threshold is False


def rare_label_rows(count: int, seed: int) -> list[dict]:
    """A polarity word in every row (its label: positive or negative), and in about one row in ten a twist word
    (label twist): after a short training the rare label's probabilities stay low, so it needs a lower threshold."""
    generator = random.Random(seed)
    rows = []
    for _ in range(count):
        words = generator.sample(FILLER, k=generator.randint(2, 5))
        polarity = generator.choice(["positive", "negative"])
        words.insert(generator.randrange(len(words) + 1), generator.choice(POSITIVE if polarity == "positive"
                                                                             else NEGATIVE))
        labels = [polarity]
        if generator.random() < 0.1:
            words.insert(generator.randrange(len(words) + 1), generator.choice(RARE))
            labels.append("twist")
        rows.append({"text": " ".join(words), "labels": labels})
    return rows


@pytest.fixture(scope="module")
def tuned_runs(tmp_path_factory, tiny_bert, one_torch_thread):
    """The same short training twice (same data, seed and model): threshold tuned globally, then per label. Five
    epochs: polarity is learned, the rare label ranks right but under 0.5 (eight epochs learn it all)."""
    work = tmp_path_factory.mktemp("thresholds")
    train = write_jsonl(work / "train.jsonl", rare_label_rows(320, seed=0))
    validation = write_jsonl(work / "validation.jsonl", rare_label_rows(96, seed=1))
    common = ["classify", "--model", tiny_bert, "--train-file", train, "--validation-file", validation, *SHORT]
    result = invoke([*common, "--output-dir", work / "global", "--tune-threshold"])
    assert result.exit_code == 0, result.output
    result = invoke([*common, "--output-dir", work / "per-label", "train.tune_threshold=per_label"])
    assert result.exit_code == 0, result.output
    return work / "global", work / "per-label", validation


def test_per_label_tuning_raises_validation_macro_f1(tuned_runs):
    global_run, per_label_run, _ = tuned_runs
    one = json.loads((global_run / "metrics.json").read_text())
    each = json.loads((per_label_run / "metrics.json").read_text())
    assert isinstance(one["threshold"], float) and "thresholds_by_label" not in one
    chosen = each["thresholds_by_label"]
    assert set(chosen) == {"negative", "positive", "twist"} and each["threshold_tuned_on"] == "validation"
    assert each["threshold"] == [chosen["negative"], chosen["positive"], chosen["twist"]]  # by label id
    assert chosen["twist"] < min(chosen["negative"], chosen["positive"])  # the rare label needs a lower one
    assert each["eval_f1_macro"] > one["eval_f1_macro"] + 0.05, (each, one)


def test_the_list_is_saved_and_used_for_the_predictions_file(tuned_runs):
    from transformers import AutoConfig

    _, run_dir, _ = tuned_runs
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert AutoConfig.from_pretrained(run_dir).multi_label_threshold == metrics["threshold"]  # plain transformers
    cut = metrics["thresholds_by_label"]
    rows = [json.loads(line) for line in (run_dir / "predictions" / "validation.jsonl").read_text().splitlines()]
    assert all(score >= cut[label] for row in rows for label, score in row["scores"].items())
    assert any(score < 0.5 for row in rows for score in row["scores"].values())  # not the default 0.5 after all


def test_predict_honours_the_saved_thresholds(cli, tuned_runs, tmp_path):
    _, run_dir, _ = tuned_runs
    copy = shutil.copytree(run_dir, tmp_path / "run")
    config = json.loads((copy / "config.json").read_text())
    config["multi_label_threshold"] = [0.001, 0.999, 0.001]  # negative and twist always, positive never
    (copy / "config.json").write_text(json.dumps(config))
    result = cli(["predict", copy, "--text", "a wonderful film", "--text", "a dull plot", "--json"])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.strip().splitlines()[-2:]]
    assert [sorted(hit["label"] for hit in record["labels"]) for record in records] == [["negative", "twist"]] * 2
    assert records[0]["threshold"] == [0.001, 0.999, 0.001]


def test_evaluate_scores_with_the_saved_thresholds(cli, tuned_runs, tmp_path):
    _, run_dir, validation = tuned_runs
    metrics = json.loads((run_dir / "metrics.json").read_text())
    result = cli(["evaluate", run_dir, "--dataset", validation, "--output-dir", tmp_path / "results"])
    assert result.exit_code == 0, result.output
    text = "\n".join(path.read_text() for path in (tmp_path / "results").rglob("*.json"))
    scores = [float(value) for value in re.findall(r'"f1_macro,none": ([0-9.e-]+)', text)]
    assert scores and scores[0] == pytest.approx(metrics["eval_f1_macro"])
