"""The Typer application shared by the command modules: global options and the user-error wrapper."""

from __future__ import annotations

import functools
from typing import Annotated, Any

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

# The metavar of on/off switches: empty, so help lists `--lora` rather than `--lora <bool>` (it takes no value).
SWITCH = ""


def switch(*names: str, **options: Any) -> Any:
    """typer.Option for an on/off flag."""
    return typer.Option(*names, metavar=SWITCH, **options)

OVERRIDES_HELP = "Recipe overrides as dotted key=value, for example train.epochs=1 data.max_length=64."


def _fail(message: str, code: int = 2) -> None:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    raise typer.Exit(code)


def user_errors(command):
    """Print a UserError as one line and exit 2; a traceback only with --debug."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from finetune.errors import TrainingInterrupted, UserError

        try:
            return command(*args, **kwargs)
        except UserError as error:
            if _state["debug"]:
                raise
            _fail(str(error), error.exit_code)
        except TrainingInterrupted as interrupted:
            typer.secho(str(interrupted), err=True, fg=typer.colors.YELLOW)
            raise typer.Exit(interrupted.exit_code) from None
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
    debug: Annotated[bool, switch("--debug", help="Show full tracebacks for errors.")] = False,
    quiet: Annotated[bool, switch("--quiet", "-q", help="Only warnings, errors and the final summary.")] = False,
    verbose: Annotated[bool, switch("--verbose", "-v", help="Also the libraries' informational logs.")] = False,
    version: Annotated[bool | None, switch("--version", callback=_version, is_eager=True,
                                                    help="Print the version and exit.")] = None,
) -> None:
    _state["debug"] = debug
    if quiet or verbose:
        import os

        from finetune.console import VERBOSITY_VARIABLE

        os.environ[VERBOSITY_VARIABLE] = "quiet" if quiet else "verbose"
    from finetune.console import quiet_progress_bars

    quiet_progress_bars()  # before any library is imported: their bars read environment variables at import


def load_task_recipe(path: Any, overrides: list[str] | None = None, **layers: Any) -> Any:
    """The recipe for a command, checked against the task registry (a known task, its default model)."""
    from finetune.config.loading import load_recipe
    from finetune.tasks import complete

    return complete(load_recipe(path, overrides, **layers))


Overrides = Annotated[list[str] | None, typer.Argument(help=OVERRIDES_HELP, show_default=False)]
