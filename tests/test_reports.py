"""What a run leaves for people: summary, plots, a Hub-format model card, trackers, and pushing to the Hub."""

from __future__ import annotations

import json
import typing

import pytest

from tests.helpers import write_csv
from tests.test_classify_cli import FAST


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tiny_bert, sentiment_rows):
    from typer.testing import CliRunner

    from finetune.cli import app

    work = tmp_path_factory.mktemp("report")
    train, validation = sentiment_rows
    # A short run: 128 examples, batch 16, 2 epochs = 16 steps, and no logging_steps (the default must still log).
    args = ["classify", "--model", tiny_bert, "--train-file", write_csv(work / "train.csv", train[:128]),
            "--validation-file", write_csv(work / "validation.csv", validation[:50]), "--output-dir", work / "run",
            *FAST, "--epochs", "2"]
    result = CliRunner().invoke(app, [str(arg) for arg in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return work / "run", result.output


def test_summary_names_the_metrics_and_the_run_directory(run_dir):
    path, output = run_dir
    metrics = json.loads((path / "metrics.json").read_text())
    assert f"accuracy    {metrics['eval_accuracy']:.4f}" in output
    assert "samples/s" in output and str(path) in output
    assert "█" not in output and "it/s]" not in output  # no progress bars when not a terminal


def test_a_short_run_logs_a_loss_curve_and_writes_every_promised_plot(run_dir):
    path, _ = run_dir
    history = json.loads((path / "trainer_state.json").read_text())["log_history"]
    assert json.loads((path / "metrics.json").read_text())["global_step"] == 16
    assert len([entry for entry in history if "loss" in entry]) >= 4
    for name in ("loss.png", "learning_rate.png", "eval_metrics.png"):
        png = path / "plots" / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_model_card_metadata_parses_and_matches_metrics(run_dir):
    from tests.helpers import checked_model_card

    path, _ = run_dir
    card = checked_model_card(path)  # huggingface_hub parses it; model-index = metrics.json; the snippet runs
    metrics = json.loads((path / "metrics.json").read_text())
    data = card.data
    assert data.pipeline_tag == "text-classification" and data.library_name == "transformers"
    assert data.base_model is None and data.datasets is None  # local model and data are not Hub ids
    assert data.eval_results[0].dataset_type == "local"
    assert "pipeline('text-classification'" in card.text
    assert f"| accuracy | {metrics['eval_accuracy']:.4f} |" in card.text
    assert "finetune train recipe.yaml" in card.text


def test_card_metadata_for_hub_names_language_and_license():
    """Hub ids are named as such, translation pairs give the language, a recipe license wins; validated by
    huggingface_hub's own model-index parser."""
    from huggingface_hub import ModelCard

    from finetune.config.schema import Recipe
    from finetune.outputs.card import card_data

    recipe = Recipe.model_validate({"task": "translation", "model": {"name": "google-t5/t5-small"},
                                    "data": {"dataset": "wmt/wmt16", "config": "de-en", "source_lang": "en",
                                             "target_lang": "de"},
                                    "card": {"license": "apache-2.0"}, "peft": {"enabled": True}})
    data = card_data(recipe, {"eval_bleu": 12.5, "eval_loss": 1.25}, "run", "translation",
                     {"name": "wmt/wmt16", "type": "wmt/wmt16", "config": "de-en", "split": "validation"})
    card = ModelCard(f"---\n{data.to_yaml()}\n---\n# run\n")
    assert card.data.language == ["en", "de"] and card.data.license == "apache-2.0"
    assert card.data.base_model == "google-t5/t5-small" and card.data.datasets == ["wmt/wmt16"]
    assert card.data.library_name == "peft" and "lora" in card.data.tags
    assert {(r.metric_type, r.metric_value, r.dataset_config) for r in card.data.eval_results} == {
        ("bleu", 12.5, "de-en"), ("loss", 1.25, "de-en")}


def test_run_files_are_readable_as_the_umask_allows(run_dir):
    """Atomic writes go through a temporary file (mode 0600); the finished files get open()'s mode instead."""
    from finetune.outputs.files import current_umask

    path, _ = run_dir
    expected = 0o666 & ~current_umask()
    for name in ("model.safetensors", "metrics.json", "README.md", "recipe.yaml", "config.json",
                 "predictions/validation.jsonl"):
        assert (path / name).stat().st_mode & 0o777 == expected, name


def test_quiet_hides_the_training_logs(cli, tmp_path, tiny_bert, sentiment_rows):
    train, _ = sentiment_rows
    result = cli(["--quiet", "classify", "--model", tiny_bert,
                  "--train-file", write_csv(tmp_path / "t.csv", train[:64]),
                  "--output-dir", tmp_path / "run", "--max-steps", "4", "train.logging_steps=1"])
    assert result.exit_code == 0, result.output
    assert "{'loss'" not in result.output and "written to" in result.output


def test_missing_tracker_package_is_a_clear_error(cli, tmp_path, tiny_bert, sentiment_rows):
    import importlib.util

    if importlib.util.find_spec("wandb") is not None:
        pytest.skip("wandb is installed here")
    train, _ = sentiment_rows
    train_file = write_csv(tmp_path / "t.csv", train[:32])
    args = ["classify", "--model", tiny_bert, "--train-file", train_file, "--output-dir", tmp_path / "run"]
    result = cli([*args, "train.report_to=wandb"])
    assert result.exit_code == 2 and "finetune[wandb]" in result.output
    assert not (tmp_path / "run").exists()  # nothing written: the same command works once wandb is there
    result = cli([*args, "--dry-run", "train.report_to=[tensorboard, wandb]"])
    assert result.exit_code == 2 and "finetune[wandb]" in result.output


def test_report_to_takes_one_name_a_comma_list_or_a_list():
    from finetune.config.schema import TrainSection

    assert TrainSection(report_to="tensorboard").report_to == ["tensorboard"]
    assert TrainSection(report_to="tensorboard, wandb").report_to == ["tensorboard", "wandb"]
    assert TrainSection(report_to=["mlflow"]).report_to == ["mlflow"]
class FakeHubApi:
    """Stands in for huggingface_hub.HfApi at the network boundary; records what would be uploaded."""

    calls: typing.ClassVar[list] = []

    def __init__(self, token=None):
        self.token = token

    def create_repo(self, repo_id, private=False, exist_ok=False):
        FakeHubApi.calls.append(("create_repo", repo_id, private, exist_ok, self.token))
        return f"https://huggingface.co/{repo_id}"

    def upload_folder(self, folder_path, repo_id, ignore_patterns, commit_message):
        FakeHubApi.calls.append(("upload_folder", folder_path, repo_id, tuple(ignore_patterns)))

    def whoami(self):
        FakeHubApi.calls.append(("whoami", self.token))
        return {"name": "someone", "orgs": [{"name": "a-lab"}], "auth": {"accessToken": {"role": "write"}}}


def test_push_uploads_the_run_without_checkpoints(cli, run_dir, monkeypatch):
    import huggingface_hub

    import finetune.hub

    path, _ = run_dir
    FakeHubApi.calls = []
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeHubApi)
    monkeypatch.setattr(finetune.hub, "hub_is_reachable", lambda timeout=3.0: True)
    monkeypatch.setenv("HF_TOKEN", "hf_test_token")
    result = cli(["push", path, "--repo-id", "someone/tiny-sentiment", "--private"])
    assert result.exit_code == 0, result.output
    assert FakeHubApi.calls[0] == ("create_repo", "someone/tiny-sentiment", True, True, "hf_test_token")
    _, folder, repo, ignore = FakeHubApi.calls[1]
    assert folder == str(path) and repo == "someone/tiny-sentiment" and "checkpoint-*" in ignore


def test_push_fails_fast_without_token_or_network(cli, run_dir, monkeypatch):
    import huggingface_hub

    path, _ = run_dir
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    result = cli(["push", path, "--repo-id", "someone/x"])
    assert result.exit_code == 2 and "hf auth login" in result.output
    monkeypatch.setenv("HF_TOKEN", "hf_test_token")
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: "hf_test_token")
    result = cli(["push", path, "--repo-id", "someone/x"])  # HF_HUB_OFFLINE=1 in tests
    assert result.exit_code == 2 and "cannot be reached" in result.output
    result = cli(["push", path, "--repo-id", "no-slash"])
    assert result.exit_code == 2 and "user/name" in result.output


