"""The training commands: one per task family (classify, summarize, translate, generate), generated from the task
registry and the schema's flag table, plus `train` (any recipe) and `check`. Every command builds a Recipe and
hands it to training.run; heavy libraries are imported inside the command bodies.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Annotated, Any

import typer

from finetune.cli.app import SWITCH, Overrides, app, load_task_recipe, switch, user_errors
from finetune.config.flags import FlagSpec, common_flags, flag_spec, flag_values, hf_flags, nest
from finetune.tasks import families
from finetune.tasks.base import TaskFamily
from finetune.training.distributed import LaunchConfig, inside_launcher, is_main_process, relaunch


def _report(result: Any) -> None:
    """The end-of-run summary: what ran, how fast, how well, and where everything is."""
    from finetune.outputs.card import headline_metrics

    metrics = result.metrics
    rows = [("task", metrics.get("task")), ("model", metrics.get("model")), ("data", metrics.get("data")),
            ("examples", f"{metrics.get('train_samples')} train, "
                         f"{sum((metrics.get('eval_samples') or {}).values())} eval"),
            ("steps", f"{metrics.get('global_step', '?')} ({metrics.get('epoch', 0):g} epochs"
                      + (f", {metrics['world_size']} processes)" if metrics.get("world_size", 1) > 1 else ")")),
            ("time", f"{metrics.get('train_runtime', 0):.1f} s training, "
                     f"{metrics.get('train_samples_per_second', 0):.1f} samples/s")]
    if "trainable_parameters" in metrics:
        rows.append(("parameters", f"{metrics['trainable_parameters']:,} trainable of {metrics['total_parameters']:,}"))
    rows += [(key.removeprefix("eval_"), f"{value:.4f}") for key, value in headline_metrics(metrics).items()]
    from finetune.training.early_stopping import summary_line

    rows += [line] if (line := summary_line(metrics.get("early_stopping"))) else []
    rows.append(("written to", f"{result.run_dir}/ (model, recipe.yaml, metrics.json, predictions/, plots/, "
                               f"README.md)"))
    width = max(len(name) for name, _ in rows)
    typer.echo("")
    for name, value in rows:
        typer.echo(f"  {name:<{width}}  {value}")


# ---- options every training command has besides its recipe flags ---------------------------------------------

RecipeFile = Annotated[str | None, typer.Option("--recipe", help="Start from this recipe file (or shipped name).")]
Overwrite = Annotated[bool, switch("--overwrite", help="Replace an existing run directory.")]
DryRun = Annotated[bool, switch(
    "--dry-run", help="Check data, columns, labels and tokenization, report steps and devices; do not train.")]
Resume = Annotated[bool | None, switch(
    "--resume", help="Continue from the newest complete checkpoint in --output-dir (named one: "
                     "train.resume=checkpoint-N).", show_default=False)]
NumProcesses = Annotated[int, typer.Option(
    "--num-processes", help="Processes in all (data parallel), started through accelerate launch.")]
NumMachines = Annotated[int, typer.Option("--num-machines", help="Machines taking part.")]
MachineRank = Annotated[int, typer.Option("--machine-rank", help="This machine's rank (0 is the main one).")]
MainProcessIp = Annotated[str | None, typer.Option("--main-process-ip", help="Address of machine rank 0.")]
MainProcessPort = Annotated[int | None, typer.Option("--main-process-port", help="Port on machine rank 0.")]

_RUN_OPTIONS = {"recipe": (RecipeFile, None), "overwrite": (Overwrite, False), "dry_run": (DryRun, False),
                "num_processes": (NumProcesses, 1), "num_machines": (NumMachines, 1),
                "machine_rank": (MachineRank, 0), "main_process_ip": (MainProcessIp, None),
                "main_process_port": (MainProcessPort, None)}


def _option_type(flag: FlagSpec) -> Any:
    """The Typer annotation of a recipe flag: None means "not given", so only given flags override the recipe."""
    kind: Any = list[flag.value_type] if flag.repeatable else flag.value_type  # type: ignore[name-defined]
    return Annotated[kind | None, typer.Option(flag.name, *flag.aliases, help=flag.help, show_default=False,
                                               metavar=SWITCH if flag.value_type is bool else None)]


def command_flags(family: TaskFamily) -> list[FlagSpec]:
    """The shared flags, a family flag replacing a shared one with the same key (its own help), then the rest,
    then transformers' switches (--bf16). An alias that another flag already uses as its name is dropped."""
    own = {flag.key: flag_spec(flag.key, flag.name, flag.help) for flag in family.flags}
    flags = [own.pop(flag.key, flag) for flag in common_flags(model_default=family.default_model)]
    flags += list(own.values()) + hf_flags()
    names = {flag.name for flag in flags}
    seen: set[str] = set()
    unique = []
    for flag in flags:
        aliases = tuple(alias for alias in flag.aliases if alias not in names and alias not in seen)
        seen.update(aliases)
        unique.append(dataclasses.replace(flag, aliases=aliases))
    return unique


