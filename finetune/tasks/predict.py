"""`finetune predict` for any task: find what a run (or checkpoint, or model folder) was trained for, then let its
task family predict. The run's validated recipe supplies the settings (max_length, prefix, generation), never
defaults of our own."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from finetune.errors import UserError
from finetune.outputs.run_dir import ADAPTER_CONFIG_FILE, MODEL_CONFIG_FILE, require_model_folder, run_recipe
from finetune.tasks import family_of_model, get_family
from finetune.tasks.base import PredictRequest, TaskFamily

if TYPE_CHECKING:
    from finetune.config.schema import Recipe


def family_of_run(run_dir: Path) -> tuple[TaskFamily, Recipe | None]:
    """The task family of a run directory (from its recipe.yaml) or of a plain model folder (from its architecture
    or its adapter's PEFT task type), and the run's recipe when it has one."""
    run_dir = require_model_folder(Path(run_dir))
    recipe = run_recipe(run_dir)
    if recipe is not None:
        return get_family(recipe.task), recipe
    config_file = run_dir / MODEL_CONFIG_FILE
    config = json.loads(config_file.read_text(encoding="utf-8")) if config_file.is_file() else {}
    adapter_file = run_dir / ADAPTER_CONFIG_FILE
    adapter = json.loads(adapter_file.read_text(encoding="utf-8")) if adapter_file.is_file() else {}
    family = family_of_model((config.get("architectures") or [None])[0], adapter.get("task_type"))
    if family is None:
        raise UserError(f"Cannot tell what {run_dir} was trained for: no recipe.yaml, and its model class "
                        f"({(config.get('architectures') or ['unknown'])[0]}) has no task head finetune knows.")
    return family, None


def predict(run_dir: Path, request: PredictRequest) -> tuple[TaskFamily, list[dict[str, Any]]]:
    family, recipe = family_of_run(run_dir)
    return family, family.task_class.predict(Path(run_dir), recipe, family, request)
