"""Shared fixtures: offline mode, the real-data folder, and tiny models built once per session."""

from __future__ import annotations

import os
from pathlib import Path

# Before anything imports huggingface_hub: tests never touch the network.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("FINETUNE_DATA_DIR", REPO_ROOT.parent / "shared" / "data"))

requires_data = pytest.mark.skipif(not DATA_DIR.is_dir(), reason=f"real data folder {DATA_DIR} not found "
                                   "(set FINETUNE_DATA_DIR)")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not DATA_DIR.is_dir():
        pytest.skip(f"real data folder {DATA_DIR} not found (set FINETUNE_DATA_DIR)")
    return DATA_DIR


@pytest.fixture(scope="session")
def sentiment_rows():
    from finetune.tasks.smoke_data import make_sentiment_rows

    return make_sentiment_rows(400, seed=0), make_sentiment_rows(120, seed=1)


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory, sentiment_rows) -> Path:
    """A tiny random BERT whose tokenizer knows the sentiment vocabulary and some GLUE-ish English."""
    from tests.builders import build_tiny_bert

    train, _ = sentiment_rows
    extra = ["the cat sat on the mat", "a man is playing a guitar", "is this sentence grammatical ?"]
    return build_tiny_bert(tmp_path_factory.mktemp("models") / "tiny-bert", [row["text"] for row in train] + extra)


@pytest.fixture
def cli(monkeypatch):
    """Run the Typer app in-process: cli(["classify", ...]) -> click Result (exit_code, output)."""
    from typer.testing import CliRunner

    from finetune.cli import app

    runner = CliRunner()

    def invoke(args: list[str]):
        return runner.invoke(app, [str(arg) for arg in args], catch_exceptions=False)

    return invoke
