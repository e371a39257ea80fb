"""Bad input ends with one clear message naming the fix and exit code 2, before any expensive work."""

from __future__ import annotations

import time

import pytest

from tests.helpers import write_csv


@pytest.fixture
def train_csv(tmp_path, sentiment_rows):
    return write_csv(tmp_path / "train.csv", sentiment_rows[0][:40])


def error_of(result) -> str:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    return result.output


def test_missing_data_file(cli, tmp_path, tiny_bert):
    message = error_of(cli(["classify", "--model", tiny_bert, "--train-file", tmp_path / "nope.csv"]))
    assert "not found" in message and "nope.csv" in message


def test_unknown_column_lists_the_columns(cli, tmp_path, tiny_bert, train_csv):
    message = error_of(cli(["classify", "--model", tiny_bert, "--train-file", train_csv, "--text-column", "review",
                            "--output-dir", tmp_path / "run"]))
    assert "'review'" in message and "text, label" in message and "--text-column" in message
    assert not (tmp_path / "run" / "recipe.yaml").exists()


def test_recipe_typo_gets_did_you_mean(cli, tmp_path):
    recipe = tmp_path / "typo.yaml"
    recipe.write_text("task: classification\ntrain:\n  epoch: 3\n")
    message = error_of(cli(["train", recipe]))
    assert str(recipe) in message and "train.epoch" in message and "Did you mean 'epochs'" in message


def test_override_typo_and_wrong_type(cli):
    message = error_of(cli(["recipes", "validate", "glue/sst2", "--set", "train.learning_rte=1e-4"]))
    assert "learning_rate" in message
    message = error_of(cli(["recipes", "validate", "glue/sst2", "--set", "train.epochs=many"]))
    assert "train.epochs" in message


def test_model_that_does_not_exist_fails_fast(cli, tmp_path, train_csv):
    started = time.perf_counter()
    message = error_of(cli(["classify", "--model", "nobody/no-such-model", "--train-file", train_csv,
                            "--output-dir", tmp_path / "run"]))
    assert time.perf_counter() - started < 30  # no minute of Hub retries
    assert "nobody/no-such-model" in message and "local" in message


def test_folder_that_is_not_a_model(cli, tmp_path, train_csv):
    (tmp_path / "empty-model").mkdir()
    message = error_of(cli(["classify", "--model", tmp_path / "empty-model", "--train-file", train_csv,
                            "--output-dir", tmp_path / "run"]))
    assert "not a model folder" in message


def test_max_length_beyond_the_model(cli, tmp_path, tiny_bert, train_csv):
    message = error_of(cli(["classify", "--model", tiny_bert, "--train-file", train_csv, "--max-length", "4096",
                            "--output-dir", tmp_path / "run"]))
    assert "512" in message and "--max-length" in message


def test_missing_labels(cli, tmp_path, tiny_bert):
    rows = [{"text": "good film", "label": "positive"}, {"text": "bad film", "label": ""}] * 5
    message = error_of(cli(["classify", "--model", tiny_bert, "--train-file", write_csv(tmp_path / "t.csv", rows),
                            "--output-dir", tmp_path / "run"]))
    assert "missing" in message and "label" in message


def test_unknown_glue_task(cli, tiny_bert):
    message = error_of(cli(["classify", "--model", tiny_bert, "--dataset", "glue/sst3"]))
    assert "Did you mean 'sst2'" in message


def test_predict_without_input(cli, tmp_path):
    message = error_of(cli(["predict", tmp_path]))
    assert "model" in message or "--text" in message


def test_non_utf8_data(cli, tmp_path, tiny_bert):
    path = tmp_path / "latin1.csv"
    path.write_bytes("text,label\ncaf\xe9 cr\xe8me,positive\nbad,negative\n".encode("latin-1"))
    message = error_of(cli(["classify", "--model", tiny_bert, "--train-file", path, "--output-dir", tmp_path / "r"]))
    assert "UTF-8" in message


def test_label_outside_the_declared_labels(cli, tmp_path, tiny_bert, train_csv):
    message = error_of(cli(["classify", "--model", tiny_bert, "--train-file", train_csv, "--output-dir",
                            tmp_path / "run", "data.label_names=[negative,neutral]"]))
    assert "'positive'" in message and "label_names" in message


