"""Tables of evaluation results: the terminal table, leaderboards (Markdown + CSV) and metric-by-step plots.

Everything here works on plain rows (lists of dicts), so it is cheap to import and easy to test.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from finetune.outputs.files import write_text_atomic
from finetune.tasks.metrics import higher_is_better


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4f}"
    return str(value)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub Markdown table, columns padded so it also reads well in a terminal; numbers right-aligned."""
    cells = [[_cell(value) for value in row] for row in rows]
    widths = [max([len(header), *(len(row[i]) for row in cells)]) for i, header in enumerate(headers)]
    numeric = [bool(rows) and all(isinstance(row[i], (int, float)) or row[i] is None for row in rows)
               for i in range(len(headers))]

    def line(values: Sequence[str]) -> str:
        padded = [value.rjust(width) if right else value.ljust(width)
                  for value, width, right in zip(values, widths, numeric)]
        return "| " + " | ".join(padded) + " |"

    rule = "|" + "|".join(("-" * (width + 1) + ":") if right else ("-" * (width + 2))
                          for width, right in zip(widths, numeric)) + "|"
    return "\n".join([line(list(headers)), rule, *(line(row) for row in cells)]) + "\n"


def csv_text(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(headers)
    writer.writerows([["" if value is None else value for value in row] for row in rows])
    return buffer.getvalue()


def write_tables(stem: Path, headers: Sequence[str], rows: Sequence[Sequence[Any]], title: str = "") -> list[Path]:
    """`stem`.md and `stem`.csv with the same table; returns both paths."""
    markdown = (f"# {title}\n\n" if title else "") + markdown_table(headers, rows)
    paths = [stem.with_name(stem.name + ".md"), stem.with_name(stem.name + ".csv")]
    write_text_atomic(paths[0], markdown)
    write_text_atomic(paths[1], csv_text(headers, rows))
    return paths


def metric_columns(rows: Sequence[dict[str, Any]], first: Sequence[str] = ()) -> list[str]:
    """Metric names across rows, in first-seen order, `first` leading."""
    names = [name for name in dict.fromkeys(first) if any(name in row for row in rows)]
    for row in rows:
        names += [name for name in row if name not in names]
    return names


def ranked(rows: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    """Rows sorted best first by `key` (descending unless lower is better); rows without it go last."""
    direction = 1 if higher_is_better(key) else -1
    present = [row for row in rows if isinstance(row.get(key), (int, float)) and not math.isnan(row[key])]
    absent = [row for row in rows if row not in present]
    return sorted(present, key=lambda row: -direction * row[key]) + absent


def leaderboard(rows: list[dict[str, Any]], key: str, label_columns: Sequence[str],
                metric_order: Sequence[str] = ()) -> tuple[list[str], list[list[Any]]]:
    """(headers, rows) ranked by `key`: rank, the label columns, then every metric (key first)."""
    ordered = ranked(rows, key)
    metrics = metric_columns([{k: v for k, v in row.items() if k not in label_columns} for row in ordered],
                             [key, *metric_order])
    headers = ["rank", *label_columns, *metrics]
    table = [[index + 1, *(row.get(column) for column in label_columns), *(row.get(name) for name in metrics)]
             for index, row in enumerate(ordered)]
    return headers, table


def plot_by_step(path: Path, steps: list[int], series: dict[str, list[float | None]], title: str) -> Path:
    """One small panel per metric against the training step, written as a PNG (matplotlib, headless)."""
    import matplotlib

    matplotlib.use("Agg")  # no display needed; must come before pyplot
    import matplotlib.pyplot as plt

    names = list(series)
    figure, axes = plt.subplots(len(names), 1, figsize=(6, 2.2 * len(names) + 0.6), sharex=True, squeeze=False)
    for axis, name in zip(axes[:, 0], names):
        points = [(step, value) for step, value in zip(steps, series[name]) if value is not None]
        axis.plot([p[0] for p in points], [p[1] for p in points], marker="o")
        axis.set_ylabel(name)
        axis.grid(True, alpha=0.3)
    axes[-1, 0].set_xlabel("step")
    figure.suptitle(title)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