def test_logging_interval_scales_with_the_run():
    from finetune.config.schema import TrainSection
    from finetune.training.arguments import logging_interval

    assert logging_interval(TrainSection(max_steps=16), 1000) == 1
    assert logging_interval(TrainSection(epochs=3, batch_size=32), 67_349) == 252  # SST-2: 6315 steps, 25 points
    assert logging_interval(TrainSection(max_steps=400, logging_steps=7), 10) == 7  # the recipe's wins


def test_push_to_hub_is_checked_before_training(cli, tmp_path, tiny_bert, sentiment_rows, monkeypatch):
    """No token, or a namespace the token cannot write to: the run stops before its directory exists; a good
    target passes --dry-run (the Hub answered through the fake at the network boundary)."""
    import huggingface_hub

    import finetune.hub

    train, _ = sentiment_rows
    args = ["classify", "--model", tiny_bert, "--train-file", write_csv(tmp_path / "t.csv", train[:32]),
            "--output-dir", tmp_path / "run"]
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    result = cli([*args, "--push-to-hub", "someone/tiny"])
    assert result.exit_code == 2 and "hf auth login" in result.output
    assert not (tmp_path / "run").exists()

    monkeypatch.setattr(huggingface_hub, "get_token", lambda: "hf_test_token")
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeHubApi)
    monkeypatch.setattr(finetune.hub, "hub_is_reachable", lambda timeout=3.0: True)
    result = cli([*args, "--push_to_hub", "somebody-else/tiny"])
    assert result.exit_code == 2 and "cannot create repos under 'somebody-else'" in result.output
    assert not (tmp_path / "run").exists()
    FakeHubApi.calls = []
    result = cli([*args, "--push-to-hub", "a-lab/tiny", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "a-lab/tiny (token may write there)" in result.output and FakeHubApi.calls == [("whoami", "hf_test_token")]
