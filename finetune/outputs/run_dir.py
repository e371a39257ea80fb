"""The run directory: the one module that knows its layout.

    runs/x/
      config.json, model.safetensors, tokenizer.json, ...   the model (LoRA: adapter_model.safetensors,
                                                            adapter_config.json and base_model_config.json)
      .finetune-run      the marker: finetune created this folder (run id); only marked folders are replaced
      .finetune.lock, .finetune.owner   the one-writer lock and its holder (outputs/lock.py)
      recipe.yaml        the fully resolved recipe, written before training starts
      metrics.json       written last: its presence marks a finished run
      predictions/       one JSON line per evaluation (and test) example
      trainer_state.json, plots/, README.md (the model card), checkpoint-N/

Everything that asks "is this a run, a model folder, a checkpoint?" or "where is this run's recipe?" asks here.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from finetune.errors import UserError

if TYPE_CHECKING:
    from finetune.config.schema import Recipe

RECIPE_FILE = "recipe.yaml"
METRICS_FILE = "metrics.json"
PREDICTIONS_DIR = "predictions"
PLOTS_DIR = "plots"
SAMPLES_FILE = "samples.jsonl"  # generation: {prompt, before, after} samples
PREDICTIONS_FILE = "predictions.jsonl"  # summarization/translation: the first evaluation split's predictions
CARD_FILE = "README.md"
TRAINER_STATE_FILE = "trainer_state.json"
MODEL_CONFIG_FILE = "config.json"
ADAPTER_CONFIG_FILE = "adapter_config.json"
# A LoRA run's base-model config with its labels: not named config.json, which would make transformers take the
# adapter folder for a full model (and look for weights that are not there).
BASE_MODEL_CONFIG_FILE = "base_model_config.json"
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
STAGING_DIR = ".final-model.tmp"

_CHECKPOINT_NAME = re.compile(r"checkpoint-(\d+)")


def checkpoint_step(path: Path) -> int | None:
    """N of a checkpoint-N folder; None for any other name."""
    match = _CHECKPOINT_NAME.fullmatch(Path(path).name)
    return int(match.group(1)) if match else None


def checkpoints_of(run_dir: Path) -> list[Path]:
    """The checkpoint-N folders of a run, oldest first."""
    found = [path for path in Path(run_dir).glob("checkpoint-*") if path.is_dir() and checkpoint_step(path) is not None]
    return sorted(found, key=lambda path: checkpoint_step(path) or 0)


def is_adapter_folder(path: Path) -> bool:
    """A LoRA adapter (PEFT's adapter_config.json)."""
    return (Path(path) / ADAPTER_CONFIG_FILE).is_file()


def is_model_folder(path: Path) -> bool:
    """A folder a model loads from: full weights with their config.json, or a LoRA adapter."""
    path = Path(path)
    return (path / MODEL_CONFIG_FILE).is_file() or is_adapter_folder(path)


def recipe_file_of(path: Path) -> Path | None:
    """recipe.yaml of a run directory, or of the run that holds a checkpoint-N (or merged) folder; else None."""
    path = Path(path)
    return next((folder / RECIPE_FILE for folder in (path, path.parent) if (folder / RECIPE_FILE).is_file()), None)


def run_recipe(path: Path) -> Recipe | None:
    """The validated recipe a run (or a checkpoint inside one) was trained with; None for a plain model folder."""
    recipe_file = recipe_file_of(path)
    if recipe_file is None:
        return None
    from finetune.config.loading import load_recipe

    return load_recipe(recipe_file)


def require_model_folder(path: Path) -> Path:
    """`path` when it holds a trained model; otherwise the error that says what to pass instead."""
    path = Path(path)
    if not path.is_dir():
        raise UserError(f"Run directory not found: {path}.")
    if not is_model_folder(path):
        hint = " It holds checkpoint-N folders: pass one of them." if checkpoints_of(path) else ""
        raise UserError(f"{path} holds no trained model (no {MODEL_CONFIG_FILE} or {ADAPTER_CONFIG_FILE}). Pass the "
                        f"run's output directory or one of its checkpoint-N folders.{hint}")
    require_complete_run(path)
    return path


# ----------------------------------------------------------------------------------------------------------------
# Complete models only: config, weights whose header opens, tokenizer files

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json", "spiece.model",
                   "tokenizer.model", "sentencepiece.bpe.model")
