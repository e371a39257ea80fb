"""The CLI starts without importing the heavy libraries (they cost seconds)."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("torch", "transformers", "datasets", "evaluate", "accelerate", "peft", "sklearn")


def test_importing_the_cli_imports_no_heavy_library():
    code = ("import sys, finetune, finetune.cli; "
            f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == ""


def test_help_lists_the_commands():
    result = subprocess.run([sys.executable, "-m", "finetune", "--help"], capture_output=True, text=True, check=True)
    for command in ("classify", "summarize", "translate", "generate", "train", "predict", "recipes", "smoke"):
        assert command in result.stdout
