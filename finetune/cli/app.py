"""The Typer application shared by the command modules: global options and the user-error wrapper."""

from __future__ import annotations

import errno
import functools
import pickle
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
        except (OSError, RecursionError, MemoryError, pickle.UnpicklingError) as error:
            if _state["debug"]:
                raise
            message, code = fault_message(error)
            _fail(message, code)
        except Exception as error:
            # safetensors' error type lives in its Rust extension; match it by name rather than import it here.
            if _state["debug"] or type(error).__name__ != "SafetensorError":
                raise
            _fail(f"cannot read a .safetensors file ({str(error)[:200]}): it is corrupt or truncated. Copy or "
                  f"download it again.", 2)

    return wrapper


# Faults of the machine, not of the input: exit 1. Every other OSError a user can cause is bad input: exit 2.
_ENVIRONMENT_FAULTS = {errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.ENOMEM, errno.EMFILE, errno.ENFILE}
_HINTS = {errno.ENOSPC: "the disk is full: free some space or choose another --output-dir",
          errno.EDQUOT: "the disk quota is used up: free some space or choose another --output-dir",
          errno.EROFS: "the file system is read-only: choose a writable --output-dir",
          errno.EACCES: "permission denied: choose a folder you can write, or fix its permissions",
          errno.EPERM: "operation not permitted: choose a folder you can write",
          errno.ENOTDIR: "a part of the path is a file, not a folder",
          errno.EISDIR: "a folder is where a file was expected",
          errno.ENAMETOOLONG: "the path is too long",
          errno.ELOOP: "too many symbolic links in the path"}


def fault_message(error: BaseException) -> tuple[str, int]:
    """One line and an exit code for the faults a user can cause (files, disks, recursion, pickles)."""
    if isinstance(error, RecursionError):
        return "the input nests too deeply to process (recursion limit). Simplify it.", 2
    if isinstance(error, MemoryError):
        return "out of memory. Use a smaller batch size, model or input.", 1
    if isinstance(error, pickle.UnpicklingError):
        return (f"refused to load a pickle file ({str(error).splitlines()[0][:200] if str(error) else 'unsafe'}): "
                f"finetune loads weights only from .safetensors. Convert the checkpoint to safetensors."), 2
    assert isinstance(error, OSError)
    where = f" ({error.filename})" if getattr(error, "filename", None) else ""
    hint = _HINTS.get(error.errno or -1)
    reason = error.strerror or (str(error).splitlines()[0][:200] if str(error).strip() else type(error).__name__)
    text = f"{reason}{where}: {hint}." if hint else f"{reason}{where}."
    return text, 1 if error.errno in _ENVIRONMENT_FAULTS else 2


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
