"""Which checkpoint a run resumes from, as fast unit tests (mutation-tested: README, Development).

Checkpoint folders are written by hand in the layouts the Trainer uses plain, under FSDP (full and sharded state
dicts) and under DeepSpeed, then one file at a time is removed or emptied, as a job killed mid-write leaves them.
The end-to-end resume tests (tests/test_resume.py, tests/test_trust_resume.py) train real models; these do not.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
from pathlib import Path

import pytest

from finetune.errors import UserError
from finetune.training.checkpoints import (
    incomplete_reason,
    interrupt_callback,
    latest_complete_checkpoint,
    resolve_resume,
)

DEEPSPEED_STATE = "global_step4"


def write(path: Path, content: bytes = b"x") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)


def plain(folder: Path, step: int = 4) -> Path:
    """What Trainer._save_checkpoint writes without FSDP or DeepSpeed."""
    write(folder / "trainer_state.json", json.dumps({"global_step": step}).encode())
    for name in ("model.safetensors", "optimizer.pt", "scheduler.pt", "rng_state.pth"):
        write(folder / name)
    return folder


def fsdp_full(folder: Path) -> Path:
    """FSDP with a full state dict, saved through accelerate."""
    write(folder / "trainer_state.json", b'{"global_step": 4}')
    for name in ("pytorch_model_fsdp.bin", "optimizer.bin", "scheduler.pt", "rng_state_0.pth", "rng_state_1.pth"):
        write(folder / name)
    return folder


def fsdp_sharded(folder: Path) -> Path:
    """FSDP with a sharded state dict: distributed-checkpoint folders for the model and the optimizer."""
    write(folder / "trainer_state.json", b'{"global_step": 4}')
    write(folder / "pytorch_model_fsdp_0" / "__0_0.distcp")
    write(folder / "optimizer_0" / "__0_0.distcp")
    write(folder / "scheduler.pt")
    write(folder / "rng_state_0.pth")
    return folder


def fsdp_local(folder: Path) -> Path:
    """FSDP with local state dicts (no distributed checkpoint): one model and one optimizer file per rank."""
    write(folder / "trainer_state.json", b'{"global_step": 4}')
    for rank in (0, 1):
        write(folder / f"pytorch_model_fsdp_rank{rank}.bin")
        write(folder / f"optimizer_0_rank{rank}.bin")
        write(folder / f"rng_state_{rank}.pth")
    write(folder / "scheduler.pt")
    return folder


def deepspeed(folder: Path, zero3: bool = False) -> Path:
    """DeepSpeed: `latest` names global_stepN with the optimizer (and ZeRO-3's model) states; no scheduler.pt."""
    write(folder / "trainer_state.json", b'{"global_step": 4}')
    write(folder / "latest", f"{DEEPSPEED_STATE}\n".encode())
    write(folder / DEEPSPEED_STATE / "bf16_zero_pp_rank_0_mp_rank_00_optim_states.pt")
    write(folder / DEEPSPEED_STATE / "zero_pp_rank_0_mp_rank_00_model_states.pt")
    if not zero3:
        write(folder / "model.safetensors")
    write(folder / "rng_state_0.pth")
    return folder


LAYOUTS = {"plain": plain, "fsdp-full": fsdp_full, "fsdp-sharded": fsdp_sharded, "fsdp-local": fsdp_local,
           "deepspeed": deepspeed,
           "zero3": lambda folder: deepspeed(folder, zero3=True)}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_complete_layout_can_be_resumed(tmp_path, layout):
    assert incomplete_reason(LAYOUTS[layout](tmp_path / "checkpoint-4")) is None


@pytest.mark.parametrize("weights", ["model.safetensors", "model.safetensors.index.json", "adapter_model.safetensors",
                                     "pytorch_model.bin", "pytorch_model_fsdp.bin"])
def test_each_weights_file_counts(tmp_path, weights):
    checkpoint = plain(tmp_path / "checkpoint-4")
    (checkpoint / "model.safetensors").unlink()
    assert incomplete_reason(checkpoint) == "no model weights"
    write(checkpoint / weights)
    assert incomplete_reason(checkpoint) is None


# (layout, file removed or emptied, the reason a user reads)
BROKEN = [
    ("plain", "trainer_state.json", "trainer_state.json is missing or unreadable"),
    ("plain", "model.safetensors", "no model weights"),
    ("plain", "optimizer.pt", "the optimizer state is missing or empty"),
    ("plain", "scheduler.pt", "scheduler.pt is missing or empty"),
    ("plain", "rng_state.pth", "no RNG state"),
    ("fsdp-full", "pytorch_model_fsdp.bin", "no model weights"),
    ("fsdp-full", "optimizer.bin", "the optimizer state is missing or empty"),
    ("fsdp-sharded", "pytorch_model_fsdp_0/__0_0.distcp", "no model weights"),
    ("fsdp-sharded", "optimizer_0/__0_0.distcp", "the optimizer state is missing or empty"),
    ("fsdp-sharded", "scheduler.pt", "scheduler.pt is missing or empty"),
    ("fsdp-local", "scheduler.pt", "scheduler.pt is missing or empty"),
    ("zero3", f"{DEEPSPEED_STATE}/zero_pp_rank_0_mp_rank_00_model_states.pt", "no model weights"),
    ("deepspeed", "model.safetensors", None),  # ZeRO-1/2 weights also live in the model states
    ("deepspeed", "rng_state_0.pth", "no RNG state"),
]


@pytest.mark.parametrize(("layout", "name", "reason"), BROKEN)
def test_a_missing_file_is_named(tmp_path, layout, name, reason):
    checkpoint = LAYOUTS[layout](tmp_path / "checkpoint-4")
    (checkpoint / name).unlink()
    assert incomplete_reason(checkpoint) == reason


@pytest.mark.parametrize(("layout", "name", "reason"),
                         [case for case in BROKEN if "model_states" not in case[1] and case[2] != "no RNG state"])
def test_an_empty_file_is_as_bad_as_a_missing_one(tmp_path, layout, name, reason):
    checkpoint = LAYOUTS[layout](tmp_path / "checkpoint-4")
    (checkpoint / name).write_bytes(b"")
    assert incomplete_reason(checkpoint) == reason


@pytest.mark.parametrize("content", [b"", b"{not json", b'{"epoch": 1}', b"\xff\xfe"])
def test_unreadable_trainer_state(tmp_path, content):
    checkpoint = plain(tmp_path / "checkpoint-4")
    (checkpoint / "trainer_state.json").write_bytes(content)
    assert incomplete_reason(checkpoint) == "trainer_state.json is missing or unreadable"


def test_a_sharded_state_with_only_empty_files_is_missing(tmp_path):
    checkpoint = fsdp_sharded(tmp_path / "checkpoint-4")
    write(checkpoint / "optimizer_0" / "__1_0.distcp", b"")
    (checkpoint / "optimizer_0" / "__0_0.distcp").write_bytes(b"")
    assert incomplete_reason(checkpoint) == "the optimizer state is missing or empty"
    write(checkpoint / "optimizer_0" / "nested" / "__1_0.distcp")  # states in a subfolder count
    assert incomplete_reason(checkpoint) is None


def test_accelerate_per_rank_optimizer_files_count(tmp_path):
    checkpoint = fsdp_full(tmp_path / "checkpoint-4")
    (checkpoint / "optimizer.bin").unlink()
    write(checkpoint / "optimizer_0_rank1.bin")
    assert incomplete_reason(checkpoint) is None


class TestDeepSpeed:
    def test_without_latest_the_scheduler_and_optimizer_are_missing(self, tmp_path):
        checkpoint = deepspeed(tmp_path / "checkpoint-4")
        (checkpoint / "latest").unlink()
        assert incomplete_reason(checkpoint) == "the optimizer state is missing or empty"
        write(checkpoint / "optimizer.pt")  # a plain optimizer alone: the Trainer's scheduler.pt is then needed
        assert incomplete_reason(checkpoint) == "scheduler.pt is missing or empty"

    @pytest.mark.parametrize("latest", [b"", b"\n", b"global_step9\n"])
    def test_latest_naming_no_state_folder(self, tmp_path, latest):
        checkpoint = deepspeed(tmp_path / "checkpoint-4", zero3=True)
        (checkpoint / "latest").write_bytes(latest)
        assert incomplete_reason(checkpoint) == "no model weights"

    def test_latest_naming_a_file_not_a_folder(self, tmp_path):
        checkpoint = deepspeed(tmp_path / "checkpoint-4", zero3=True)
        (checkpoint / "latest").write_bytes(b"rng_state_0.pth")
        assert incomplete_reason(checkpoint) == "no model weights"

    def test_latest_that_is_a_folder(self, tmp_path):
        checkpoint = deepspeed(tmp_path / "checkpoint-4")
        (checkpoint / "latest").unlink()
        (checkpoint / "latest").mkdir()
        assert incomplete_reason(checkpoint) == "the optimizer state is missing or empty"

    def test_empty_optimizer_states_are_missing(self, tmp_path):
        checkpoint = deepspeed(tmp_path / "checkpoint-4")
        (checkpoint / DEEPSPEED_STATE / "bf16_zero_pp_rank_0_mp_rank_00_optim_states.pt").write_bytes(b"")
        assert incomplete_reason(checkpoint) == "the optimizer state is missing or empty"
        write(checkpoint / DEEPSPEED_STATE / "bf16_zero_pp_rank_1_mp_rank_00_optim_states.pt")  # another rank's
        assert incomplete_reason(checkpoint) is None

    def test_latest_with_surrounding_spaces(self, tmp_path):
        checkpoint = deepspeed(tmp_path / "checkpoint-4", zero3=True)
        (checkpoint / "latest").write_bytes(f"  {DEEPSPEED_STATE} \n".encode())
        assert incomplete_reason(checkpoint) is None


# --- latest_complete_checkpoint / resolve_resume --------------------------------------------------------------

def run_with(tmp_path: Path, *steps: int) -> Path:
    run = tmp_path / "run"
    for step in steps:
        plain(run / f"checkpoint-{step}", step)
    return run


def test_the_newest_checkpoint_by_step_number_is_resumed(tmp_path):
    run = run_with(tmp_path, 2, 9, 10)  # 10 sorts before 9 as text
    write(run / "checkpoint-latest" / "trainer_state.json")  # not a checkpoint-N name
    write(run / "checkpoint-99")  # a file, not a folder
    assert latest_complete_checkpoint(run) == run / "checkpoint-10"
    assert resolve_resume(run, True) == run / "checkpoint-10"


def test_a_partial_newest_checkpoint_is_skipped_with_a_warning(tmp_path, caplog):
    run = run_with(tmp_path, 2, 9, 10)
    (run / "checkpoint-10" / "optimizer.pt").write_bytes(b"")
    (run / "checkpoint-9" / "scheduler.pt").unlink()
    with caplog.at_level(logging.WARNING, logger="finetune"):
        assert resolve_resume(run, True) == run / "checkpoint-2"
    assert caplog.messages == [
        f"Skipping {run / 'checkpoint-10'}: the optimizer state is missing or empty (a partial write?). Trying the "
        f"one before.",
        f"Skipping {run / 'checkpoint-9'}: scheduler.pt is missing or empty (a partial write?). Trying the one before."]


def test_no_complete_checkpoint_starts_over_with_a_warning(tmp_path, caplog):
    run = run_with(tmp_path, 3)
    (run / "checkpoint-3" / "rng_state.pth").unlink()
    with caplog.at_level(logging.WARNING, logger="finetune"):
        assert latest_complete_checkpoint(run) is None
        assert resolve_resume(run, True) is None
    assert caplog.messages[-1] == f"No complete checkpoint in {run}: starting from the beginning."


def test_resume_into_a_missing_run_starts_over(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="finetune"):
        assert resolve_resume(tmp_path / "absent", True) is None
    assert "No complete checkpoint in" in caplog.text


def test_no_resume_ignores_checkpoints(tmp_path):
    assert resolve_resume(run_with(tmp_path, 2), False) is None


def test_a_named_checkpoint_is_resumed_even_if_not_the_newest(tmp_path):
    run = run_with(tmp_path, 2, 4)
    assert resolve_resume(run, "checkpoint-2") == run / "checkpoint-2"
    assert resolve_resume(run, str(run / "checkpoint-2")) == run / "checkpoint-2"  # a path works too


def test_a_checkpoint_path_relative_to_the_current_folder(tmp_path, monkeypatch):
    run_with(tmp_path, 2, 4)
    monkeypatch.chdir(tmp_path)
    assert resolve_resume(Path("run"), "run/checkpoint-2") == Path("run/checkpoint-2")


def test_a_named_checkpoint_that_does_not_exist_lists_the_ones_that_do(tmp_path):
    run = run_with(tmp_path, 2, 10)
    with pytest.raises(UserError) as error:
        resolve_resume(run, "checkpoint-3")
    assert str(error.value) == f"Checkpoint 'checkpoint-3' not found in {run}. Checkpoints there: checkpoint-2, " \
                               f"checkpoint-10."
    with pytest.raises(UserError, match=r"Checkpoints there: none\.$"):
        resolve_resume(tmp_path / "empty", "checkpoint-3")


def test_a_named_incomplete_checkpoint_is_refused_with_its_reason(tmp_path):
    run = run_with(tmp_path, 2, 4)
    (run / "checkpoint-2" / "model.safetensors").unlink()
    with pytest.raises(UserError) as error:
        resolve_resume(run, "checkpoint-2")
    assert str(error.value) == (f"{run / 'checkpoint-2'} cannot be resumed from: no model weights. Pass --resume to "
                                f"take the newest complete checkpoint instead.")


# --- the Ctrl-C callback ----------------------------------------------------------------------------------------

@pytest.fixture
def sigint():
    before = signal.getsignal(signal.SIGINT)
    yield before
    signal.signal(signal.SIGINT, before)


def trainer_control():
    from transformers import TrainerControl

    return TrainerControl()


def first_ctrl_c(callback) -> None:
    """The first Ctrl-C must not abort; fail the test (not the session) when it does."""
    try:
        callback._handle(signal.SIGINT, None)
    except KeyboardInterrupt:
        pytest.fail("the first Ctrl-C aborted training instead of saving a checkpoint")


def test_first_ctrl_c_saves_and_stops_second_aborts(sigint, caplog):
    callback = interrupt_callback()
    control = trainer_control()
    callback.on_train_begin(None, None, control)
    assert signal.getsignal(signal.SIGINT) == callback._handle
    assert callback.on_step_end(None, None, control) is control
    assert not control.should_save and not control.should_training_stop  # no Ctrl-C: training goes on
    with caplog.at_level(logging.WARNING, logger="finetune"):
        first_ctrl_c(callback)
    assert caplog.messages == ["Interrupted: saving a checkpoint at the end of this step (Ctrl-C again to abort)."]
    callback.on_step_end(None, None, control)
    assert control.should_save and control.should_training_stop
    with pytest.raises(KeyboardInterrupt):
        callback._handle(signal.SIGINT, None)
    assert signal.getsignal(signal.SIGINT) == sigint  # a third Ctrl-C goes to the handler from before training


def test_second_ctrl_c_falls_back_to_the_default_handler(sigint):
    callback = interrupt_callback()
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # getsignal then returns a falsy 0
    callback.on_train_begin(None, None, trainer_control())
    first_ctrl_c(callback)
    with pytest.raises(KeyboardInterrupt):
        callback._handle(signal.SIGINT, None)
    assert signal.getsignal(signal.SIGINT) == signal.default_int_handler


def test_the_previous_handler_is_restored_when_training_ends(sigint):
    def previous(signum, frame):
        return None

    signal.signal(signal.SIGINT, previous)
    callback = interrupt_callback()
    callback.on_train_begin(None, None, trainer_control())
    callback.on_train_end(None, None, trainer_control())
    assert signal.getsignal(signal.SIGINT) == previous


def test_outside_the_main_thread_signals_are_left_alone(sigint):
    callback = interrupt_callback()
    control = trainer_control()
    thread = threading.Thread(target=callback.on_train_begin, args=(None, None, control))
    thread.start()
    thread.join()
    assert signal.getsignal(signal.SIGINT) == sigint
    callback.on_train_end(None, None, control)
    assert signal.getsignal(signal.SIGINT) == sigint
