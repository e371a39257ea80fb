"""`finetune sweep`: check the recipe and the space, open (or resume) the study, run the workers, write the reports."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from finetune.config.schema import Recipe
from finetune.errors import TrainingInterrupted, UserError
from finetune.sweep.report import write_best_recipe, write_leaderboard, write_plots
from finetune.sweep.space import Param
from finetune.sweep.study import (
    SweepSettings,
    check_space,
    finished_trials,
    open_study,
    require_optuna,
    run_workers,
    storage_url,
)


@dataclass
class SweepResult:
    sweep_dir: Path
    metric: str
    finished: int  # complete or pruned trials in the study
    table: str
    best_recipe: Path | None
    best: dict[str, Any] = field(default_factory=dict)  # trial, value, params
    plots: list[Path] = field(default_factory=list)
    interrupted: bool = False


def default_sweep_dir(recipe: Recipe) -> Path:
    run_dir = recipe.resolved_output_dir()
    return run_dir.with_name(run_dir.name + "-sweep")


def objective_metric(recipe: Recipe) -> tuple[str, str]:
    """(metrics.json key, direction): the task's main metric (or train.metric_for_best_model) on the first
    evaluation set. Loads the data and checks its columns and labels, as the run would, before any trial."""
    from finetune.data.sources import load_data
    from finetune.tasks import get_task
    from finetune.tasks.metrics import higher_is_better

    task = get_task(recipe)
    data = load_data(recipe.data)
    task.setup(data)
    if not data.eval:
        raise UserError("a sweep compares trials on an evaluation set, and this recipe has none: give "
                        "--validation-file, data.validation_file or data.eval_split.")
    name = (recipe.train.metric_for_best_model or task.main_metric).removeprefix("eval_")
    key = f"eval_{name}" if len(data.eval) == 1 else f"eval_{next(iter(data.eval))}_{name}"
    return key, "maximize" if higher_is_better(name) else "minimize"


def sweep(recipe: Recipe, space: list[Param], trials: int, sweep_dir: Path, storage: str | None = None,
          study_name: str | None = None, workers: int = 1, pruning: bool = True) -> SweepResult:
    require_optuna()
    if workers < 1:
        raise UserError(f"--workers {workers}: give 1 or more.")
    metric, direction = objective_metric(recipe)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    settings = SweepSettings(recipe=recipe.with_absolute_paths().model_dump(mode="json"),
                             params=[{"key": p.key, "kind": p.kind, "values": list(p.values)} for p in space],
                             trials=trials, sweep_dir=str(sweep_dir.resolve()),
                             storage=storage_url(sweep_dir, storage), study_name=study_name or "finetune-sweep",
                             metric=metric, direction=direction, pruning=pruning)
    check_space(settings)
    import optuna

    study = open_study(settings)
    optuna.storages.fail_stale_trials(study)  # trials of killed processes, once their heartbeat is overdue
    interrupted = False
    remaining = trials - finished_trials(study)
    if remaining > 0:
        try:
            run_workers(settings, min(workers, remaining))
        except (KeyboardInterrupt, TrainingInterrupted):
            interrupted = True
    study = open_study(settings)
    table = write_leaderboard(study, sweep_dir, metric)
    plots = write_plots(study, sweep_dir, metric)
    best_path = write_best_recipe(study, sweep_dir, metric)
    best: dict[str, Any] = {}
    if best_path is not None:
        best = {"trial": study.best_trial.number, "value": study.best_value, "params": study.best_params}
    return SweepResult(sweep_dir, metric, finished_trials(study), table, best_path, best, plots, interrupted)
