"""The run directory and its lock, as fast unit tests (mutation-tested: README, Development).

Which folders finetune refuses to write into or replace (and the message a user reads), what --overwrite removes,
which model folders load, and who holds a run's lock. Folders are built by hand in tmp_path; nothing is trained.
The end-to-end versions through the CLI are tests/test_trust_overwrite.py and tests/test_trust_kill.py.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import socket
import struct
import sys
from pathlib import Path

import pytest

from finetune.errors import UserError
from finetune.outputs import run_dir as rd
from finetune.outputs.lock import RunLock, holder

# --- a model folder on disk -------------------------------------------------------------------------------------


def safetensors_bytes(data_length: int = 8, declared: int | None = None, header: object = None) -> bytes:
    """A .safetensors file: 8-byte little-endian header length, the JSON header, the tensor data."""
    if header is None:
        header = {"__metadata__": {"format": "pt"},
                  "w": {"dtype": "F32", "shape": [2], "data_offsets": [0, declared if declared else data_length]}}
    encoded = json.dumps(header).encode()
    return struct.pack("<Q", len(encoded)) + encoded + b"\0" * data_length


def model(folder: Path, weights: bytes | None = None, tokenizer: str | None = "tokenizer.json") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(weights if weights is not None else safetensors_bytes())
    if tokenizer:
        (folder / tokenizer).write_text("{}")
    return folder


def finished_run(folder: Path) -> Path:
    model(folder)
    rd.mark_run_dir(folder)
    (folder / "recipe.yaml").write_text("task: x\n")
    (folder / "metrics.json").write_text("{}")
    return folder


# --- names ------------------------------------------------------------------------------------------------------

def test_checkpoint_step_reads_only_checkpoint_n_names():
    assert rd.checkpoint_step(Path("runs/x/checkpoint-12")) == 12
    assert rd.checkpoint_step(Path("checkpoint-0")) == 0
    for name in ("checkpoint-", "checkpoint-x", "checkpoint-3a", "tmp-checkpoint-3", "checkpoint-3.tmp", "ckpt-3"):
        assert rd.checkpoint_step(Path(name)) is None, name


def test_checkpoints_come_oldest_first_by_step(tmp_path):
    for name in ("checkpoint-10", "checkpoint-9", "checkpoint-100", "checkpoint-best", "tmp-checkpoint-11"):
        (tmp_path / name).mkdir()
    (tmp_path / "checkpoint-50").write_text("a file")
    assert [path.name for path in rd.checkpoints_of(tmp_path)] == ["checkpoint-9", "checkpoint-10", "checkpoint-100"]


def test_model_and_adapter_folders(tmp_path):
    assert not rd.is_model_folder(tmp_path) and not rd.is_adapter_folder(tmp_path)
    (tmp_path / "adapter_config.json").write_text("{}")
    assert rd.is_adapter_folder(tmp_path) and rd.is_model_folder(tmp_path)
    full = model(tmp_path / "full")
    assert rd.is_model_folder(full) and not rd.is_adapter_folder(full)
    (tmp_path / "dir" / "config.json").mkdir(parents=True)  # a folder named config.json is not a config
    assert not rd.is_model_folder(tmp_path / "dir")


def test_recipe_of_a_run_or_of_its_checkpoint(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoint-2").mkdir(parents=True)
    assert rd.recipe_file_of(run) is None and rd.run_recipe(run) is None
    shutil.copy(Path(__file__).parents[1] / "recipes" / "glue" / "cola.yaml", run / "recipe.yaml")
    assert rd.recipe_file_of(run) == run / "recipe.yaml"
    assert rd.recipe_file_of(run / "checkpoint-2") == run / "recipe.yaml"
    recipe = rd.run_recipe(run / "checkpoint-2")
    assert recipe is not None and recipe.data.dataset == "glue/cola"
    (run / "checkpoint-2" / "recipe.yaml").write_text("own: 1\n")
    assert rd.recipe_file_of(run / "checkpoint-2") == run / "checkpoint-2" / "recipe.yaml"  # its own comes first
    (tmp_path / "deep" / "a" / "b").mkdir(parents=True)
    (tmp_path / "deep" / "recipe.yaml").write_text("x: 1\n")
    assert rd.recipe_file_of(tmp_path / "deep" / "a" / "b") is None  # only the folder and the one above


def test_tokenizer_folder_is_the_run_above_a_checkpoint_without_one(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoint-2").mkdir(parents=True)
    assert rd.tokenizer_folder(run / "checkpoint-2") == run / "checkpoint-2"  # none anywhere: the folder itself
    (run / "tokenizer_config.json").write_text("{}")
    assert rd.tokenizer_folder(run / "checkpoint-2") == run
    (run / "checkpoint-2" / "tokenizer_config.json").write_text("{}")
    assert rd.tokenizer_folder(run / "checkpoint-2") == run / "checkpoint-2"


# --- safetensors headers ----------------------------------------------------------------------------------------

def weights_problem(tmp_path: Path, content: bytes) -> str | None:
    path = tmp_path / "model.safetensors"
    path.write_bytes(content)
    return rd.safetensors_problem(path)


def test_a_whole_safetensors_file_has_no_problem(tmp_path):
    assert weights_problem(tmp_path, safetensors_bytes()) is None
    assert weights_problem(tmp_path, safetensors_bytes(header={})) is None  # no tensors at all
    assert weights_problem(tmp_path, safetensors_bytes(data_length=8, declared=8)) is None


def test_the_real_library_agrees_on_a_valid_file(tmp_path):
    import numpy as np
    from safetensors.numpy import save_file

    save_file({"w": np.zeros(3, dtype=np.float32)}, str(tmp_path / "model.safetensors"))
    assert rd.safetensors_problem(tmp_path / "model.safetensors") is None


@pytest.mark.parametrize(("content", "problem"), [
    (b"", "model.safetensors is empty or truncated"),
    (b"\x10\0\0\0\0\0\0", "model.safetensors is empty or truncated"),
    (struct.pack("<Q", 1000) + b"{}", "model.safetensors has a corrupt header"),  # longer than the file
    (struct.pack("<Q", 2) + b"{}", None),  # exactly the file: fine
    (struct.pack("<Q", 3) + b"{}", "model.safetensors has a corrupt header"),
    (struct.pack("<Q", 5) + b"{oops", "model.safetensors has a corrupt header"),
    (struct.pack("<Q", 2) + b"\xff\xfe", "model.safetensors has a corrupt header"),
    (struct.pack("<Q", 2) + b"[]", "model.safetensors has a corrupt header"),
])
def test_broken_headers(tmp_path, content, problem):
    assert weights_problem(tmp_path, content) == problem


def test_a_header_over_the_safetensors_limit_is_corrupt(tmp_path):
    assert weights_problem(tmp_path, struct.pack("<Q", 100_000_001) + b"\0" * 16) == \
        "model.safetensors has a corrupt header"


def test_truncated_tensor_data_names_both_sizes(tmp_path):
    content = safetensors_bytes(data_length=4, declared=4000)
    header_length = struct.unpack("<Q", content[:8])[0]
    assert weights_problem(tmp_path, content) == (
        f"model.safetensors is truncated ({len(content):,} bytes, its header describes "
        f"{8 + header_length + 4000:,})")
    assert weights_problem(tmp_path, safetensors_bytes(data_length=4, declared=5)).startswith(
        "model.safetensors is truncated")  # one byte short
    assert weights_problem(tmp_path, safetensors_bytes(data_length=4, declared=4)) is None


def test_header_entries_without_two_offsets_are_ignored(tmp_path):
    header = {"__metadata__": {"data_offsets": [0, 10**9]}, "a": "text", "b": {"data_offsets": [0]},
              "c": {"data_offsets": None}, "d": {"data_offsets": [0, 2]}}
    assert weights_problem(tmp_path, safetensors_bytes(data_length=2, header=header)) is None
    header["e"] = {"data_offsets": [0, 3]}
    assert weights_problem(tmp_path, safetensors_bytes(data_length=2, header=header)) is not None


def test_an_unreadable_file_says_so(tmp_path):
    (tmp_path / "model.safetensors").mkdir()
    assert rd.safetensors_problem(tmp_path / "model.safetensors") == "model.safetensors cannot be read (Is a directory)"


# --- model folders ---------------------------------------------------------------------------------------------

def test_a_complete_model_folder(tmp_path):
    assert rd.model_folder_problem(model(tmp_path / "m")) is None
    assert rd.model_folder_problem(model(tmp_path / "v", tokenizer="vocab.txt")) is None


def test_what_a_model_folder_lacks(tmp_path):
    folder = model(tmp_path / "m")
    (folder / "tokenizer.json").unlink()
    assert rd.model_folder_problem(folder) == \
        "no tokenizer files (tokenizer.json, tokenizer_config.json, vocab.txt, ...)"
    (tmp_path / "tok").mkdir()
    (tmp_path / "tok" / "spiece.model").write_text("x")
    assert rd.model_folder_problem(folder, tmp_path / "tok") is None  # a checkpoint's tokenizer is in its run
    (folder / "model.safetensors").write_bytes(b"")
    assert rd.model_folder_problem(folder, tmp_path / "tok") == "model.safetensors is empty or truncated"
    (folder / "model.safetensors").unlink()
    assert rd.model_folder_problem(folder) == "no model weights (*.safetensors)"
    (folder / "config.json").unlink()
    assert rd.model_folder_problem(folder) == "no config.json"


def test_every_shard_is_checked(tmp_path):
    folder = model(tmp_path / "m")
    (folder / "model-00002-of-00002.safetensors").write_bytes(b"\0")
    assert rd.model_folder_problem(folder) == "model-00002-of-00002.safetensors is empty or truncated"


@pytest.mark.parametrize("name", ["pytorch_model.bin", "adapter_model.bin", "model.pt", "model.bin",
                                  "pytorch_model.bin.index.json"])
def test_pickled_weights_are_refused_with_the_reason(tmp_path, name):
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / name).write_bytes(b"x")
    assert rd.model_folder_problem(folder) == (
        f"its weights are a pickle file ({name}), which finetune does not load because loading pickles can run "
        f"code; convert it to .safetensors")


def test_an_adapter_needs_no_config(tmp_path):
    folder = tmp_path / "lora"
    folder.mkdir()
    (folder / "adapter_config.json").write_text("{}")
    (folder / "adapter_model.safetensors").write_bytes(safetensors_bytes())
    (folder / "tokenizer_config.json").write_text("{}")
    assert rd.model_folder_problem(folder) is None


def test_require_model_folder_messages(tmp_path):
    with pytest.raises(UserError) as error:
        rd.require_model_folder(tmp_path / "absent")
    assert str(error.value) == f"Run directory not found: {tmp_path / 'absent'}."
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="Run directory not found"):
        rd.require_model_folder(tmp_path / "file")
    with pytest.raises(UserError) as error:
        rd.require_model_folder(tmp_path)
    assert str(error.value) == (f"{tmp_path} holds no trained model (no config.json or adapter_config.json). Pass the "
                                f"run's output directory or one of its checkpoint-N folders.")
    (tmp_path / "checkpoint-3").mkdir()
    with pytest.raises(UserError) as error:
        rd.require_model_folder(tmp_path)
    assert str(error.value).endswith("checkpoint-N folders. It holds checkpoint-N folders: pass one of them.")
    run = finished_run(tmp_path / "run")
    assert rd.require_model_folder(run) == run


def test_an_unfinished_run_names_its_newest_checkpoint(tmp_path):
    run = finished_run(tmp_path / "run")
    (run / "metrics.json").unlink()
    with pytest.raises(UserError) as error:
        rd.require_complete_run(run)
    assert str(error.value) == (f"{run} is an unfinished run (no metrics.json): its model may be partial. finish it "
                                f"with `finetune train {run / 'recipe.yaml'} --resume`.")
    (run / "checkpoint-2").mkdir()
    (run / "checkpoint-10").mkdir()
    with pytest.raises(UserError) as error:
        rd.require_complete_run(run)
    assert f"its model may be partial. Pass its newest checkpoint ({run / 'checkpoint-10'}) or finish it" \
        in str(error.value)


def test_an_unmarked_run_with_checkpoints_is_unfinished_too(tmp_path):
    run = finished_run(tmp_path / "run")
    (run / "metrics.json").unlink()
    (run / ".finetune-run").unlink()
    rd.require_complete_run(run)  # a merged export: recipe.yaml, no marker, no checkpoints
    (run / "checkpoint-1").mkdir()
    with pytest.raises(UserError, match="unfinished run"):
        rd.require_complete_run(run)


def test_a_checkpoint_inside_an_unfinished_run_loads(tmp_path):
    run = finished_run(tmp_path / "run")
    (run / "metrics.json").unlink()
    checkpoint = model(run / "checkpoint-2", tokenizer=None)
    (run / "tokenizer_config.json").write_text("{}")
    assert rd.require_model_folder(checkpoint) == checkpoint
    (checkpoint / "model.safetensors").write_bytes(b"")  # its own weights are checked, not the run's
    with pytest.raises(UserError, match="checkpoint-2 is not a complete model: model.safetensors is empty"):
        rd.require_model_folder(checkpoint)


def test_an_incomplete_model_is_refused_with_its_problem(tmp_path):
    run = finished_run(tmp_path / "run")
    (run / "model.safetensors").write_bytes(b"")
    with pytest.raises(UserError) as error:
        rd.require_model_folder(run)
    assert str(error.value) == f"{run} is not a complete model: model.safetensors is empty or truncated."


# --- ownership --------------------------------------------------------------------------------------------------

def test_the_marker_names_the_run(tmp_path):
    run_id = rd.mark_run_dir(tmp_path)
    marker = rd.run_marker(tmp_path)
    assert marker is not None and marker["run_id"] == run_id and len(run_id) == 12
    assert set(marker) == {"run_id", "created", "finetune"}
    created = datetime.datetime.fromisoformat(marker["created"])
    assert created.utcoffset() == datetime.timedelta(0)  # UTC, to the second
    assert abs(datetime.datetime.now(datetime.timezone.utc) - created) < datetime.timedelta(days=1)
    assert rd.mark_run_dir(tmp_path) != run_id  # a new id for each run


@pytest.mark.parametrize("content", ["", "{bad", "[1]", '{"run_id": ""}', '{"created": "x"}'])
def test_an_unreadable_or_empty_marker_is_no_marker(tmp_path, content):
    (tmp_path / ".finetune-run").write_text(content)
    assert rd.run_marker(tmp_path) is None


def test_foreign_entries_are_what_finetune_did_not_write(tmp_path):
    finished_run(tmp_path)
    ours = ["checkpoint-3", "tmp-checkpoint-4", "predictions", "plots", "merged", "runs", ".final-model.tmp",
            ".metrics.json.abc.tmp", "adapter_model.safetensors", "model-00001-of-00002.safetensors",
            "model.safetensors.index.json", "chat_template.jinja", "chat_template.json", "vocab.txt", "merges.txt",
            "special_tokens_map.json", "training_args.bin", "samples.jsonl", "predictions.jsonl", "README.md",
            "trainer_state.json", "generation_config.json", ".finetune.lock", ".finetune.owner"]
    for name in ours:
        (tmp_path / name).write_text("x")
    assert rd.foreign_entries(tmp_path) == []
    for name in ("notes.txt", "data.csv", "checkpoint-best", "config.json.bak", "xconfig.json", "chat_template.txt"):
        (tmp_path / name).write_text("x")
    assert rd.foreign_entries(tmp_path) == ["chat_template.txt", "checkpoint-best", "config.json.bak", "data.csv",
                                            "notes.txt", "xconfig.json"]


# --- inspect_run_dir: the user's folders are never replaced -----------------------------------------------------

def refusal(run: Path, overwrite: bool = True, protected: dict[str, Path] | None = None) -> str:
    with pytest.raises(UserError) as error:
        rd.inspect_run_dir(run, overwrite, protected)
    return str(error.value)


def test_new_and_empty_folders(tmp_path):
    assert rd.inspect_run_dir(tmp_path / "absent", overwrite=False) == "new"
    assert rd.inspect_run_dir(tmp_path, overwrite=False) == "new"
    (tmp_path / ".finetune.lock").write_text("")
    (tmp_path / ".finetune.owner").write_text("{}")
    (tmp_path / ".finetune-run").write_text("{}")  # only housekeeping files: a run that never wrote anything
    assert rd.inspect_run_dir(tmp_path, overwrite=False) == "new"


def test_a_folder_finetune_did_not_create_is_refused(tmp_path):
    (tmp_path / "thesis.tex").write_text("years of work")
    assert refusal(tmp_path) == (
        f"--output-dir {tmp_path} is not empty and it was not created by finetune (no .finetune-run marker); "
        f"finetune only writes into, and --overwrite only replaces, its own run directories. Choose another "
        f"--output-dir.")


def test_an_unmarked_folder_of_run_files_is_refused(tmp_path):
    model(tmp_path)  # looks like a model, but finetune did not make this folder
    assert "no .finetune-run marker" in refusal(tmp_path)


def test_a_run_with_user_files_is_refused_naming_three_of_them(tmp_path):
    finished_run(tmp_path)
    for name in ("a.txt", "b.txt", "c.txt", "d.txt", "e.txt"):
        (tmp_path / name).write_text("mine")
    assert "it holds files finetune did not write (a.txt, b.txt, c.txt and 2 more);" in refusal(tmp_path)
    (tmp_path / "d.txt").unlink()
    (tmp_path / "e.txt").unlink()
    assert "(a.txt, b.txt, c.txt);" in refusal(tmp_path)


@pytest.mark.parametrize("where", ["cwd", "home"])
def test_the_current_and_home_folders_are_never_run_directories(tmp_path, monkeypatch, where):
    finished_run(tmp_path)
    if where == "cwd":
        monkeypatch.chdir(tmp_path)
    else:
        monkeypatch.setenv("HOME", str(tmp_path))
    assert "is not empty and it is the current, home or root folder;" in refusal(tmp_path)


def test_a_run_is_replaced_only_with_overwrite(tmp_path):
    finished_run(tmp_path)
    assert refusal(tmp_path, overwrite=False) == (f"{tmp_path} already holds a run. Pass --overwrite to replace it, "
                                                  f"or choose another --output-dir.")
    assert rd.inspect_run_dir(tmp_path, overwrite=True) == "replace"


def test_a_run_that_never_trained_is_reused_without_overwrite(tmp_path):
    rd.mark_run_dir(tmp_path)
    (tmp_path / "recipe.yaml").write_text("task: x\n")
    (tmp_path / ".finetune.lock").write_text("")
    assert rd.inspect_run_dir(tmp_path, overwrite=False) == "unstarted"
    (tmp_path / ".finetune.owner").write_text("{}")  # every file an unstarted run can leave
    assert rd.inspect_run_dir(tmp_path, overwrite=False) == "unstarted"
    (tmp_path / "trainer_state.json").write_text("{}")
    assert rd.inspect_run_dir(tmp_path, overwrite=True) == "replace"


def test_a_link_to_a_run_is_not_replaced_through(tmp_path):
    run = finished_run(tmp_path / "run")
    (tmp_path / "link").symlink_to(run)
    assert refusal(tmp_path / "link") == (
        f"--output-dir {tmp_path / 'link'} is a symbolic link; --overwrite does not replace through links. Pass the "
        f"folder it points to ({run}) or choose another --output-dir.")
    assert "already holds a run. Pass --overwrite" in refusal(tmp_path / "link", overwrite=False)


def test_a_file_in_the_way_is_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    assert refusal(tmp_path / "file") == f"--output-dir {tmp_path / 'file'} is a file. Choose a folder name."
    assert refusal(tmp_path / "file" / "run") == (f"--output-dir {tmp_path / 'file' / 'run'}: {tmp_path / 'file'} "
                                                  f"is a file, not a folder. Choose another --output-dir.")


def test_a_run_directory_holding_the_training_data_is_refused(tmp_path):
    data = tmp_path / "run" / "data" / "train.csv"
    data.parent.mkdir(parents=True)
    data.write_text("text,label\n")
    assert refusal(tmp_path / "run", protected={"the training data": data}) == (
        f"--output-dir {tmp_path / 'run'} contains the training data ({data}): a run there could delete it. Choose "
        f"another --output-dir.")
    assert "contains the data folder" in refusal(tmp_path / "run", protected={"the data folder": tmp_path / "run"})
    # Data elsewhere, or not there at all, is no reason to refuse.
    elsewhere = tmp_path / "train.csv"
    elsewhere.write_text("x")
    assert rd.inspect_run_dir(tmp_path / "new", False, {"data": elsewhere, "gone": tmp_path / "new" / "x"}) == "new"
    assert rd.inspect_run_dir(tmp_path / "runs", False, {"sibling": tmp_path / "runs-data"}) == "new"


def test_a_runs_own_recipe_is_not_protected_from_it(tmp_path):
    run = finished_run(tmp_path / "run")
    assert rd.inspect_run_dir(run, True, {"the recipe": run / "recipe.yaml"}) == "replace"
    (run / ".finetune-run").unlink()  # unmarked: the recipe is the user's
    assert "contains the recipe" in refusal(run, protected={"the recipe": run / "recipe.yaml"})
    rd.mark_run_dir(run)
    data = run / "checkpoint-2" / "train.csv"  # retraining from runs/x/recipe.yaml: its data is still checked
    data.parent.mkdir()
    data.write_text("x")
    assert "contains the training data" in refusal(run, protected={"the recipe": run / "recipe.yaml",
                                                                     "the training data": data})
    other = run / "checkpoint-2" / "recipe.yaml"
    other.write_text("x")
    assert "contains the recipe" in refusal(run, protected={"the recipe": other})


# --- clearing and moving ----------------------------------------------------------------------------------------

def test_prepare_replaces_a_finished_run_and_keeps_the_lock(tmp_path):
    run = finished_run(tmp_path / "run")
    (run / "checkpoint-2").mkdir()
    (run / "checkpoint-2" / "optimizer.pt").write_text("x")
    (run / ".finetune.lock").write_text("")
    (run / ".finetune.owner").write_text("{}")
    assert rd.prepare_run_dir(run, overwrite=True) == "replace"
    assert sorted(path.name for path in run.iterdir()) == [".finetune.lock", ".finetune.owner"]


def test_prepare_refuses_before_removing_anything(tmp_path):
    run = finished_run(tmp_path / "run")
    (run / "notes.txt").write_text("mine")
    before = sorted(path.name for path in run.iterdir())
    with pytest.raises(UserError):
        rd.prepare_run_dir(run, overwrite=True)
    assert sorted(path.name for path in run.iterdir()) == before


def test_prepare_clears_an_unstarted_run_and_leaves_a_new_one(tmp_path):
    rd.mark_run_dir(tmp_path / "run")
    (tmp_path / "run" / "recipe.yaml").write_text("x")
    assert rd.prepare_run_dir(tmp_path / "run", overwrite=False) == "unstarted"
    assert list((tmp_path / "run").iterdir()) == []
    assert rd.prepare_run_dir(tmp_path / "new", overwrite=False) == "new"
    assert not (tmp_path / "new").exists()


def test_prepare_checks_the_protected_paths(tmp_path):
    run = finished_run(tmp_path / "run")
    data = run / "predictions" / "mine.jsonl"
    data.parent.mkdir()
    data.write_text("x")
    with pytest.raises(UserError, match="contains the evaluation data"):
        rd.prepare_run_dir(run, overwrite=True, protected={"the evaluation data": data})
    assert data.exists()


def test_clear_removes_only_what_finetune_wrote(tmp_path):
    run = finished_run(tmp_path / "run")
    (run / "notes.txt").write_text("mine")
    target = tmp_path / "elsewhere"
    target.mkdir()
    (target / "keep.txt").write_text("keep")
    (run / "plots").symlink_to(target)  # a link named like a run entry: the link goes, not what it points to
    rd.clear_run_dir(run)
    assert sorted(path.name for path in run.iterdir()) == ["notes.txt"]
    assert (target / "keep.txt").read_text() == "keep"
    rd.clear_run_dir(tmp_path / "absent")  # nothing to clear


def test_move_into_puts_every_file_in_place_and_drops_staging(tmp_path):
    staging, run = tmp_path / "run" / ".final-model.tmp", tmp_path / "run"
    (staging / "sub").mkdir(parents=True)
    (staging / "config.json").write_text("new")
    (staging / "sub" / "a.txt").write_text("a")
    (staging / "only" / "deeper").mkdir(parents=True)  # a folder with no file of its own, then a file below
    (staging / "only" / "deeper" / "b.txt").write_text("b")
    (run / "config.json").write_text("old")
    rd.move_into(staging, run)
    assert (run / "config.json").read_text() == "new"
    assert (run / "sub" / "a.txt").read_text() == "a"
    assert (run / "only" / "deeper" / "b.txt").read_text() == "b"
    assert not staging.exists()


def test_size_of_counts_files_not_links(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "a").write_bytes(b"x" * 10)
    (tmp_path / "sub" / "b").write_bytes(b"x" * 5)
    (tmp_path / "link").symlink_to(tmp_path / "a")
    assert rd.size_of(tmp_path) == 15


def test_disk_space_is_checked_before_training(tmp_path):
    """16 bytes a parameter (weights and AdamW's two moments in a checkpoint, plus the final model), checked with
    margins of a tenth of the free space: other processes write to this disk while the test runs."""
    free = shutil.disk_usage(tmp_path).free
    rd.ensure_disk_space(tmp_path / "new" / "run", parameters=1000)  # a missing folder: its parent's disk
    rd.ensure_disk_space(tmp_path, parameters=free // 18)  # 16 bytes each: 0.9 of the free space fits
    too_many = free // 14  # 16 bytes each: 1.14 of the free space (12 bytes each, 0.86, would fit)
    with pytest.raises(UserError) as error:
        rd.ensure_disk_space(tmp_path, parameters=too_many)
    needed = too_many * 16
    assert str(error.value).startswith(f"Not enough disk space for {tmp_path}: a checkpoint and the final model "
                                       f"need about {needed / 1e9:.2f} GB, ")
    assert str(error.value).endswith(" GB is free. Free some space or choose another --output-dir.")
    shown_free = float(str(error.value).split("GB, ")[1].split(" GB is free")[0])
    assert abs(shown_free - shutil.disk_usage(tmp_path).free / 1e9) < 0.1 * free / 1e9
    rd.ensure_disk_space(tmp_path, parameters=too_many, freed=needed)  # what --overwrite frees counts


# --- the lock ---------------------------------------------------------------------------------------------------

def test_the_lock_creates_the_folder_and_names_its_holder(tmp_path):
    run = tmp_path / "a" / "run"
    assert holder(run) is None
    lock = RunLock(run).acquire()
    try:
        assert lock.created_dir
        owner = json.loads((run / ".finetune.owner").read_text())
        assert owner["pid"] == os.getpid() and owner["host"] == socket.gethostname()
        described = holder(run)
        assert described == f"process {os.getpid()} on {socket.gethostname()} ({' '.join(sys.argv)[:120]})"
        with pytest.raises(UserError) as error:
            RunLock(run).acquire()
        assert str(error.value) == (f"{run} is being written by {described}. Wait for it to finish, or choose "
                                    f"another --output-dir.")
    finally:
        lock.release()
    assert holder(run) is None
    assert not (run / ".finetune.owner").exists()
    second = RunLock(run).acquire()  # free again
    assert not second.created_dir
    second.release()


def test_a_holder_without_an_owner_file_is_another_process(tmp_path):
    lock = RunLock(tmp_path).acquire()
    try:
        (tmp_path / ".finetune.owner").write_text("not json")
        assert holder(tmp_path) == "another finetune process"
        (tmp_path / ".finetune.owner").write_text("[1, 2]")
        assert holder(tmp_path) == "another finetune process"
        (tmp_path / ".finetune.owner").write_text(json.dumps({"pid": 7, "host": "h", "command": "x" * 300}))
        assert holder(tmp_path) == f"process 7 on h ({'x' * 120})"
        (tmp_path / ".finetune.owner").write_text(json.dumps({"pid": 7, "host": "h"}))
        assert holder(tmp_path) == "process 7 on h (finetune)"
    finally:
        lock.release()


def test_a_killed_runs_owner_is_reported_stale(tmp_path):
    dead = {"pid": 2**30, "host": socket.gethostname(), "command": "finetune train old.yaml"}
    (tmp_path / ".finetune.owner").write_text(json.dumps(dead))
    with RunLock(tmp_path) as lock:
        assert lock.stale_owner == dead
        assert json.loads((tmp_path / ".finetune.owner").read_text())["pid"] == os.getpid()
    assert not (tmp_path / ".finetune.owner").exists()


@pytest.mark.parametrize("owner", [{"pid": 2**30, "host": "another-host"}, {"pid": "12", "host": socket.gethostname()},
                                   {"pid": os.getpid(), "host": socket.gethostname()}])
def test_an_owner_that_may_be_alive_is_not_stale(tmp_path, owner):
    (tmp_path / ".finetune.owner").write_text(json.dumps(owner))
    with RunLock(tmp_path) as lock:
        assert lock.stale_owner == {}


def test_release_can_remove_the_folder_it_created(tmp_path):
    run = tmp_path / "run"
    RunLock(run).acquire().release(remove_dir=True)
    assert not run.exists()
    lock = RunLock(run).acquire()
    (run / "recipe.yaml").write_text("x")
    lock.release(remove_dir=True)
    assert sorted(path.name for path in run.iterdir()) == ["recipe.yaml"]  # lock files gone, the user's kept
    RunLock(run).acquire().release()
    assert (run / ".finetune.lock").exists()  # a plain release keeps the lock file


def test_release_after_the_lock_files_were_removed(tmp_path):
    lock = RunLock(tmp_path / "run").acquire()
    (tmp_path / "run" / ".finetune.owner").unlink()
    (tmp_path / "run" / ".finetune.lock").unlink()
    lock.release(remove_dir=True)  # someone cleaned up already: nothing to complain about
    assert not (tmp_path / "run").exists()


def test_a_lock_file_that_cannot_be_opened_has_no_holder(tmp_path):
    (tmp_path / ".finetune.lock").mkdir()
    assert holder(tmp_path) is None
