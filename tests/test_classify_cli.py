"""End to end through the CLI, in-process, on a tiny BERT: a model that learns, files that reload, messages."""

from __future__ import annotations

import json
import random

import pytest
import yaml

from tests.helpers import write_csv, write_jsonl

FAST = ["--epochs", "4", "--learning-rate", "3e-3", "--batch-size", "16", "--max-length", "32"]


@pytest.fixture(scope="module")
def sentiment_run(tmp_path_factory, tiny_bert, sentiment_rows):
    """One trained single-sentence run shared by the tests that only read it."""
    from typer.testing import CliRunner

    from finetune.cli import app

    train, validation = sentiment_rows
    work = tmp_path_factory.mktemp("sentiment")
    args = ["classify", "--model", tiny_bert, "--train-file", write_csv(work / "train.csv", train),
            "--validation-file", write_csv(work / "validation.csv", validation),
            "--output-dir", work / "run", *FAST, "train.logging_steps=10"]
    result = CliRunner().invoke(app, [str(arg) for arg in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return work / "run", validation


def test_single_sentence_classifier_learns(sentiment_run):
    run_dir, _ = sentiment_run
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["eval_accuracy"] >= 0.85  # chance is 0.5
    assert metrics["train_samples"] == 400 and metrics["eval_samples"] == {"validation": 120}
    assert {"train_loss", "train_runtime", "train_samples_per_second", "eval_f1", "seed", "versions"} <= set(metrics)
    assert metrics["versions"]["transformers"].startswith("5.")


def test_run_directory_reloads(sentiment_run):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from finetune.config.loading import load_recipe

    run_dir, validation = sentiment_run
    assert (run_dir / "model.safetensors").is_file()
    assert not list(run_dir.glob(".*tmp"))  # the model was written under a temporary name, then renamed
    model = AutoModelForSequenceClassification.from_pretrained(run_dir)
    assert model.config.id2label == {0: "negative", 1: "positive"}
    AutoTokenizer.from_pretrained(run_dir)
    recipe = load_recipe(run_dir / "recipe.yaml")  # the resolved recipe is itself a valid recipe
    assert recipe.train.epochs == 4 and recipe.train.learning_rate == 3e-3 and recipe.train.logging_steps == 10
    rows = [json.loads(line) for line in (run_dir / "predictions" / "validation.jsonl").read_text().splitlines()]
    assert len(rows) == len(validation)
    assert [row["text"] for row in rows] == [row["text"] for row in validation]
    assert {row["label"] for row in rows} == {"positive", "negative"}
    accuracy = sum(row["label"] == row["prediction"] for row in rows) / len(rows)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert accuracy == pytest.approx(metrics["eval_accuracy"])


def test_predict_prints_label_names(cli, sentiment_run):
    run_dir, _ = sentiment_run
    result = cli(["predict", run_dir, "--text", "a gorgeous , witty film", "--text", "dull and awful acting"])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if "\t" in line]
    assert [line.split("\t")[0] for line in lines] == ["positive", "negative"]
    result = cli(["predict", run_dir, "--text", "great fun", "--json"])
    record = json.loads(result.stdout.strip().splitlines()[-1])
    assert record["label"] == "positive" and 0.5 < record["score"] <= 1.0


def test_existing_run_is_not_overwritten(cli, sentiment_run, tiny_bert):
    run_dir, _ = sentiment_run
    before = (run_dir / "metrics.json").read_bytes()
    result = cli(["classify", "--model", tiny_bert, "--train-file", run_dir.parent / "train.csv",
                  "--output-dir", run_dir, "--max-steps", "1"])
    assert result.exit_code == 2
    assert "--overwrite" in result.output
    assert (run_dir / "metrics.json").read_bytes() == before


def _pair_rows(count: int, seed: int) -> list[dict]:
    """The label says whether sentence2 repeats sentence1's sentiment word: only the pair decides it."""
    from finetune.tasks.smoke_data import FILLER, NEGATIVE, POSITIVE

    generator = random.Random(seed)
    words = POSITIVE + NEGATIVE
    rows = []
    for _ in range(count):
        first = generator.choice(words)
        same = generator.random() < 0.5
        second = first if same else generator.choice([word for word in words if word != first])
        rows.append({"sentence1": " ".join(generator.sample(FILLER, 3) + [first]),
                     "sentence2": " ".join([second] + generator.sample(FILLER, 3)),
                     "label": "same" if same else "different"})
    return rows


def test_sentence_pair_classifier(cli, tmp_path, tiny_bert):
    train = write_jsonl(tmp_path / "train.jsonl", _pair_rows(600, 0))
    validation = write_jsonl(tmp_path / "validation.jsonl", _pair_rows(200, 1))
    result = cli(["classify", "--model", tiny_bert, "--train-file", train, "--validation-file", validation,
                  "--output-dir", tmp_path / "run", "--epochs", "8", "--learning-rate", "3e-3",
                  "--batch-size", "16", "--max-length", "32",
                  # Here a pair's length depends on which words it holds, so length-grouped batches would also be
                  # grouped by word: random batches keep this small matching task learnable in 8 epochs.
                  "train.group_by_length=false"])
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    # Each sentence alone predicts nothing (chance is 0.5, sd 0.035 on 200 rows): only the pair can score this.
    assert metrics["eval_accuracy"] >= 0.62
    recipe = yaml.safe_load((tmp_path / "run" / "recipe.yaml").read_text())
    assert recipe["data"]["text_columns"] is None  # guessed, and the guess is recorded in the run
    result = cli(["predict", tmp_path / "run", "--text", "the film was great", "--text-pair", "great the plot",
                  "--text", "the film was great", "--text-pair", "awful the plot"])
    labels = [line.split("\t")[0] for line in result.stdout.splitlines() if "\t" in line]
    assert len(labels) == 2 and set(labels) <= {"same", "different"}


def _regression_rows(count: int, seed: int) -> list[dict]:
    from finetune.tasks.smoke_data import make_sentiment_rows

    rows = []
    for row in make_sentiment_rows(count, seed):
        positive = row["label"] == "positive"
        strength = sum(word in row["text"].split() for word in ("great", "superb", "awful", "terrible"))
        score = (3.5 if positive else 1.5) + (0.75 if positive else -0.75) * strength
        rows.append({"text": row["text"], "score": score})
    return rows


def test_regression(cli, tmp_path, tiny_bert):
    train = write_csv(tmp_path / "train.csv", _regression_rows(400, 0))
    validation = write_csv(tmp_path / "validation.csv", _regression_rows(100, 1))
    result = cli(["classify", "--model", tiny_bert, "--train-file", train, "--validation-file", validation,
                  "--output-dir", tmp_path / "run", *FAST])
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["eval_pearson"] > 0.8 and metrics["eval_spearmanr"] > 0.7
    result = cli(["predict", tmp_path / "run", "--text", "the film was superb and the acting great",
                  "--text", "the film was terrible and the acting awful"])
    positive, negative = (float(line.split("\t")[0]) for line in result.stdout.strip().splitlines()[-2:])
    assert positive - negative > 1.0  # scores run from 0 to 5


def test_train_command_runs_a_recipe_with_extends_and_overrides(cli, tmp_path, tiny_bert, sentiment_rows):
    train, validation = sentiment_rows
    base = tmp_path / "base.yaml"
    base.write_text(yaml.safe_dump({"task": "classification", "model": {"name": str(tiny_bert)},
                                    "train": {"learning_rate": 3e-3, "batch_size": 16, "epochs": 9}}))
    child = tmp_path / "child.yaml"
    child.write_text(yaml.safe_dump({"extends": "base.yaml", "data": {
        "train_file": str(write_csv(tmp_path / "train.csv", train)),
        "validation_file": str(write_csv(tmp_path / "validation.csv", validation)), "max_length": 32}}))
    result = cli(["train", child, "train.epochs=2", f"output_dir={tmp_path / 'run'}"])
    assert result.exit_code == 0, result.output
    recipe = yaml.safe_load((tmp_path / "run" / "recipe.yaml").read_text())
    assert recipe["train"]["epochs"] == 2 and recipe["train"]["batch_size"] == 16
    state = json.loads((tmp_path / "run" / "trainer_state.json").read_text())
    assert state["epoch"] == 2


def test_a_saved_recipe_reruns_from_another_folder(cli, tmp_path, monkeypatch, tiny_bert, sentiment_rows):
    """Relative paths on the command line become absolute in the run's recipe.yaml, so it works from anywhere."""
    import shutil

    train, validation = sentiment_rows
    first, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    (first / "data").mkdir(parents=True)
    elsewhere.mkdir()
    shutil.copytree(tiny_bert, first / "tiny-bert")
    write_csv(first / "data" / "train.csv", train[:64])
    write_csv(first / "data" / "dev.csv", validation[:16])
    monkeypatch.chdir(first)
    result = cli(["classify", "--model", "tiny-bert", "--train-file", "data/train.csv", "--validation-file",
                  "data/dev.csv", "--max-steps", "2", "--output-dir", "runs/first"])
    assert result.exit_code == 0, result.output
    saved = yaml.safe_load((first / "runs" / "first" / "recipe.yaml").read_text())
    assert saved["data"]["train_file"] == str(first / "data" / "train.csv")
    assert saved["model"]["name"] == str(first / "tiny-bert")
    assert saved["output_dir"] == str(first / "runs" / "first")

    monkeypatch.chdir(elsewhere)
    result = cli(["train", "../project/runs/first/recipe.yaml", "output_dir=again"])
    assert result.exit_code == 0, result.output
    assert (elsewhere / "again" / "metrics.json").is_file()
    result = cli(["train", "../project/runs/first/recipe.yaml"])  # the same run directory: refused, not elsewhere
    assert result.exit_code == 2 and str(first / "runs" / "first") in result.output