def add_training_command(family: TaskFamily) -> None:
    """Register `finetune <family.command>`: the family's flags (from the schema), the run options, overrides."""
    flags = command_flags(family)

    def command(**values: Any) -> None:
        launch = LaunchConfig(*(values.pop(name) for name in ("num_processes", "num_machines", "machine_rank",
                                                               "main_process_ip", "main_process_port")))
        recipe_file, overwrite, dry_run = values.pop("recipe"), values.pop("overwrite"), values.pop("dry_run")
        overrides = values.pop("overrides")
        given = nest(flag_values(flags, values))
        recipe = load_task_recipe(recipe_file, overrides, base={"task": family.name}, flags=given)
        if recipe.task != family.name:
            from finetune.errors import UserError

            raise UserError(f"Recipe {recipe_file} is a {recipe.task} recipe; run it with "
                            f"`finetune train {recipe_file}`.")
        _train(recipe, overwrite, dry_run, launch, recipe_file)

    parameters = [inspect.Parameter(flag.parameter, inspect.Parameter.KEYWORD_ONLY, default=None,
                                    annotation=_option_type(flag)) for flag in flags]
    parameters += [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)
                   for name, (annotation, default) in _RUN_OPTIONS.items()]
    parameters.append(inspect.Parameter("overrides", inspect.Parameter.KEYWORD_ONLY, default=None,
                                        annotation=Overrides))
    command.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    command.__annotations__ = {parameter.name: parameter.annotation for parameter in parameters}
    command.__name__ = family.command
    command.__doc__ = family.summary
    app.command(family.command)(user_errors(command))


for _family in families():
    add_training_command(_family)


def _recipe_path(name: str | None) -> Any:
    """The recipe file a command was given (a path or a shipped name), protected from --overwrite."""
    if name is None:
        return None
    from finetune.config.loading import find_recipe

    return find_recipe(name)


def _train(recipe: Any, overwrite: bool, dry_run: bool = False, launch: LaunchConfig | None = None,
           recipe_name: str | None = None) -> None:
    from finetune.training.run import run

    recipe_file = _recipe_path(recipe_name)
    if dry_run:
        _check(recipe, overwrite, recipe_file)
        return
    if launch is not None and launch.wanted and not inside_launcher():
        # The recipe is valid (checked above, once); now the same command runs in every process.
        typer.echo(f"finetune: launching {launch.num_processes} processes through accelerate", err=True)
        raise typer.Exit(relaunch(launch))

    if is_main_process():
        typer.echo(f"finetune: {recipe.task} | model {recipe.model.name} | "
                   f"data {recipe.data.dataset or recipe.data.train_file} | output {recipe.resolved_output_dir()}",
                   err=True)
    result = run(recipe, overwrite=overwrite, recipe_file=recipe_file)
    if result.is_main_process:
        _report(result)


# ---- train / recipes -----------------------------------------------------------------------------------------


@app.command()
@user_errors
def train(
    recipe: Annotated[str, typer.Argument(help="Recipe file, or a shipped recipe name such as glue/sst2.")],
    overrides: Overrides = None,
    resume: Resume = None,
    overwrite: Overwrite = False,
    dry_run: DryRun = False,
    num_processes: NumProcesses = 1, num_machines: NumMachines = 1, machine_rank: MachineRank = 0,
    main_process_ip: MainProcessIp = None, main_process_port: MainProcessPort = None,
) -> None:
    """Run any recipe: finetune train recipes/glue/sst2.yaml train.epochs=1"""
    _train(load_task_recipe(recipe, overrides, flags=nest({"train.resume": resume})), overwrite, dry_run,
           LaunchConfig(num_processes, num_machines, machine_rank, main_process_ip, main_process_port), recipe)


def _check(recipe: Any, overwrite: bool = False, recipe_file: Any = None) -> None:
    from finetune.training.check import check

    typer.echo(f"Checking {recipe.task} run (nothing is trained):")
    typer.echo(check(recipe, overwrite, recipe_file).render())
    typer.echo("ok: the run is ready to start.")


@app.command("check")
@user_errors
def check_command(
    recipe: Annotated[str, typer.Argument(help="Recipe file, or a shipped recipe name.")],
    overrides: Overrides = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Check as a run given --overwrite would.")] = False,
) -> None:
    """Check a recipe before spending compute: data, columns, labels, tokenization, steps, devices, output."""
    _check(load_task_recipe(recipe, overrides), overwrite, _recipe_path(recipe))

