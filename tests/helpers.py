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


def checked_model_card(run_dir: Path):
    """The run's README.md parsed by huggingface_hub, after the checks every card must pass: the model-index holds
    exactly metrics.json's final evaluation numbers, `datasets` only Hub ids, and the usage snippet runs."""
    import contextlib
    import io
    import os

    from huggingface_hub import ModelCard

    card = ModelCard.load(run_dir / "README.md")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    reported = {result.metric_type: result.metric_value for result in card.data.eval_results or []}
    expected = {key.removeprefix("eval_"): value for key, value in metrics.items()
                if key.startswith("eval_") and isinstance(value, (int, float))
                and not key.endswith(("_runtime", "_per_second", "_samples", "_preparation_time", "_before_training"))}
    assert reported.keys() == expected.keys()
    assert all(abs(reported[key] - expected[key]) < 1e-6 for key in expected)
    for dataset in card.data.datasets or []:
        assert not os.path.exists(dataset) and "/" not in dataset.strip("/").split("/", 1)[-1]
    for result in card.data.eval_results or []:
        assert not os.path.isabs(result.dataset_type) and not os.path.exists(result.dataset_type)
    snippet = card.text.split("```python\n", 1)[1].split("```", 1)[0]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(snippet, "usage-snippet", "exec"), {})  # the card's own code, as a reader runs it
    assert printed.getvalue().strip()
    return card
