"""What a run prints to a log file (no terminal): the run's own lines, no progress bars, no library chatter.

Run as a real process with output redirected, as a user's `finetune ... > log.txt 2>&1` or a CI job would: the
libraries decide about progress bars and colours from the environment and their import-time settings, which an
in-process run would not show.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from finetune.tasks.smoke_data import make_sentences, make_sentiment_rows, make_summary_rows
from tests.helpers import write_csv, write_jsonl

NOISE = ("█", "it/s]", "Loading weights", "Writing model shards", "Generating train split", "Map:", "LOAD REPORT",
         "MISSING", "missing keys", "loss_type", "mtime may not be reliable", "seem to have been set")


def run_logged(args: list, cwd) -> str:
    """`finetune ARGS > log 2>&1` in a fresh process: the log's text."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    env.pop("HF_DATASETS_DISABLE_PROGRESS_BARS", None)  # what finetune does itself, not the test set-up, must count
    log = cwd / "log.txt"
    with log.open("w") as handle:
        completed = subprocess.run([sys.executable, "-m", "finetune", *map(str, args)], cwd=cwd, env=env,
                                   stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=600)
    text = log.read_text(encoding="utf-8")
    assert completed.returncode == 0, text
    return text


@pytest.mark.parametrize("family", ["classification", "summarization", "generation"])
def test_a_log_file_has_no_progress_bars_or_library_reports(family, tmp_path):
    from finetune.tasks import get_family

    if family == "classification":
        train = write_csv(tmp_path / "train.csv", make_sentiment_rows(64, seed=0))
        validation = write_csv(tmp_path / "validation.csv", make_sentiment_rows(16, seed=1))
    elif family == "summarization":
        train = write_jsonl(tmp_path / "train.jsonl", make_summary_rows(32, seed=0))
        validation = write_jsonl(tmp_path / "validation.jsonl", make_summary_rows(4, seed=1))
    else:
        train, validation = tmp_path / "train.txt", tmp_path / "validation.txt"
        train.write_text("\n".join(make_sentences(200, seed=0)), encoding="utf-8")
        validation.write_text("\n".join(make_sentences(20, seed=1)), encoding="utf-8")
    command = get_family(family).command
    if family == "classification":  # the whole path once: tiny-model, train, predict
        log = run_logged(["tiny-model", "--task", family, "--train-file", train, "--output-dir", "tiny"], tmp_path)
    else:  # the others' own noise is in training (tied weights reloaded, GPT-2's loss type)
        log = ""
        get_family(family).tiny_model(tmp_path / "tiny", train.read_text().splitlines())
    # Two epochs with evaluation: the best checkpoint is reloaded at the end (tied weights: T5, GPT-2).
    log += run_logged([command, "--model", "tiny", "--train-file", train, "--validation-file", validation,
                       "--epochs", "2", "--batch-size", "16", "--output-dir", "run", "data.max_length=32"], tmp_path)
    summary = log[log.index("\n  task "):]
    assert "model_preparation_time" not in summary and "process(es)" not in summary, summary
    if family == "classification":
        log += run_logged(["predict", "run", "--text", "the cat sees a red ball ."], tmp_path)
        assert "new classification head initialised: 2 labels" in log
    assert [noise for noise in NOISE if noise in log] == [], log
    assert "\x1b[" not in log, log  # no terminal colours in a file


def test_a_harmless_library_warning_is_dropped_even_where_transformers_propagates(caplog, monkeypatch):
    """With CI=1 transformers hands its records to the root logger's handlers too: the filter must sit before both."""
    import logging

    import transformers

    from finetune.training.trainer import configure_library_logging

    monkeypatch.setenv("FINETUNE_VERBOSITY", "normal")
    configure_library_logging()
    transformers.logging.enable_propagation()
    try:
        with caplog.at_level(logging.WARNING):
            emitter = transformers.logging.get_logger("transformers.trainer_utils")
            emitter.warning("mtime may not be reliable on this filesystem, falling back to numerical ordering")
            emitter.warning("a warning a user should read")
    finally:
        transformers.logging.disable_propagation()
    messages = {record.getMessage() for record in caplog.records}
    assert messages == {"a warning a user should read"}, messages
