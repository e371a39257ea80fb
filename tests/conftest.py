"""Shared fixtures: offline mode, isolated caches, the real-data folder, and tiny models built once per session."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

# Before anything imports huggingface_hub or datasets: tests never touch the network, and never read or write the
# user's caches (a warm cache would skip the parsing and tokenizing paths the tests mean to exercise).
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
_CACHES = Path(tempfile.mkdtemp(prefix="finetune-test-caches-"))
os.environ["HF_DATASETS_CACHE"] = str(_CACHES / "datasets")
os.environ["FINETUNE_CACHE_DIR"] = str(_CACHES / "finetune")
atexit.register(shutil.rmtree, _CACHES, ignore_errors=True)

import pytest  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("FINETUNE_DATA_DIR", REPO_ROOT.parent / "shared" / "data"))
# CI sets FINETUNE_REQUIRE_DATA=1: there a missing data folder fails the real-data tests instead of skipping them.
REQUIRE_DATA = os.environ.get("FINETUNE_REQUIRE_DATA", "").lower() in ("1", "true", "yes")
_MISSING = f"real data folder {DATA_DIR} not found (set FINETUNE_DATA_DIR)"


def _data_missing() -> None:
    if REQUIRE_DATA:
        pytest.fail(f"{_MISSING}, and FINETUNE_REQUIRE_DATA is set", pytrace=False)
    pytest.skip(_MISSING)


# `@requires_data`: the test needs the data folder (skipped without it, failed under FINETUNE_REQUIRE_DATA).
requires_data = pytest.mark.usefixtures("data_dir")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not DATA_DIR.is_dir():
        _data_missing()
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


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models gain nothing from intra-op threads, and on a shared 2-core machine two threads per process
    oversubscribe the cores (a tiny seq2seq run measured 4 s with one thread, 50 s with two under load)."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def cli(monkeypatch):
    """Run the Typer app in-process: cli(["classify", ...]) -> click Result (exit_code, output)."""
    from typer.testing import CliRunner

    from finetune.cli import app

    runner = CliRunner()

    def invoke(args: list[str]):
        return runner.invoke(app, [str(arg) for arg in args], catch_exceptions=False)

    return invoke


@pytest.fixture
def cache_dir(tmp_path, monkeypatch) -> Path:
    """An empty tokenization cache of this test's own, caching even the small splits of tests."""
    import finetune.data.caching

    monkeypatch.setenv("FINETUNE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("FINETUNE_NO_CACHE", raising=False)
    monkeypatch.setattr(finetune.data.caching, "MIN_ROWS", 0)
    return tmp_path / "cache"
