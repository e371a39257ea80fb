"""Checkpoints: finding the one to resume from, and stopping cleanly on Ctrl-C with a checkpoint saved.

A checkpoint counts as complete when the Trainer wrote everything it needs to resume exactly: trainer state,
weights, optimizer, scheduler and RNG state. A job killed while writing one leaves a partial folder; it is skipped
with a warning and the one before is used.
"""

from __future__ import annotations

import json
import logging
import signal
from pathlib import Path
from typing import Any

from finetune.errors import UserError
from finetune.outputs.run_dir import checkpoints_of

logger = logging.getLogger("finetune")

_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "adapter_model.safetensors", "pytorch_model.bin",
            "pytorch_model_fsdp.bin")  # the last: FSDP's full state dict


def _written(path: Path) -> bool:
    """A non-empty file, or a folder with a non-empty file in it (sharded states)."""
    if path.is_file():
        return path.stat().st_size > 0
    return path.is_dir() and any(item.is_file() and item.stat().st_size > 0 for item in path.rglob("*"))


def _deepspeed_state(checkpoint: Path) -> Path | None:
    """DeepSpeed's own checkpoint inside a Trainer checkpoint: `latest` names the global_stepN folder that holds
    the model, optimizer and scheduler states."""
    latest = checkpoint / "latest"
    try:
        tag = latest.read_text(encoding="utf-8").strip() if latest.is_file() else ""
    except OSError:
        return None
    folder = checkpoint / tag if tag else None
    if folder is None or not folder.is_dir() or not any(_written(path) for path in folder.glob("*optim_states.pt")):
        return None
    return folder


def _has_weights(checkpoint: Path, deepspeed: Path | None) -> bool:
    if any(_written(checkpoint / name) for name in _WEIGHTS):
        return True
    if any(_written(folder) for folder in checkpoint.glob("pytorch_model_fsdp*")):  # FSDP sharded state dicts
        return True
    return deepspeed is not None and any(deepspeed.glob("*model_states.pt"))  # ZeRO-3 keeps weights there


def _has_optimizer(checkpoint: Path, deepspeed: Path | None) -> bool:
    """optimizer.pt (plain), optimizer.bin or optimizer_0/ / optimizer_0_rankN.bin (FSDP through accelerate), or
    DeepSpeed's global_stepN/*optim_states.pt."""
    return (deepspeed is not None or _written(checkpoint / "optimizer.pt") or _written(checkpoint / "optimizer.bin")
            or any(_written(path) for path in checkpoint.glob("optimizer_*")))


def incomplete_reason(checkpoint: Path) -> str | None:
    """Why a checkpoint cannot be resumed from, or None when it can. Knows the layouts the Trainer writes plain,
    under FSDP (full or sharded state dicts) and under DeepSpeed."""
    state = checkpoint / "trainer_state.json"
    try:
        json.loads(state.read_text(encoding="utf-8"))["global_step"]
    except (OSError, ValueError, KeyError):
        return "trainer_state.json is missing or unreadable"
    deepspeed = _deepspeed_state(checkpoint)
    if not _has_weights(checkpoint, deepspeed):
        return "no model weights"
    if not _has_optimizer(checkpoint, deepspeed):
        return "the optimizer state is missing or empty"
    # DeepSpeed keeps its own scheduler inside global_stepN; the Trainer writes scheduler.pt otherwise.
    if deepspeed is None and not _written(checkpoint / "scheduler.pt"):
        return "scheduler.pt is missing or empty"
    if not any(checkpoint.glob("rng_state*.pth")):
        return "no RNG state"
    return None


def latest_complete_checkpoint(run_dir: Path) -> Path | None:
    for checkpoint in reversed(checkpoints_of(run_dir)):
        reason = incomplete_reason(checkpoint)
        if reason is None:
            return checkpoint
        logger.warning("Skipping %s: %s (a partial write?). Trying the one before.", checkpoint, reason)
    return None


def resolve_resume(run_dir: Path, resume: bool | str) -> Path | None:
    """The checkpoint to resume from: `True` takes the newest complete one (None when there is none yet)."""
    if resume is False:
        return None
    if resume is True:
        checkpoint = latest_complete_checkpoint(run_dir) if run_dir.is_dir() else None
        if checkpoint is None:
            logger.warning("No complete checkpoint in %s: starting from the beginning.", run_dir)
        return checkpoint
    named = Path(resume)
    checkpoint = named if named.is_dir() else run_dir / resume
    if not checkpoint.is_dir():
        available = ", ".join(path.name for path in checkpoints_of(run_dir)) or "none"
        raise UserError(f"Checkpoint '{resume}' not found in {run_dir}. Checkpoints there: {available}.")
    reason = incomplete_reason(checkpoint)
    if reason is not None:
        raise UserError(f"{checkpoint} cannot be resumed from: {reason}. Pass --resume to take the newest "
                        f"complete checkpoint instead.")
    return checkpoint


def interrupt_callback() -> Any:
    """A TrainerCallback that turns the first Ctrl-C into 'save a checkpoint and stop'; a second one aborts."""
    from transformers import TrainerCallback

    class SaveOnInterrupt(TrainerCallback):
        def __init__(self) -> None:
            self.interrupted = False
            self._previous: Any = None

        def _handle(self, signum: int, frame: Any) -> None:
            if self.interrupted:  # second Ctrl-C: the user means it
                signal.signal(signal.SIGINT, self._previous or signal.default_int_handler)
                raise KeyboardInterrupt
            self.interrupted = True
            logger.warning("Interrupted: saving a checkpoint at the end of this step (Ctrl-C again to abort).")

        def on_train_begin(self, args, state, control, **kwargs):
            try:
                self._previous = signal.signal(signal.SIGINT, self._handle)
            except ValueError:  # not the main thread: leave signals alone
                self._previous = None

        def on_step_end(self, args, state, control, **kwargs):
            if self.interrupted:
                control.should_save = True
                control.should_training_stop = True
            return control

        def on_train_end(self, args, state, control, **kwargs):
            if self._previous is not None:
                signal.signal(signal.SIGINT, self._previous)

    return SaveOnInterrupt()
