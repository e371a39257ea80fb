"""`finetune sweep`: hyper-parameter search on Optuna (finetune/sweep/). Optuna is imported inside the command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from finetune.cli.app import Overrides, app, load_task_recipe, switch, user_errors


@app.command("sweep")
@user_errors
def sweep_command(
    recipe: Annotated[str, typer.Argument(help="Recipe file, or a shipped recipe name such as glue/sst2.")],
    overrides: Overrides = None,
    trials: Annotated[int | None, typer.Option(
        "--trials", min=1, help="Finished trials the study holds at the end (re-run with more to add some). "
                                "Default: the recipe's sweep.trials (20).", show_default=False)] = None,
    output_dir: Annotated[Path | None, typer.Option(
        "--output-dir", help="Sweep folder: study.db, trial-NNN/ run directories, leaderboard, plots, "
                             "best_recipe.yaml. Default: the recipe's run directory + '-sweep'.",
        show_default=False)] = None,
    param: Annotated[list[str] | None, typer.Option(
        "--param", help="Search KEY as SPEC: loguniform(LOW,HIGH), uniform(LOW,HIGH), int(LOW,HIGH), "
                        "choice(A,B,...), or a fixed value; repeatable, e.g. "
                        "--param 'train.learning_rate=loguniform(1e-5,1e-3)'.", show_default=False)] = None,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Trials run side by side, each in its own "
                                                                  "process.")] = 1,
    storage: Annotated[str | None, typer.Option(
        "--storage", help="Optuna RDB storage URL (postgresql://..., mysql://...) shared by machines running "
                          "workers of one study. Default: sqlite in the sweep folder.", show_default=False)] = None,
    study_name: Annotated[str, typer.Option("--study-name", help="Study name inside the storage.")] = "finetune-sweep",
    no_pruning: Annotated[bool, switch("--no-pruning", help="Train every trial to the end (no median pruning "
                                                            "from per-epoch evaluations).")] = False,
) -> None:
    """Search hyper-parameters with Optuna: finetune sweep recipe.yaml --trials 20 --output-dir sweeps/sst2"""
    from finetune.sweep.driver import default_sweep_dir, sweep
    from finetune.sweep.space import parse_cli_params, search_space
    from finetune.tasks import get_family

    loaded = load_task_recipe(recipe, overrides)
    space = search_space(loaded.sweep.params, parse_cli_params(param or []),
                         seq2seq=get_family(loaded.task).group == "seq2seq")
    sweep_dir = output_dir or default_sweep_dir(loaded)
    count = trials or loaded.sweep.trials
    searched = ", ".join(f"{item.key}={item.describe()}" for item in space)
    typer.echo(f"finetune sweep: {loaded.task} | model {loaded.model.name} | {count} trials | {searched} | "
               f"output {sweep_dir}", err=True)
    result = sweep(loaded, space, count, sweep_dir, storage, study_name, workers, not no_pruning)
    typer.echo("")
    typer.echo(result.table, nl=False)
    typer.echo("")
    if result.best_recipe is not None:
        typer.echo(f"best: trial {result.best['trial']}, {result.metric} {result.best['value']:.4f}")
        typer.echo(f"best recipe: {result.best_recipe}  (finetune train {result.best_recipe})")
    typer.echo(f"written to {sweep_dir}/ (study.db, trial-NNN/, leaderboard.md, leaderboard.csv, plots/, "
               f"best_recipe.yaml)")
    if result.interrupted:
        typer.secho(f"interrupted: {result.finished} finished trials are in the study; run the same command again "
                    f"to continue.", err=True, fg=typer.colors.YELLOW)
        raise typer.Exit(130)
