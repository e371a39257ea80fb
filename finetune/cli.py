"""The `finetune` command line. Thin on purpose: every command builds a Recipe and hands it to train.run.

Heavy libraries (torch, transformers, datasets) are imported inside the command bodies, so `finetune --help`
answers at once.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

app = typer.Typer(
    name="finetune",
    help="Fine-tune Hugging Face models from one command or a YAML recipe.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
recipes_app = typer.Typer(help="List, show and validate recipes.", no_args_is_help=True)
app.add_typer(recipes_app, name="recipes")

_state = {"debug": False}

OVERRIDES_HELP = "Recipe overrides as dotted key=value, for example train.epochs=1 data.max_length=64."


def _fail(message: str, code: int = 2) -> None:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    raise typer.Exit(code)


def user_errors(command):
    """Print a UserError as one line and exit 2; a traceback only with --debug."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from finetune.errors import UserError

        try:
            return command(*args, **kwargs)
        except UserError as error:
            if _state["debug"]:
                raise
            _fail(str(error), error.exit_code)
        except KeyboardInterrupt:
            _fail("interrupted.", 130)

    return wrapper


def _version(value: bool) -> None:
    if value:
        from finetune import __version__

        typer.echo(f"finetune {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks for errors.")] = False,
    version: Annotated[Optional[bool], typer.Option("--version", callback=_version, is_eager=True,
                                                    help="Print the version and exit.")] = None,
) -> None:
    _state["debug"] = debug


def _flags(**pairs: Any) -> dict[str, Any]:
    """{'train.epochs': 1, 'data.dataset': None} -> {'train': {'epochs': 1}}: only the flags the user gave."""
    nested: dict[str, Any] = {}
    for dotted, value in pairs.items():
        if value is None or value == []:
            continue
        section, _, key = dotted.partition(".")
        if key:
            nested.setdefault(section, {})[key] = value
        else:
            nested[section] = value
    return nested


def _report(result: Any) -> None:
    metrics = result.metrics
    shown = {key: value for key, value in metrics.items()
             if key.startswith("eval_") and isinstance(value, float) and not key.endswith(("_runtime", "_per_second"))}
    typer.echo("")
    for key, value in shown.items():
        typer.echo(f"  {key:<40} {value:.4f}")
    if "train_runtime" in metrics:
        typer.echo(f"  {'train_runtime (s)':<40} {metrics['train_runtime']:.1f}")
    typer.echo(f"\nRun written to {result.run_dir}  (model, recipe.yaml, metrics.json, predictions/)")


# ---- classify ------------------------------------------------------------------------------------------------


@app.command()
@user_errors
def classify(
    model: Annotated[Optional[str], typer.Option(help="Hub id or local folder. [default: bert-base-uncased]")] = None,
    dataset: Annotated[Optional[str], typer.Option(
        help="glue/<task>, a Hub dataset id (optionally id:config), or a local file or folder.")] = None,
    dataset_config: Annotated[Optional[str], typer.Option(help="Hub dataset configuration name.")] = None,
    data_dir: Annotated[Optional[Path], typer.Option(
        help="Folder of GLUE data on disk (original TSVs or HF parquet), used with --dataset glue/<task>.")] = None,
    train_file: Annotated[Optional[Path], typer.Option(help="csv/tsv/json/jsonl/parquet file to train on.")] = None,
    validation_file: Annotated[Optional[Path], typer.Option(help="File to evaluate on.")] = None,
    test_file: Annotated[Optional[Path], typer.Option(help="File to predict on after training.")] = None,
    text_column: Annotated[Optional[list[str]], typer.Option(
        help="Text column; give it twice for sentence pairs. [default: guessed]")] = None,
    label_column: Annotated[Optional[str], typer.Option(help="Label column. [default: label]")] = None,
    max_length: Annotated[Optional[int], typer.Option(help="Truncate inputs to this many tokens. [default: 128]")] = None,
    epochs: Annotated[Optional[float], typer.Option(help="Training epochs. [default: 3]")] = None,
    max_steps: Annotated[Optional[int], typer.Option(help="Stop after this many steps (overrides epochs).")] = None,
    learning_rate: Annotated[Optional[float], typer.Option(help="Peak learning rate. [default: 2e-5]")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Training batch size per device. [default: 32]")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Random seed. [default: 42]")] = None,
    max_train_samples: Annotated[Optional[int], typer.Option(help="Train on the first N examples only.")] = None,
    max_eval_samples: Annotated[Optional[int], typer.Option(help="Evaluate on the first N examples only.")] = None,
    output_dir: Annotated[Optional[Path], typer.Option(help="Run directory. [default: runs/classification-<data>]")] = None,
    recipe: Annotated[Optional[Path], typer.Option(help="Start from this recipe file (or shipped name).")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing run directory.")] = False,
    overrides: Annotated[Optional[list[str]], typer.Argument(help=OVERRIDES_HELP, show_default=False)] = None,
) -> None:
    """Fine-tune a sequence classifier (GLUE, or any labelled text) and evaluate it."""
    from finetune.recipe import load_recipe

    flags = _flags(**{
        "model.name": model, "data.dataset": dataset, "data.config": dataset_config,
        "data.data_dir": _text(data_dir), "data.train_file": _text(train_file),
        "data.validation_file": _text(validation_file), "data.test_file": _text(test_file),
        "data.text_columns": text_column, "data.label_column": label_column, "data.max_length": max_length,
        "train.epochs": epochs, "train.max_steps": max_steps, "train.learning_rate": learning_rate,
        "train.batch_size": batch_size, "train.seed": seed, "data.max_train_samples": max_train_samples,
        "data.max_eval_samples": max_eval_samples, "output_dir": _text(output_dir),
    })
    resolved = load_recipe(recipe, overrides, base={"task": "classification"}, flags=flags)
    _train(resolved, overwrite)


