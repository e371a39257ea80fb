"""How much the toolkit prints: --quiet / --verbose, and progress bars only where a person watches."""

from __future__ import annotations

import os
import sys

VERBOSITY_VARIABLE = "FINETUNE_VERBOSITY"  # an environment variable, so launched processes inherit it


def verbosity() -> str:
    """quiet, normal or verbose: set by the CLI's --quiet/--verbose, inherited by launched processes."""
    return os.environ.get(VERBOSITY_VARIABLE, "normal")


def show_progress() -> bool:
    """Progress bars only where a person watches; CI logs stay readable."""
    return sys.stderr.isatty() and verbosity() != "quiet"
