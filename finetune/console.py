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


# Read by huggingface_hub (and through it transformers: "Loading weights", "Writing model shards") and by datasets
# ("Generating train split", "Map") when they are imported.
PROGRESS_BAR_VARIABLES = ("HF_HUB_DISABLE_PROGRESS_BARS", "HF_DATASETS_DISABLE_PROGRESS_BARS")


def quiet_progress_bars() -> None:
    """Every library's progress bars off where no person watches (a log file, CI, --quiet). Cheap: sets environment
    variables before the libraries are imported (launched processes inherit them) and switches off the bars of
    those already imported."""
    if show_progress():
        return
    for variable in PROGRESS_BAR_VARIABLES:
        os.environ.setdefault(variable, "1")
    if "huggingface_hub" in sys.modules:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    if "transformers" in sys.modules:
        import transformers

        transformers.logging.disable_progress_bar()
    if "datasets" in sys.modules:
        import datasets

        datasets.disable_progress_bars()
