"""Multi-label classification end to end on a tiny BERT: a metric that moves, the saved threshold, predict, the
transformers pipeline, `evaluate`, and GoEmotions' own headerless TSV layout loaded with flags only."""

from __future__ import annotations

import json
import random
import re

import pytest

from finetune.tasks.smoke_data import FILLER, NEGATIVE, POSITIVE
from tests.conftest import requires_data
from tests.helpers import invoke, write_jsonl

FAST = ["--epochs", "15", "--learning-rate", "3e-3", "--batch-size", "16", "--max-length", "32"]
PLOT = ["story", "plot", "script", "ending"]  # a third, independent label: the text talks about the plot


def multi_label_rows(count: int, seed: int) -> list[dict]:
    """Filler words around a positive or a negative word, and a plot word in about half of them: the labels are the
    polarity and, when there is one, `plot` (one or two labels; none for a few rows without a polarity word)."""
    generator = random.Random(seed)
    filler = [word for word in FILLER if word not in PLOT]
    rows = []
    for _ in range(count):
        words = generator.sample(filler, k=generator.randint(2, 5))
        polarity = generator.choice(["positive", "negative", "positive", "negative", None])
        labels = [polarity] if polarity else []
        if polarity:
            words.insert(generator.randrange(len(words) + 1),
                         generator.choice(POSITIVE if polarity == "positive" else NEGATIVE))
        if generator.random() < 0.5:
            words.insert(generator.randrange(len(words) + 1), generator.choice(PLOT))
            labels.append("plot")
        rows.append({"text": " ".join(words), "labels": labels})
    return rows


@pytest.fixture(scope="module")
def multi_label_run(tmp_path_factory, tiny_bert, one_torch_thread):
    """One trained multi-label run from JSON lists (detected without --multi-label), threshold tuned."""
    work = tmp_path_factory.mktemp("multi-label")
    train, validation = multi_label_rows(320, seed=0), multi_label_rows(96, seed=1)
    result = invoke(["classify", "--model", tiny_bert, "--train-file", write_jsonl(work / "train.jsonl", train),
                     "--validation-file", write_jsonl(work / "validation.jsonl", validation),
                     "--output-dir", work / "run", "--tune-threshold", *FAST])
    assert result.exit_code == 0, result.output
    return work / "run", validation, result.output


def test_multi_label_classifier_learns(multi_label_run):
    run_dir, _, output = multi_label_run
    metrics = json.loads((run_dir / "metrics.json").read_text())
    # Chance is a macro F1 near 0.45 (each label guessed at random), 0.6 predicting every label for every example.
    assert metrics["eval_f1_macro"] >= 0.85, metrics
    assert {"eval_f1_micro", "eval_precision_macro", "eval_recall_micro", "eval_subset_accuracy"} <= set(metrics)
    assert metrics["eval_subset_accuracy"] >= 0.4  # all three labels right: 1 in 8 when guessing
    assert "f1_macro" in output and "subset_accuracy" in output  # the run's summary
    state = json.loads((run_dir / "trainer_state.json").read_text())
    assert state["best_metric"] == max(entry["eval_f1_macro"] for entry in state["log_history"]
                                       if "eval_f1_macro" in entry)  # the best checkpoint is picked by macro F1


def test_threshold_is_tuned_and_saved(multi_label_run):
    run_dir, validation, _ = multi_label_run
    metrics = json.loads((run_dir / "metrics.json").read_text())
    config = json.loads((run_dir / "config.json").read_text())
    assert metrics["threshold_tuned_on"] == "validation" and 0 < metrics["threshold"] < 1
    assert config["multi_label_threshold"] == metrics["threshold"]
    assert config["problem_type"] == "multi_label_classification"
    assert config["id2label"] == {"0": "negative", "1": "plot", "2": "positive"}
    rows = [json.loads(line) for line in (run_dir / "predictions" / "validation.jsonl").read_text().splitlines()]
    assert [row["labels"] for row in rows] == [sorted(row["labels"]) for row in validation]
    assert all(score >= metrics["threshold"] for row in rows for score in row["scores"].values())
    exact = sum(sorted(row["prediction"]) == row["labels"] for row in rows) / len(rows)
    assert exact == pytest.approx(metrics["eval_subset_accuracy"])


