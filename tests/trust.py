"""Helpers for the trust tests: a folder's fingerprint, one-line errors, a finished tiny run to protect."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from tests.helpers import invoke, write_csv

QUICK = ["--max-steps", "2", "--batch-size", "8", "--max-length", "16", "train.eval_strategy=no",
         "train.logging_steps=1"]


def fingerprint(folder: Path) -> dict[str, str]:
    """Every entry under `folder` (links not followed) with its content hash: equal before and after = untouched."""
    prints: dict[str, str] = {}
    if not Path(folder).exists():
        return prints
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = Path(root) / name
            key = str(path.relative_to(folder))
            if path.is_symlink():
                prints[key] = f"link:{os.readlink(path)}"
            elif path.is_dir():
                prints[key] = "dir"
            else:
                prints[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return prints


def one_line_error(result, code: int = 2) -> str:
    """The single `error:` line of a failed command, after checking the exit code and that no traceback shows."""
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.output
    following = result.output.split(errors[0], 1)[1].strip()
    assert not following, f"more after the error line: {following[:300]}"
    assert len(errors[0]) < 600, errors[0][:300]
    return errors[0]


def finished_run(folder: Path, model: Path, rows: list[dict]) -> Path:
    """A small finished classification run in folder/run (data in folder/train.csv)."""
    folder.mkdir(parents=True, exist_ok=True)
    train = write_csv(folder / "train.csv", rows)
    result = invoke(["classify", "--model", model, "--train-file", train, "--output-dir", folder / "run", *QUICK])
    assert result.exit_code == 0, result.output
    return folder / "run"