_PICKLE_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json", "adapter_model.bin", "model.pt", "model.bin")
_MAX_HEADER = 100_000_000  # safetensors' own limit on the JSON header


def safetensors_problem(path: Path) -> str | None:
    """Why a .safetensors file cannot be loaded (truncated, corrupt header), or None. Reads the header only."""
    import json
    import struct

    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            prefix = handle.read(8)
            if len(prefix) < 8:
                return f"{path.name} is empty or truncated"
            (length,) = struct.unpack("<Q", prefix)
            if length > min(_MAX_HEADER, size - 8):
                return f"{path.name} has a corrupt header"
            header = json.loads(handle.read(length))
    except OSError as error:
        return f"{path.name} cannot be read ({error.strerror})"
    except (ValueError, UnicodeDecodeError):
        return f"{path.name} has a corrupt header"
    if not isinstance(header, dict):
        return f"{path.name} has a corrupt header"
    ends = [entry["data_offsets"][1] for name, entry in header.items()
            if name != "__metadata__" and isinstance(entry, dict) and len(entry.get("data_offsets") or ()) == 2]
    if ends and max(ends) > size - 8 - length:
        return f"{path.name} is truncated ({size:,} bytes, its header describes {8 + length + max(ends):,})"
    return None


def model_folder_problem(path: Path, tokenizer_in: Path | None = None) -> str | None:
    """What a local model folder lacks to be loaded whole (config, weights that open, tokenizer), or None.

    `tokenizer_in`: where its tokenizer is (a checkpoint's may be in its run); default the folder itself."""
    path = Path(path)
    adapter = is_adapter_folder(path)
    if not adapter and not (path / MODEL_CONFIG_FILE).is_file():
        return f"no {MODEL_CONFIG_FILE}"
    weights = sorted(path.glob("*.safetensors"))
    if not weights:
        pickled = [name for name in _PICKLE_WEIGHTS if (path / name).is_file()]
        if pickled:
            return (f"its weights are a pickle file ({pickled[0]}), which finetune does not load because loading "
                    f"pickles can run code; convert it to .safetensors")
        return "no model weights (*.safetensors)"
    for weight in weights:
        problem = safetensors_problem(weight)
        if problem:
            return problem
    folder = tokenizer_in or path
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        return f"no tokenizer files ({', '.join(TOKENIZER_FILES[:3])}, ...)"
    return None


def require_complete_run(path: Path) -> None:
    """Refuse the model of a run that has not finished (recipe.yaml but no metrics.json): it may be partial or
    missing; name the checkpoint to use instead. Then refuse a model folder that is incomplete."""
    path = Path(path)
    saved = checkpoints_of(path)
    # A run directory (marked, or holding checkpoints; a merged export also has a recipe.yaml but is complete).
    is_run = (path / RECIPE_FILE).is_file() and ((path / MARKER_FILE).is_file() or bool(saved))
    if is_run and not (path / METRICS_FILE).is_file():
        use = f" Pass its newest checkpoint ({saved[-1]}) or" if saved else ""
        raise UserError(f"{path} is an unfinished run (no {METRICS_FILE}): its model may be partial.{use} "
                        f"finish it with `finetune train {path / RECIPE_FILE} --resume`.")
    problem = model_folder_problem(path, tokenizer_folder(path))
    if problem:
        raise UserError(f"{path} is not a complete model: {problem}.")


def tokenizer_folder(path: Path) -> Path:
    """Where a run's tokenizer is: the folder itself, or the run above a checkpoint that lacks one."""
    path = Path(path)
    return next((folder for folder in (path, path.parent) if (folder / TOKENIZER_CONFIG_FILE).is_file()), path)