def test_predict_prints_every_label_over_the_threshold(cli, multi_label_run):
    run_dir, _, _ = multi_label_run
    result = cli(["predict", run_dir, "--text", "a wonderful film with a clever script", "--text", "a dull film"])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if "\t" in line]
    first = dict(hit.rsplit(" ", 1) for hit in lines[0].split("\t")[0].split(", "))
    assert set(first) == {"positive", "plot"} and lines[0].endswith("\ta wonderful film with a clever script")
    assert all(0.5 <= float(score) <= 1 for score in first.values())
    assert lines[1].split(" ")[0] == "negative"
    result = cli(["predict", run_dir, "--text", "a wonderful film", "--json"])
    record = json.loads(result.stdout.strip().splitlines()[-1])
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert [hit["label"] for hit in record["labels"]] == ["positive"]
    assert record["threshold"] == metrics["threshold"]


def test_saved_run_loads_in_the_transformers_pipeline(multi_label_run):
    from transformers import pipeline

    run_dir, _, _ = multi_label_run
    classifier = pipeline("text-classification", model=str(run_dir), top_k=None)
    scores = {hit["label"]: hit["score"] for hit in classifier(["a gorgeous film with a good plot"])[0]}
    assert set(scores) == {"positive", "negative", "plot"}
    assert scores["positive"] > 0.5 and scores["plot"] > 0.5 and scores["negative"] < 0.5
    assert sum(scores.values()) > 1.2  # one sigmoid per label, not a softmax over them


def test_evaluate_scores_a_multi_label_checkpoint(cli, multi_label_run, tmp_path):
    run_dir, validation, _ = multi_label_run
    metrics = json.loads((run_dir / "metrics.json").read_text())
    # Labels given in another order: they are matched to the checkpoint's by name.
    data = write_jsonl(tmp_path / "validation.jsonl", [{"text": row["text"], "labels": row["labels"][::-1]}
                                                       for row in validation])
    result = cli(["evaluate", run_dir, "--dataset", data, "--output-dir", tmp_path / "results"])
    assert result.exit_code == 0, result.output
    text = "\n".join(path.read_text() for path in (tmp_path / "results").rglob("*.json"))
    scores = [float(value) for value in re.findall(r'"f1_macro,none": ([0-9.e-]+)', text)]
    # The checkpoint's saved threshold, the same examples: the run's own validation score.
    assert scores and scores[0] == pytest.approx(metrics["eval_f1_macro"])


