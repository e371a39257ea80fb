"""What a sweep leaves besides its trials: the leaderboard (terminal, Markdown, CSV), plots and the best recipe."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from finetune.eval.leaderboard import csv_text, markdown_table
from finetune.outputs.files import write_text_atomic

LEADERBOARD = "leaderboard"  # .md and .csv
BEST_RECIPE = "best_recipe.yaml"
PLOTS_DIR = "plots"


def trial_rows(study: Any, metric: str) -> tuple[list[str], list[list[Any]]]:
    """(headers, rows): finished trials best first (complete, then pruned), then failed and running ones."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    keys = list(dict.fromkeys(key for trial in trials for key in trial.params))
    higher = study.direction.name.lower() == "maximize"
    order = {TrialState.COMPLETE: 0, TrialState.PRUNED: 1}

    def value(trial: Any) -> float | None:
        if trial.value is not None:
            return float(trial.value)
        reported = trial.intermediate_values
        return float(reported[max(reported)]) if reported else None  # a pruned trial: its last evaluation

    def sort_key(trial: Any) -> tuple[int, float]:
        score = value(trial)
        rank = -score if higher and score is not None else score
        return order.get(trial.state, 2), rank if rank is not None and not math.isnan(rank) else math.inf

    rows = []
    for position, trial in enumerate(sorted(trials, key=sort_key), start=1):
        seconds = trial.duration.total_seconds() if trial.duration else None
        rows.append([position if trial.state in order else "-", trial.number, trial.state.name.lower(), value(trial),
                     *(trial.params.get(key) for key in keys),
                     round(seconds, 1) if seconds is not None else None,
                     Path(trial.user_attrs.get("run_dir", "")).name])
    headers = ["rank", "trial", "state", metric, *(key.split(".")[-1] for key in keys), "seconds", "run"]
    return headers, rows


def _shown(value: Any, column: int) -> Any:
    """Parameter values with 3 significant digits (learning rates), the metric with 4 decimals."""
    if isinstance(value, float) and column != 3:
        return f"{value:.3g}"
    return value


def write_leaderboard(study: Any, sweep_dir: Path, metric: str) -> str:
    """leaderboard.md (values rounded for reading) and leaderboard.csv (exact values) in the sweep folder; returns
    the Markdown table for the terminal."""
    headers, rows = trial_rows(study, metric)
    shown = [[_shown(value, column) for column, value in enumerate(row)] for row in rows]
    table = markdown_table(headers, shown)
    write_text_atomic(sweep_dir / f"{LEADERBOARD}.md", f"# Sweep {study.study_name}: {metric}\n\n{table}")
    write_text_atomic(sweep_dir / f"{LEADERBOARD}.csv", csv_text(headers, rows))
    return table


def write_plots(study: Any, sweep_dir: Path, metric: str) -> list[Path]:
    """plots/metric_by_trial.png (each finished trial and the best so far) and plots/param_importance.png
    (Optuna's fANOVA importances; only once two trials completed with different values)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.trial import TrialState

    folder = sweep_dir / PLOTS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    complete = [trial for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                if trial.value is not None]
    if complete:
        higher = study.direction.name.lower() == "maximize"
        best, running = [], None
        for trial in complete:
            running = trial.value if running is None else (max if higher else min)(running, trial.value)
            best.append(running)
        figure, axis = plt.subplots(figsize=(6, 3.5))
        axis.plot([trial.number for trial in complete], [trial.value for trial in complete], "o", label="trial")
        axis.step([trial.number for trial in complete], best, where="post", label="best so far")
        axis.set_xlabel("trial")
        axis.set_ylabel(metric)
        axis.grid(True, alpha=0.3)
        axis.legend()
        figure.tight_layout()
        figure.savefig(folder / "metric_by_trial.png", dpi=100)
        plt.close(figure)
        written.append(folder / "metric_by_trial.png")
    if len({trial.value for trial in complete}) >= 2 and any(len(trial.distributions) for trial in complete):
        import optuna

        try:
            importances = optuna.importance.get_param_importances(study)
        except (RuntimeError, ValueError):
            importances = {}
        if importances:
            names = list(importances)[::-1]
            figure, axis = plt.subplots(figsize=(6, 0.5 * len(names) + 1.2))
            axis.barh([name.split(".")[-1] for name in names], [importances[name] for name in names])
            axis.set_xlabel(f"importance for {metric} (fANOVA)")
            figure.tight_layout()
            figure.savefig(folder / "param_importance.png", dpi=100)
            plt.close(figure)
            written.append(folder / "param_importance.png")
    return written


def write_best_recipe(study: Any, sweep_dir: Path, metric: str) -> Path | None:
    """The best complete trial's recipe (as it ran: every value resolved), training into SWEEP/best: ready for
    `finetune train`. None while no trial has completed."""
    from optuna.trial import TrialState

    from finetune.config.loading import load_recipe
    from finetune.outputs.run_dir import RECIPE_FILE

    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return None
    best = study.best_trial
    run_recipe = Path(best.user_attrs.get("run_dir", "")) / RECIPE_FILE
    if not run_recipe.is_file():
        return None
    recipe = load_recipe(run_recipe)
    recipe = recipe.model_copy(update={"output_dir": str((sweep_dir / "best").resolve())})
    values = ", ".join(f"{key}={value}" for key, value in best.params.items())
    header = (f"# Best trial of sweep {study.study_name}: trial {best.number}, {metric} {best.value:.4f}\n"
              f"# ({values}). Train it with: finetune train {sweep_dir / BEST_RECIPE}\n")
    path = sweep_dir / BEST_RECIPE
    write_text_atomic(path, header + recipe.to_yaml())
    return path
