"""The run directory: the one module that knows its layout.

    runs/x/
      config.json, model.safetensors, tokenizer.json, ...   the model (LoRA: adapter_model.safetensors,
                                                            adapter_config.json and base_model_config.json)
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
    return path


def tokenizer_folder(path: Path) -> Path:
    """Where a run's tokenizer is: the folder itself, or the run above a checkpoint that lacks one."""
    path = Path(path)
    return next((folder for folder in (path, path.parent) if (folder / TOKENIZER_CONFIG_FILE).is_file()), path)


def prepare_run_dir(run_dir: Path, overwrite: bool) -> None:
    """Refuse to clobber an earlier run; with `overwrite`, remove only a folder that is a run directory."""
    if not run_dir.exists():
        return
    if run_dir.is_file():
        raise UserError(f"--output-dir {run_dir} is a file. Choose a folder name.")
    if not any(run_dir.iterdir()):
        return
    if not overwrite:
        raise UserError(f"{run_dir} already holds a run. Pass --overwrite to replace it, "
                        f"or choose another --output-dir.")
    looks_like_run = (run_dir / RECIPE_FILE).exists() or any(run_dir.glob("checkpoint-*"))
    if not looks_like_run:
        raise UserError(f"{run_dir} is not empty and is not a finetune run directory (no {RECIPE_FILE}); "
                        f"--overwrite only replaces run directories. Choose another --output-dir.")
    shutil.rmtree(run_dir)


def move_into(staging: Path, run_dir: Path) -> None:
    """Rename every file of `staging` into `run_dir` (atomic per file on one filesystem), then drop `staging`."""
    for path in sorted(staging.rglob("*")):
        if path.is_file():
            target = run_dir / path.relative_to(staging)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, target)
    shutil.rmtree(staging)


def ensure_disk_space(run_dir: Path, parameters: int) -> None:
    """Fail before training when a checkpoint cannot be saved: weights plus AdamW's two moments, in float32."""
    needed = parameters * 4 * 3
    free = shutil.disk_usage(run_dir if run_dir.exists() else run_dir.parent if run_dir.parent.exists() else ".").free
    if free < needed:
        raise UserError(f"Not enough disk space for {run_dir}: a checkpoint needs about {needed / 1e9:.2f} GB, "
                        f"{free / 1e9:.2f} GB is free. Free some space or choose another --output-dir.")
