"""Small helpers shared by the test modules: data files and the CLI in-process."""

from __future__ import annotations

import csv
import json
from pathlib import Path


def write_csv(path: Path, rows: list[dict]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def invoke(args: list) -> object:
    """The CLI in-process; module-scoped fixtures use this (they cannot use the function-scoped `cli` fixture)."""
    from typer.testing import CliRunner

    from finetune.cli import app

    return CliRunner().invoke(app, [str(arg) for arg in args], catch_exceptions=False)