def test_empty_training_split(cli, tmp_path, tiny_bert):
    path = tmp_path / "empty.csv"
    path.write_text("text,label\n")
    message = error_of(cli(["classify", "--model", tiny_bert, "--train-file", path, "--output-dir", tmp_path / "r"]))
    assert "empty" in message or "no rows" in message


def test_no_disk_space_is_caught_before_training(cli, tmp_path, tiny_bert, train_csv, monkeypatch):
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9, 1000))
    message = error_of(cli(["classify", "--model", tiny_bert, "--train-file", train_csv, "--output-dir",
                            tmp_path / "run"]))
    assert "disk space" in message
    assert not any((tmp_path / "run").glob("checkpoint-*"))


def test_dry_run_checks_without_training(cli, tmp_path, tiny_bert, train_csv):
    result = cli(["classify", "--model", tiny_bert, "--train-file", train_csv, "--output-dir", tmp_path / "run",
                  "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "labels (train)" in result.output and "negative" in result.output and "steps" in result.output
    assert not (tmp_path / "run").exists()
    message = error_of(cli(["classify", "--model", tiny_bert, "--train-file", train_csv, "--text-column", "body",
                            "--dry-run"]))
    assert "'body'" in message


def test_check_command_on_a_shipped_recipe(cli, tiny_bert, data_dir):
    result = cli(["check", "glue/rte", f"data.data_dir={data_dir}", f"model.name={tiny_bert}"])
    assert result.exit_code == 0, result.output
    assert "entailment 1249" in result.output  # RTE train: 1,249 entailment of 2,490


def test_secrets_never_reach_the_saved_recipe(cli, tmp_path, tiny_bert, train_csv, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_secret_value_123")
    result = cli(["classify", "--model", tiny_bert, "--train-file", train_csv, "--output-dir", tmp_path / "run",
                  "--max-steps", "1", "train.eval_strategy=no"])
    assert result.exit_code == 0, result.output
    assert "hf_secret_value_123" not in (tmp_path / "run" / "recipe.yaml").read_text()


def test_model_of_the_wrong_kind_for_the_task(cli, tmp_path):
    from tests.builders import build_tiny_t5

    texts = ["the cat sat on the mat", "a dog ran in the park"] * 20
    t5 = build_tiny_t5(tmp_path / "t5", texts)
    (tmp_path / "corpus.txt").write_text("\n".join(texts) + "\n")
    message = error_of(cli(["generate", "--model", t5, "--train-file", tmp_path / "corpus.txt",
                            "--output-dir", tmp_path / "run"]))
    assert "wrong kind of model" in message


def test_a_missing_model_folder_says_so(cli, tmp_path, train_csv):
    for name in (tmp_path / "no-such-model", "./models/nope", "../nope"):
        message = error_of(cli(["classify", "--model", name, "--train-file", train_csv, "--output-dir",
                                tmp_path / "run", "--dry-run"]))
        assert f"Model folder '{name}' not found" in message, message
        assert "Repo id" not in message and "alphanumeric" not in message


def test_glue_without_the_hub_suggests_data_dir(cli, tmp_path, tiny_bert):
    result = cli(["classify", "--model", tiny_bert, "--dataset", "glue/rte", "--output-dir", tmp_path / "run",
                  "--dry-run"])
    if result.exit_code == 0:
        pytest.skip("GLUE RTE is in the local Hugging Face cache")
    assert "--data-dir" in error_of(result) and "glue/RTE/" in result.output


def test_help_offers_what_each_command_accepts_and_shows_defaults(cli):
    classify, summarize, generate = (cli([command, "--help"]).output for command in ("classify", "summarize",
                                                                                     "generate"))
    assert "glue/<task>" in classify and "glue" not in summarize and "glue" not in generate
    for text in (classify, summarize, generate):
        assert "Default: 3" in text  # --epochs
        lora = next(line for line in text.splitlines() if "--lora" in line)
        assert "<bool>" not in lora, lora  # a switch takes no value
