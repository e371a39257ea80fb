"""A killed run resumes exactly; a partial checkpoint is skipped; Ctrl-C saves a checkpoint and says how to resume.

Same-seed CPU training is deterministic, so equal final metrics alone cannot tell a resume from a restart: each
test also checks what only a real resume gives (the steps this process trained, train_loss over those steps only).
"""

from __future__ import annotations

import json
import os
import re
import shutil
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
    """The command line of a small run that checkpoints every 10 steps (50 steps in all)."""
    work = tmp_path_factory.mktemp("resume")
    train, validation = sentiment_rows
    args = [sys.executable, "-m", "finetune", "classify", "--model", str(tiny_bert),
            "--train-file", str(write_csv(work / "train.csv", train[:200])),
            "--validation-file", str(write_csv(work / "validation.csv", validation[:60])),
            "--epochs", "2", "--batch-size", "8", "--learning-rate", "1e-3", "--max-length", "32",
            "train.eval_strategy=steps", "train.eval_steps=10", "train.save_total_limit=10", "train.logging_steps=1"]
    return work, args


def run_job(args: list[str], output_dir: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([*args, "--output-dir", str(output_dir), *extra], capture_output=True, text=True,
                          env=env, timeout=600)


def start_job(args: list[str], output_dir: Path) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.Popen([*args, "--output-dir", str(output_dir)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def wait_for(path: Path, process: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, f"the run ended before {path} appeared: {process.stderr.read()}"
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.01)


def final_metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


def step_losses(run_dir: Path) -> dict[int, float]:
    """The training loss logged at every step (logging_steps=1), from the run's trainer_state.json."""
    history = json.loads((run_dir / "trainer_state.json").read_text())["log_history"]
    return {entry["step"]: entry["loss"] for entry in history if "loss" in entry}


def assert_resumed_at(run_dir: Path, step: int, uninterrupted: dict) -> None:
    """The run resumed from checkpoint-`step`: train_loss averages the steps after it (as the README says), which a
    restart from step 0 (averaging every step) cannot match."""
    metrics = final_metrics(run_dir)
    assert metrics["resumed_from"] == str(run_dir / f"checkpoint-{step}")
    losses = step_losses(run_dir)
    assert sorted(losses) == list(range(1, metrics["global_step"] + 1))  # one log line per step, none twice
    after = [loss for logged_step, loss in losses.items() if logged_step > step]
    assert metrics["train_loss"] == pytest.approx(sum(after) / len(after), rel=1e-3)
    assert metrics["train_loss"] != pytest.approx(uninterrupted["train_loss"], rel=1e-3)


@pytest.fixture(scope="module")
def uninterrupted(job):
    work, args = job
    result = run_job(args, work / "full")
    assert result.returncode == 0, result.stderr
    return final_metrics(work / "full")


def test_killed_run_resumes_to_identical_metrics(job, uninterrupted):
    work, args = job
    run_dir = work / "killed"
    process = start_job(args, run_dir)
    wait_for(run_dir / "checkpoint-20" / "trainer_state.json", process)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (run_dir / "metrics.json").exists()  # killed mid-training, not after

    newest = max(int(path.name.split("-")[1]) for path in run_dir.glob("checkpoint-*")
                 if (path / "trainer_state.json").is_file())

    result = run_job(args, run_dir, "--resume")
    assert result.returncode == 0, result.stderr
    assert "Resuming from" in result.stderr
    resumed = final_metrics(run_dir)
    assert {key: resumed[key] for key in EXACT} == {key: uninterrupted[key] for key in EXACT}
    assert_resumed_at(run_dir, newest, uninterrupted)


def test_partial_last_checkpoint_is_skipped(job, uninterrupted):
    work, args = job
    run_dir = work / "partial"
    shutil.copytree(work / "full", run_dir)
    (run_dir / "metrics.json").unlink()
    for checkpoint in ("checkpoint-40", "checkpoint-50"):
        shutil.rmtree(run_dir / checkpoint, ignore_errors=True)
    (run_dir / "checkpoint-30" / "optimizer.pt").write_bytes(b"")  # a write cut short
    result = run_job(args, run_dir, "--resume")
    assert result.returncode == 0, result.stderr
    assert "Skipping" in result.stderr and "checkpoint-30" in result.stderr
    assert "Resuming from" in result.stderr and "checkpoint-20" in result.stderr
    resumed = final_metrics(run_dir)
    assert {key: resumed[key] for key in EXACT} == {key: uninterrupted[key] for key in EXACT}
    assert_resumed_at(run_dir, 20, uninterrupted)


def test_ctrl_c_saves_a_checkpoint_and_prints_the_resume_command(job, uninterrupted):
    work, args = job
    run_dir = work / "interrupted"
    process = start_job(args, run_dir)
    wait_for(run_dir / "checkpoint-10" / "trainer_state.json", process)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 130, stderr
    assert "--resume" in stderr and "Traceback" not in stderr
    assert not (run_dir / "metrics.json").exists()
    # The save Ctrl-C asked for: a complete checkpoint off the every-10-steps schedule, named in the message.
    saved = re.search(r"Interrupted at step (\d+); saved (\S+)\. Resume with", stderr)
    assert saved, stderr
    step = int(saved.group(1))
    assert step % 10 != 0 and Path(saved.group(2)) == run_dir / f"checkpoint-{step}"
    from finetune.training.checkpoints import incomplete_reason

    assert incomplete_reason(run_dir / f"checkpoint-{step}") is None

    result = run_job(args, run_dir, "--resume")
    assert result.returncode == 0, result.stderr
    resumed = final_metrics(run_dir)
    assert {key: resumed[key] for key in EXACT} == {key: uninterrupted[key] for key in EXACT}
    assert_resumed_at(run_dir, step, uninterrupted)


def test_a_second_ctrl_c_aborts_at_once():
    """Real SIGINTs to this process (two sent from a test process would coalesce into one): the first asks for a
    save at the end of the step, the second raises KeyboardInterrupt at once; the previous handler comes back."""
    from types import SimpleNamespace

    from finetune.training.checkpoints import interrupt_callback

    previous = signal.getsignal(signal.SIGINT)
    callback = interrupt_callback()
    callback.on_train_begin(None, None, None)
    try:
        os.kill(os.getpid(), signal.SIGINT)
        assert callback.interrupted
        control = callback.on_step_end(None, None, SimpleNamespace(should_save=False, should_training_stop=False))
        assert control.should_save and control.should_training_stop
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)  # the handler runs at the next bytecode: never gets here
    finally:
        callback.on_train_end(None, None, None)
    assert signal.getsignal(signal.SIGINT) is previous


def test_resuming_a_finished_run_is_refused(job, uninterrupted):
    work, args = job
    result = run_job(args, work / "full", "--resume")
    assert result.returncode == 2 and "nothing to resume" in result.stderr


def _layout(checkpoint, files: dict[str, bytes]) -> None:
    for name, content in files.items():
        path = checkpoint / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)


def _sharded_names():
    """The file names transformers' Trainer and accelerate use for each engine's checkpoint (their constants)."""
    from accelerate.utils.constants import OPTIMIZER_NAME as ACCELERATE_OPTIMIZER
    from transformers.trainer import FSDP_MODEL_NAME, OPTIMIZER_NAME, SCHEDULER_NAME, TRAINER_STATE_NAME

    common = {TRAINER_STATE_NAME: b'{"global_step": 4}', "rng_state.pth": b"x"}
    return {
        "plain": {**common, "model.safetensors": b"x", OPTIMIZER_NAME: b"x", SCHEDULER_NAME: b"x"},
        "fsdp full state dict": {**common, f"{FSDP_MODEL_NAME}.bin": b"x", f"{ACCELERATE_OPTIMIZER}.bin": b"x",
                                 SCHEDULER_NAME: b"x"},
        "fsdp sharded state dict": {**common, f"{FSDP_MODEL_NAME}_0/__0_0.distcp": b"x",
                                    f"{ACCELERATE_OPTIMIZER}_0/__0_0.distcp": b"x", SCHEDULER_NAME: b"x"},
        "deepspeed zero-3": {**common, "rng_state_0.pth": b"x", "latest": b"global_step4",
                             "global_step4/zero_pp_rank_0_mp_rank_00_model_states.pt": b"x",
                             "global_step4/bf16_zero_pp_rank_0_mp_rank_00_optim_states.pt": b"x"},
    }


@pytest.mark.parametrize("engine", ["plain", "fsdp full state dict", "fsdp sharded state dict", "deepspeed zero-3"])
def test_checkpoints_of_every_engine_count_as_complete(tmp_path, engine):
    from finetune.training.checkpoints import incomplete_reason

    files = _sharded_names()[engine]
    _layout(tmp_path / "checkpoint-4", files)
    assert incomplete_reason(tmp_path / "checkpoint-4") is None
    # ... and a write cut short in the optimizer state is still caught.
    optimizer = next(name for name in files if "optim" in name)
    (tmp_path / "checkpoint-4" / optimizer).write_bytes(b"")
    assert incomplete_reason(tmp_path / "checkpoint-4") is not None
