"""PNG plots of a run from the Trainer's log history: loss and learning rate by step, eval metrics by epoch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

PLOTS_DIR = "plots"


def _series(history: list[dict[str, Any]], key: str, x: str = "step") -> tuple[list[float], list[float]]:
    points = [(entry[x], entry[key]) for entry in history if key in entry and x in entry]
    return [p[0] for p in points], [p[1] for p in points]


def _figure(path: Path, title: str, xlabel: str, lines: dict[str, tuple[list[float], list[float]]]) -> Path | None:
    lines = {label: xy for label, xy in lines.items() if xy[0]}
    if not lines:
        return None
    import matplotlib

    matplotlib.use("Agg")  # headless: no display needed
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 4), dpi=100)
    for label, (xs, ys) in lines.items():
        axes.plot(xs, ys, marker="o" if len(xs) < 30 else None, label=label)
    axes.set_title(title)
    axes.set_xlabel(xlabel)
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    return path


def write_plots(run_dir: Path, history: list[dict[str, Any]]) -> list[Path]:
    """plots/loss.png, plots/learning_rate.png and plots/eval_metrics.png (those with data to show)."""
    folder = run_dir / PLOTS_DIR
    eval_keys = sorted({key for entry in history for key in entry
                        if key.startswith("eval_") and not key.endswith(("_runtime", "_per_second"))
                        and isinstance(entry[key], (int, float))})
    written = [
        _figure(folder / "loss.png", "Loss", "step",
                {"train loss": _series(history, "loss"), "eval loss": _series(history, "eval_loss")}),
        _figure(folder / "learning_rate.png", "Learning rate", "step",
                {"learning rate": _series(history, "learning_rate")}),
        _figure(folder / "eval_metrics.png", "Evaluation metrics", "epoch",
                {key.removeprefix("eval_"): _series(history, key, x="epoch")
                 for key in eval_keys if key != "eval_loss"}),
    ]
    return [path for path in written if path is not None]
