"""Fault injection (issue 13): SIGKILL a real run at each phase (loading, training, checkpoint save, final save,
metrics write) and show that the recovery ends with the uninterrupted run's metrics, or refuses clearly.

Each phase is recognised by a file the run writes as it enters it; the kill lands at that moment or a little
later, so every outcome the timing allows is accepted, and each must be right: a re-run (loading) or `--resume`
reaches identical evaluation metrics, or, when the run had already finished, `--resume` refuses in one line.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import write_csv

EXACT = ("eval_loss", "eval_accuracy", "eval_f1")


@pytest.fixture(scope="module")
def job(tmp_path_factory, tiny_bert, sentiment_rows):
    """A small run: 20 steps, evaluated and checkpointed every 5, on the CPU."""
    work = tmp_path_factory.mktemp("kill")
    train, validation = sentiment_rows
    args = [sys.executable, "-m", "finetune", "classify", "--model", str(tiny_bert),
            "--train-file", str(write_csv(work / "train.csv", train[:160])),
            "--validation-file", str(write_csv(work / "validation.csv", validation[:40])),
            "--epochs", "1", "--batch-size", "8", "--learning-rate", "1e-3", "--max-length", "32",
            "train.eval_strategy=steps", "train.eval_steps=5", "train.save_total_limit=10", "train.use_cpu=true"]
    return work, args


def _env() -> dict:
    return {**os.environ, "HF_HUB_OFFLINE": "1"}


def run_job(args: list[str], output_dir: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([*args, "--output-dir", str(output_dir), *extra], capture_output=True, text=True,
                          env=_env(), timeout=600)


@pytest.fixture(scope="module")
def uninterrupted(job):
    work, args = job
    result = run_job(args, work / "full")
    assert result.returncode == 0, result.stderr
    return json.loads((work / "full" / "metrics.json").read_text())


def _phase_reached(run_dir: Path, phase: str) -> bool:
    if phase == "loading":
        return (run_dir / ".finetune.owner").exists()  # the lock is taken: inputs are being checked and loaded
    if phase == "training":
        return (run_dir / "recipe.yaml").exists()  # written just before the first step
    if phase == "checkpoint save":
        return any(run_dir.glob("checkpoint-*"))
    if phase == "final save":
        return (run_dir / ".final-model.tmp").exists()
    if phase == "metrics write":
        return (run_dir / "README.md").exists()  # the model card, written just before metrics.json
    raise ValueError(phase)


def kill_at(args: list[str], run_dir: Path, phase: str) -> None:
    process = subprocess.Popen([*args, "--output-dir", str(run_dir)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True, env=_env())
    deadline = time.monotonic() + 600
    while not _phase_reached(run_dir, phase) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    process.send_signal(signal.SIGKILL)
    process.wait()


@pytest.mark.parametrize("phase", ["loading", "training", "checkpoint save", "final save", "metrics write"])
def test_sigkill_at_each_phase_then_recover(job, uninterrupted, phase):
    work, args = job
    run_dir = work / phase.replace(" ", "-")
    kill_at(args, run_dir, phase)
    finished = (run_dir / "metrics.json").exists()
    if finished:  # the kill landed after the run ended: resuming is refused, in one line
        result = run_job(args, run_dir, "--resume")
        assert result.returncode == 2 and "nothing to resume" in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
        metrics = json.loads((run_dir / "metrics.json").read_text())
    else:
        trained = any(run_dir.glob("checkpoint-*")) if run_dir.exists() else False
        # Before any checkpoint, the same command (no flags) must simply start again: nothing left blocks it.
        result = run_job(args, run_dir, *(["--resume"] if trained else []))
        assert result.returncode == 0, result.stderr
        metrics = json.loads((run_dir / "metrics.json").read_text())
    assert {key: metrics[key] for key in EXACT} == {key: uninterrupted[key] for key in EXACT}
    assert metrics["global_step"] == uninterrupted["global_step"]