# ----------------------------------------------------------------------------------------------------------------
# Ownership: which folders finetune may replace, and which of their files it wrote

MARKER_FILE = ".finetune-run"  # written when finetune creates a run directory: {"run_id", "created", "finetune"}
LOCK_FILE = ".finetune.lock"  # held (flock) by the one process writing the run; see outputs/lock.py
OWNER_FILE = ".finetune.owner"  # who holds the lock: pid, host, command (the lock file itself is truncated)
_HOUSEKEEPING = {MARKER_FILE, LOCK_FILE, OWNER_FILE}

# Every top-level entry a run (training, `finetune merge`, the Trainer, PEFT, tokenizers) writes. --overwrite
# removes exactly these; anything else in the folder is the user's and makes --overwrite refuse.
_RUN_ENTRY = re.compile(
    r"(recipe\.yaml|metrics\.json|README\.md|trainer_state\.json|training_args\.bin|samples\.jsonl"
    r"|predictions\.jsonl|predictions|plots|merged|runs|checkpoint-\d+|tmp-checkpoint-\d+"
    r"|\.final-model\.tmp|\..+\.tmp"  # staging folder; write_text_atomic's temporary files
    r"|config\.json|generation_config\.json|adapter_config\.json|[\w.-]*\.safetensors"
    r"|model\.safetensors\.index\.json|tokenizer\.json|tokenizer_config\.json|special_tokens_map\.json"
    r"|added_tokens\.json|vocab\.txt|vocab\.json|merges\.txt|spiece\.model|sentencepiece\.bpe\.model"
    r"|tokenizer\.model|chat_template\.(jinja|json))")
# What is left of a run that never reached training (killed or failed while loading): reusable without --overwrite.
_UNSTARTED = _HOUSEKEEPING | {RECIPE_FILE}


def _entries(run_dir: Path) -> list[str]:
    return sorted(path.name for path in run_dir.iterdir())


def foreign_entries(run_dir: Path) -> list[str]:
    """Top-level names in `run_dir` that finetune did not write."""
    return [name for name in _entries(run_dir) if name not in _HOUSEKEEPING and not _RUN_ENTRY.fullmatch(name)]


