"""The one exception type a user sees without a traceback.

Anything the user can fix (a bad recipe, a missing file, an unknown column, a model that does not exist) raises
`UserError`; the CLI prints its message and exits with code 2. Everything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class UserError(Exception):
    """A problem in the user's input, with a message that names the fix."""

    exit_code = 2


class TrainingInterrupted(Exception):
    """Ctrl-C during training: a checkpoint was saved and the run can be resumed."""

    exit_code = 130

    def __init__(self, run_dir, step: int) -> None:
        super().__init__(f"Interrupted at step {step}; saved {run_dir}/checkpoint-{step}. Resume with:\n"
                         f"  finetune train {run_dir}/recipe.yaml --resume")


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """' Did you mean 'x'?' for the closest choice, or '' when nothing is close."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" Did you mean '{close[0]}'?" if close else ""


PREVIEW_CHARS = 200


def preview(value: object, limit: int = PREVIEW_CHARS) -> str:
    """repr(value) cut to about `limit` characters: an error message never quotes a whole (hostile) value.

    reprlib bounds the work too: a list of a million items is not rendered first and cut afterwards."""
    import reprlib

    shortener = reprlib.Repr()
    shortener.maxstring = shortener.maxother = limit
    shortener.maxlist = shortener.maxtuple = shortener.maxdict = shortener.maxset = 10
    shortener.maxlevel = 3
    return shorten(shortener.repr(value), limit)


def shorten(text: str, limit: int = PREVIEW_CHARS) -> str:
    """`text` (a message of our own, not a value: no quotes) cut to about `limit` characters."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"