def _text(path: Optional[Path]) -> Optional[str]:
    return None if path is None else str(path)


def _train(recipe: Any, overwrite: bool) -> None:
    from finetune.train import run

    typer.echo(f"finetune: {recipe.task} | model {recipe.model.name} | "
               f"data {recipe.data.dataset or recipe.data.train_file} | output {recipe.resolved_output_dir()}",
               err=True)
    _report(run(recipe, overwrite=overwrite))


# ---- train / recipes -----------------------------------------------------------------------------------------


@app.command()
@user_errors
def train(
    recipe: Annotated[str, typer.Argument(help="Recipe file, or a shipped recipe name such as glue/sst2.")],
    overrides: Annotated[Optional[list[str]], typer.Argument(help=OVERRIDES_HELP, show_default=False)] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing run directory.")] = False,
) -> None:
    """Run any recipe: finetune train recipes/glue/sst2.yaml train.epochs=1"""
    from finetune.recipe import load_recipe

    _train(load_recipe(recipe, overrides), overwrite)


@recipes_app.command("list")
@user_errors
def recipes_list() -> None:
    """Shipped recipes and what each is for."""
    from finetune.recipe import find_recipe, read_yaml, shipped_recipe_names

    for name in shipped_recipe_names():
        description = read_yaml(find_recipe(name)).get("description") or ""
        typer.echo(f"{name:<36} {description}")


@recipes_app.command("show")
@user_errors
def recipes_show(name: Annotated[str, typer.Argument(help="Shipped recipe name or file.")]) -> None:
    """Print a recipe file as written (comments included)."""
    from finetune.recipe import find_recipe

    typer.echo(find_recipe(name).read_text(encoding="utf-8"), nl=False)


@recipes_app.command("validate")
@user_errors
def recipes_validate(
    files: Annotated[list[str], typer.Argument(help="Recipe files or shipped names.")],
    overrides: Annotated[Optional[list[str]], typer.Option("--set", help=OVERRIDES_HELP)] = None,
    resolved: Annotated[bool, typer.Option("--resolved", help="Print the fully resolved recipe.")] = False,
) -> None:
    """Check recipes (keys, types, extends) without running them."""
    from finetune.recipe import load_recipe

    for file in files:
        recipe = load_recipe(file, overrides)
        typer.echo(f"ok  {file}  ({recipe.task}, model {recipe.model.name}, "
                   f"data {recipe.data.dataset or recipe.data.train_file})")
        if resolved:
            typer.echo(recipe.to_yaml())


# ---- predict / smoke -----------------------------------------------------------------------------------------


@app.command()
@user_errors
def predict(
    run_dir: Annotated[Path, typer.Argument(help="Run directory (or a checkpoint folder inside one).")],
    text: Annotated[Optional[list[str]], typer.Option(help="Input text; repeat for several.")] = None,
    text_pair: Annotated[Optional[list[str]], typer.Option(
        help="Second sentence for sentence-pair models; repeat once per --text.")] = None,
    file: Annotated[Optional[Path], typer.Option(
        help="One input per line (sentence pairs: tab-separated), or a .jsonl/.csv with the run's text columns.")] = None,
    batch_size: Annotated[int, typer.Option(help="Inputs per forward pass.")] = 32,
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON object per input.")] = False,
) -> None:
    """Label new text with a trained run: prints label, score and text per input."""
    from finetune.predict import format_prediction, load_inputs, predict_texts

    inputs = load_inputs(text or [], text_pair or [], file)
    for item in predict_texts(run_dir, inputs, batch_size=batch_size):
        typer.echo(format_prediction(item, as_json=json_output))


@app.command()
@user_errors
def smoke(
    output_dir: Annotated[Optional[Path], typer.Option(help="Keep the smoke run here. [default: a temp folder]")] = None,
) -> None:
    """Self-contained check, no network: build data and a tiny model, then train, evaluate and predict."""
    from finetune.smoke import run_smoke

    raise typer.Exit(run_smoke(output_dir))


def main() -> None:
    app()


if __name__ == "__main__":
    sys.exit(main())