def run_marker(run_dir: Path) -> dict | None:
    """The marker of a run directory finetune created, or None (not marked, or unreadable)."""
    import json

    try:
        marker = json.loads((Path(run_dir) / MARKER_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) and marker.get("run_id") else None


def mark_run_dir(run_dir: Path) -> str:
    """Write the marker of a new run; its id also goes into metrics.json. Returns the run id."""
    import datetime
    import json
    import uuid

    from finetune import __version__
    from finetune.outputs.files import write_text_atomic

    run_id = uuid.uuid4().hex[:12]
    created = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    write_text_atomic(Path(run_dir) / MARKER_FILE,
                      json.dumps({"run_id": run_id, "created": created, "finetune": __version__}) + "\n")
    return run_id


def _short_list(names: list[str], limit: int = 3) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def inspect_run_dir(run_dir: Path, overwrite: bool, protected: dict[str, Path] | None = None) -> str:
    """What starting a run in `run_dir` would do, or the UserError it would refuse with. Changes nothing.

    Returns "new" (absent or empty, or only lock files), "unstarted" (a marked run that never reached training:
    reused), or "replace" (a marked, finished or partial run that --overwrite replaces). `protected` maps a
    description ("the training data") to a path that must survive: the run directory may not contain it.
    """
    run_dir = Path(run_dir)
    for parent in run_dir.absolute().parents:
        if parent.exists() and not parent.is_dir():
            raise UserError(f"--output-dir {run_dir}: {parent} is a file, not a folder. Choose another --output-dir.")
    if run_dir.exists() and not run_dir.is_dir():
        raise UserError(f"--output-dir {run_dir} is a file. Choose a folder name.")
    resolved = run_dir.resolve()
    for what, path in (protected or {}).items():
        if path.resolve() == resolved / RECIPE_FILE and run_marker(run_dir) is not None:
            continue  # a run's own recipe.yaml (finetune wrote it; it is read before anything is removed)
        if path.exists() and _inside(path.resolve(), resolved):
            raise UserError(f"--output-dir {run_dir} contains {what} ({path}): a run there could delete it. "
                            f"Choose another --output-dir.")
    if not run_dir.exists():
        return "new"
    entries = _entries(run_dir)
    if not set(entries) - _HOUSEKEEPING:
        return "new"
    marked = run_marker(run_dir) is not None
    foreign = foreign_entries(run_dir)
    special = resolved in (Path.cwd().resolve(), Path.home().resolve(), Path(resolved.anchor))
    if not marked or foreign or special:
        what = "it was not created by finetune (no .finetune-run marker)" if not marked else \
            f"it holds files finetune did not write ({_short_list(foreign)})"
        if special:
            what = "it is the current, home or root folder"
        raise UserError(f"--output-dir {run_dir} is not empty and {what}; finetune only writes into, and "
                        f"--overwrite only replaces, its own run directories. Choose another --output-dir.")
    if set(entries) <= _UNSTARTED:
        return "unstarted"  # nothing was trained there: the corrected command just starts over
    if not overwrite:
        raise UserError(f"{run_dir} already holds a run. Pass --overwrite to replace it, "
                        f"or choose another --output-dir.")
    if run_dir.is_symlink():
        raise UserError(f"--output-dir {run_dir} is a symbolic link; --overwrite does not replace through links. "
                        f"Pass the folder it points to ({resolved}) or choose another --output-dir.")
    return "replace"


def clear_run_dir(run_dir: Path) -> None:
    """Remove what finetune wrote in a run directory (never the lock, which the caller holds), nothing else.

    Call only after `inspect_run_dir` accepted the folder and every input was checked."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return
    for name in _entries(run_dir):
        if name in (LOCK_FILE, OWNER_FILE) or not (name == MARKER_FILE or _RUN_ENTRY.fullmatch(name)):
            continue
        path = run_dir / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


def prepare_run_dir(run_dir: Path, overwrite: bool, protected: dict[str, Path] | None = None) -> str:
    """Check the run directory (inspect_run_dir), then clear it when it is replaced or reused; returns the state."""
    state = inspect_run_dir(run_dir, overwrite, protected)
    if state in ("unstarted", "replace"):
        clear_run_dir(run_dir)
    return state


def move_into(staging: Path, run_dir: Path) -> None:
    """Rename every file of `staging` into `run_dir` (atomic per file on one filesystem), then drop `staging`."""
    for path in sorted(staging.rglob("*")):
        if path.is_file():
            target = run_dir / path.relative_to(staging)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, target)
    shutil.rmtree(staging)


def ensure_disk_space(run_dir: Path, parameters: int, freed: int = 0) -> None:
    """Fail before training when the run cannot be saved: a checkpoint (weights plus AdamW's two moments, in
    float32) and the final model copy next to it, written while the last checkpoint is still on disk."""
    needed = parameters * 4 * 3 + parameters * 4
    # `freed`: the bytes of an earlier run that --overwrite removes before this one writes.
    free = shutil.disk_usage(run_dir if run_dir.exists() else run_dir.parent if run_dir.parent.exists() else ".").free
    free += freed
    if free < needed:
        raise UserError(f"Not enough disk space for {run_dir}: a checkpoint and the final model need about "
                        f"{needed / 1e9:.2f} GB, "
                        f"{free / 1e9:.2f} GB is free. Free some space or choose another --output-dir.")


def size_of(folder: Path) -> int:
    """Bytes of the files under `folder` (links not followed)."""
    return sum(path.lstat().st_size for path in Path(folder).rglob("*") if path.is_file() and not path.is_symlink())