def _goemotions_like(path, rows):
    """GoEmotions' layout: no header, text (CSV-quoted when it holds quotes), comma-separated ids, comment id."""
    lines = []
    for index, row in enumerate(rows):
        text = row["text"] if index % 3 else f'"he said ""{row["text"]}"" "'
        lines.append(f"{text}\t{','.join(str(['negative', 'plot', 'positive'].index(n)) for n in row['labels'])}"
                     f"\tid{index}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_headerless_tsv_with_label_ids_and_a_names_file(cli, tmp_path, tiny_bert):
    rows = [row for row in multi_label_rows(80, seed=2) if row["labels"]]
    train = _goemotions_like(tmp_path / "train.tsv", rows)
    names = tmp_path / "labels.txt"
    names.write_text("negative\nplot\npositive", encoding="utf-8")  # no final newline, as emotions.txt
    result = cli(["classify", "--model", tiny_bert, "--train-file", train, "--validation-file", train,
                  "--column-names", "text,labels,id", "--multi-label", "--label-names", names,
                  "--output-dir", tmp_path / "run", "--max-steps", "2", "--batch-size", "8"])
    assert result.exit_code == 0, result.output
    written = (tmp_path / "run" / "predictions" / "validation.jsonl").read_text().splitlines()
    predictions = [json.loads(line) for line in written]
    assert predictions[0]["text"].startswith('he said "') and predictions[1]["text"] == rows[1]["text"]
    assert [row["labels"] for row in predictions] == [sorted(row["labels"]) for row in rows]
    recipe = (tmp_path / "run" / "recipe.yaml").read_text()
    assert "- negative" in recipe and "labels.txt" not in recipe  # the names are saved, not the file's path


def test_label_id_outside_the_names_is_refused(cli, tmp_path, tiny_bert):
    train = tmp_path / "train.tsv"
    train.write_text("good film\t0,7\ta\nbad film\t1\tb\n", encoding="utf-8")
    result = cli(["classify", "--model", tiny_bert, "--train-file", train, "--column-names", "text,labels,id",
                  "--multi-label", "--label-names", "bad", "--label-names", "good", "--dry-run"])
    assert result.exit_code == 2
    assert "Label '7' in the train data is not one of the labels" in result.output


@requires_data
def test_goemotions_raw_tsv_checks_with_flags_only(cli, data_dir, tiny_bert):
    folder = data_dir / "classification" / "goemotions"
    result = cli(["classify", "--model", tiny_bert, "--train-file", folder / "train.tsv",
                  "--validation-file", folder / "dev.tsv", "--column-names", "text,labels,id", "--multi-label",
                  "--label-names", folder / "emotions.txt", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "28 labels; labels per example: 1: 36308, 2: 6541, 3: 532, 4: 28, 5: 1" in result.output
    assert "neutral 14219" in result.output and "admiration 4130" in result.output
    assert "--class-weights auto" in result.output  # grief is 0.2% of the training labels


def test_a_lora_multi_label_run_keeps_its_head_and_threshold(cli, tmp_path, tiny_bert):
    from finetune.models.lora import label_kwargs

    train = write_jsonl(tmp_path / "train.jsonl", multi_label_rows(32, seed=3))
    result = cli(["classify", "--model", tiny_bert, "--train-file", train, "--validation-file", train, "--lora",
                  "--threshold", "0.3", "--max-steps", "2", "--batch-size", "16", "--output-dir", tmp_path / "run"])
    assert result.exit_code == 0, result.output
    assert label_kwargs(tmp_path / "run")["problem_type"] == "multi_label_classification"  # the card's snippet
    result = cli(["predict", tmp_path / "run", "--text", "a good film", "--json"])
    record = json.loads(result.stdout.strip().splitlines()[-1])
    assert record["threshold"] == 0.3 and all(hit["score"] >= 0.3 for hit in record["labels"])


@requires_data
def test_goemotions_trains_and_predicts_end_to_end(cli, data_dir, tiny_bert, tmp_path):
    """The raw TSV (a few steps on a tiny model), then predict and the transformers pipeline on the saved run."""
    from transformers import pipeline

    folder = data_dir / "classification" / "goemotions"
    result = cli(["classify", "--model", tiny_bert, "--train-file", folder / "train.tsv", "--validation-file",
                  folder / "dev.tsv", "--column-names", "text,labels,id", "--multi-label", "--label-names",
                  folder / "emotions.txt", "--max-train-samples", "64", "--max-eval-samples", "32", "--max-steps",
                  "2", "--batch-size", "16", "--output-dir", tmp_path / "run"])
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert {"eval_f1_macro", "eval_f1_micro", "eval_subset_accuracy"} <= set(metrics)
    first = json.loads((tmp_path / "run" / "predictions" / "validation.jsonl").read_text().splitlines()[0])
    assert first["text"] == "Is this in New Orleans?? I really feel like this is New Orleans." and first["labels"] == [
        "neutral"]
    result = cli(["predict", tmp_path / "run", "--text", "Thank you so much!", "--json"])
    assert "labels" in json.loads(result.stdout.strip().splitlines()[-1])
    scores = pipeline("text-classification", model=str(tmp_path / "run"), top_k=None)(["Thank you!"])[0]
    assert len(scores) == 28 and {hit["label"] for hit in scores} >= {"gratitude", "neutral", "grief"}


@requires_data
def test_goemotions_as_json_label_lists_needs_no_flags(cli, data_dir, tiny_bert, tmp_path):
    import csv

    folder = data_dir / "classification" / "goemotions"
    names = (folder / "emotions.txt").read_text(encoding="utf-8").split()
    with (folder / "dev.tsv").open(encoding="utf-8", newline="") as handle:
        rows = [{"text": text, "labels": [names[int(i)] for i in ids.split(",")]}
                for text, ids, _ in list(csv.reader(handle, delimiter="\t"))[:300]]
    train = write_jsonl(tmp_path / "train.jsonl", rows)
    result = cli(["classify", "--model", tiny_bert, "--train-file", train, "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "multi-label" in result.output and "labels per example: 1: " in result.output
