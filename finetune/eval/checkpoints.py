"""What a checkpoint is and what it was trained for, for `finetune evaluate`.

A checkpoint is a run directory, a checkpoint-N folder inside one, a model folder, a Hub id or a LoRA adapter. Its
task comes from the run's recipe.yaml, else from its architecture (`*ForSequenceClassification`,
`*ForConditionalGeneration`, `*ForCausalLM`) or its adapter's PEFT task type; a checkpoint of another kind than a
benchmark scores is a clear error.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from finetune.errors import UserError
from finetune.outputs.run_dir import (
    ADAPTER_CONFIG_FILE,
    MODEL_CONFIG_FILE,
    RECIPE_FILE,
    TOKENIZER_CONFIG_FILE,
    checkpoint_step,
    checkpoints_of,
    is_adapter_folder,
    recipe_file_of,
    require_complete_run,
)

if TYPE_CHECKING:
    from finetune.config.schema import Recipe
    from finetune.eval.suites import BenchmarkTask

@dataclass
class Checkpoint:
    spec: str  # as the user wrote it
    path: Path | None  # None: a Hub id
    recipe: Recipe | None  # the run's recipe.yaml (a checkpoint-N folder: its run's)
    task: str | None
    architecture: str | None
    adapter: bool = False
    config_source: str = ""  # what AutoConfig loads: a model folder, Hub id or an adapter's base_model_config.json
    tokenizer_source: str = ""

    @property
    def slug(self) -> str:
        return checkpoint_slug(self.spec)

    @property
    def step(self) -> int | None:
        return checkpoint_step(self.path) if self.path else None


def checkpoint_slug(spec: str) -> str:
    """A readable folder name: runs/a -> runs__a, org/model -> org__model (lm-evaluation-harness's convention)."""
    from finetune.eval.suites import slugify

    path = Path(spec).expanduser()
    if path.exists():
        resolved = path.resolve()
        try:
            parts = resolved.relative_to(Path.cwd().resolve()).parts
        except ValueError:  # outside the working directory: its last two names
            parts = resolved.parts[-2:]
    else:
        parts = tuple(spec.split("/"))
    return slugify("__".join(part for part in parts if part not in ("", ".", "..")))


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise UserError(f"{path}: cannot be read as JSON ({error}).") from error


def resolve_checkpoint(spec: str) -> Checkpoint:
    from finetune.tasks import family_of_model

    path = Path(spec).expanduser()
    if not path.exists():
        if spec.startswith((".", "/", "~")) or spec.count("/") > 1:
            raise UserError(f"Checkpoint not found: {spec}. Pass a run directory, a checkpoint-N folder in one, a "
                            f"model folder, a LoRA adapter folder or a Hub id.")
        from finetune.config.schema import ModelSection
        from finetune.models.loading import load_config

        architectures = load_config(ModelSection(name=spec)).architectures or []
        architecture = architectures[0] if architectures else None
        family = family_of_model(architecture)
        return Checkpoint(spec, None, None, family.name if family else None, architecture,
                          config_source=spec, tokenizer_source=spec)
    if not path.is_dir():
        raise UserError(f"{spec} is a file; a checkpoint is a folder (a run directory or a model folder).")
    adapter = is_adapter_folder(path)
    # A checkpoint-N folder takes its run's recipe; any other folder only its own.
    recipe_file = recipe_file_of(path) if checkpoint_step(path) is not None else (
        path / RECIPE_FILE if (path / RECIPE_FILE).is_file() else None)
    from finetune.config.loading import load_recipe

    recipe = load_recipe(recipe_file) if recipe_file else None
    if adapter:  # the base model's config with the run's labels (see models/lora.py), beside it or in its run
        from finetune.models.lora import base_model_config_file

        config_file = base_model_config_file(path)
    else:
        config_file = path / MODEL_CONFIG_FILE if (path / MODEL_CONFIG_FILE).is_file() else None
    if config_file is None and not adapter:
        hint = (" It holds checkpoint-N folders: pass one of them, or add --all-checkpoints."
                if checkpoints_of(path) else "")
        raise UserError(f"{path} holds no model (no {MODEL_CONFIG_FILE} or {ADAPTER_CONFIG_FILE}).{hint}")
    if not adapter:
        require_complete_run(path)  # an unfinished run or a partial checkpoint is never scored
    config = _read_json(config_file) if config_file else {}
    architecture = (config.get("architectures") or [None])[0]
    adapter_config = _read_json(path / ADAPTER_CONFIG_FILE) if adapter else {}
    family = family_of_model(architecture, adapter_config.get("task_type"))
    task = recipe.task if recipe else (family.name if family else None)
    base = adapter_config.get("base_model_name_or_path") or ""
    tokenizer_dir = next((d for d in (path, path.parent) if (d / TOKENIZER_CONFIG_FILE).is_file()), None)
    return Checkpoint(spec, path, recipe, task, architecture, adapter,
                      config_source=str(config_file if adapter else path) if config_file else base,
                      tokenizer_source=str(tokenizer_dir) if tokenizer_dir else (base or str(path)))


def evaluation_task_name(checkpoint: Checkpoint, spec: BenchmarkTask, overrides: dict[str, Any]) -> str:
    """The task to score as; a checkpoint of another kind than the benchmark wants is a clear error."""
    from finetune.tasks import families, family_of_dataset, get_family

    wanted = overrides.get("task") or spec.task or getattr(family_of_dataset(spec.dataset), "name", None)
    have = checkpoint.task
    where = "its recipe.yaml" if checkpoint.recipe else f"its architecture {checkpoint.architecture or 'unknown'}"
    if have is None:
        if wanted:
            return wanted
        names = ", ".join(family.name for family in families())
        raise UserError(f"Cannot tell what {checkpoint.spec} was trained for ({where}, no recipe.yaml): it has no "
                        f"task head finetune knows. Pass --set task=NAME ({names}).")
    if wanted is None:
        return have
    if get_family(wanted).kind != get_family(have).kind:
        raise UserError(
            f"{checkpoint.spec} is a {have} checkpoint (from {where}), but this benchmark scores {wanted} "
            f"checkpoints. Pass a {wanted} checkpoint ({get_family(wanted).checkpoint_hint}), or another --benchmark.")
    return wanted
