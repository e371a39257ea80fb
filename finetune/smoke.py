"""`finetune smoke`: prove the install works end to end with no network, in the spirit of `accelerate test`.

It writes a small labelled sentiment dataset, builds a tiny random BERT and its tokenizer offline, then goes
through the same code path as `finetune classify`: train, evaluate, save, reload and predict. It fails (exit 1)
when the model does not learn the task, which is easy enough that a working pipeline always does.
"""

from __future__ import annotations

import csv
import os
import random
import tempfile
from pathlib import Path

import typer

POSITIVE = ["good", "great", "wonderful", "gorgeous", "witty", "delightful", "moving", "brilliant", "fun", "superb"]
NEGATIVE = ["bad", "awful", "boring", "dull", "tedious", "clumsy", "bland", "terrible", "weak", "lifeless"]
FILLER = ["a", "the", "film", "movie", "story", "plot", "acting", "was", "is", "really", "quite", "very", "and",
          "script", "cast", "ending", "this", "that", "with", "its"]
REQUIRED_ACCURACY = 0.8


def make_sentiment_rows(count: int, seed: int) -> list[dict[str, str]]:
    """Sentences of filler words around one or two sentiment words; the label is their polarity."""
    generator = random.Random(seed)
    rows = []
    for _ in range(count):
        positive = generator.random() < 0.5
        words = generator.sample(FILLER, k=generator.randint(3, 8))
        for _ in range(generator.randint(1, 2)):
            words.insert(generator.randrange(len(words) + 1), generator.choice(POSITIVE if positive else NEGATIVE))
        rows.append({"text": " ".join(words), "label": "positive" if positive else "negative"})
    return rows


def _write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["text", "label"])
        writer.writeheader()
        writer.writerows(rows)
    return path


def run_smoke(output_dir: Path | None = None) -> int:
    """Returns the exit code: 0 when the tiny model learned the task and predictions reload, else 1."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing here needs the Hub
    work = Path(output_dir) if output_dir else Path(tempfile.mkdtemp(prefix="finetune-smoke-"))
    work.mkdir(parents=True, exist_ok=True)
    typer.echo(f"smoke run in {work}")

    train_rows, eval_rows = make_sentiment_rows(600, seed=0), make_sentiment_rows(200, seed=1)
    train_file = _write_csv(work / "train.csv", train_rows)
    eval_file = _write_csv(work / "validation.csv", eval_rows)
    typer.echo(f"1/4 data: {len(train_rows)} training and {len(eval_rows)} evaluation sentences")

    from finetune.testing import build_tiny_bert

    model_dir = build_tiny_bert(work / "tiny-bert", (row["text"] for row in train_rows))
    typer.echo(f"2/4 model: tiny random BERT (2 layers, width 32) in {model_dir}")

    from finetune.predict import predict_texts
    from finetune.recipe import load_recipe
    from finetune.train import run

    recipe = load_recipe(base={"task": "classification"}, flags={
        "model": {"name": str(model_dir)},
        "data": {"train_file": str(train_file), "validation_file": str(eval_file), "max_length": 32},
        "train": {"epochs": 4, "learning_rate": 3e-3, "batch_size": 16, "logging_steps": 20},
        "output_dir": str(work / "run"),
    })
    result = run(recipe, overwrite=True)
    accuracy = result.metrics["eval_accuracy"]
    typer.echo(f"3/4 train + evaluate: eval_accuracy {accuracy:.3f} (chance 0.5) "
               f"in {result.metrics['train_runtime']:.1f} s")

    examples = [("a gorgeous , witty film", None), ("the plot was dull and the acting awful", None)]
    predictions = predict_texts(result.run_dir, examples)
    for prediction in predictions:
        typer.echo(f"      {prediction.label:<9} {prediction.score:.3f}  {prediction.text}")
    typer.echo(f"4/4 predict: reloaded {result.run_dir} and labelled {len(predictions)} sentences")

    learned = accuracy >= REQUIRED_ACCURACY and [p.label for p in predictions] == ["positive", "negative"]
    if learned:
        typer.echo("smoke run passed: train -> evaluate -> save -> reload -> predict all work.")
        return 0
    typer.secho(f"smoke run FAILED: accuracy {accuracy:.3f} < {REQUIRED_ACCURACY} or wrong example labels.",
                fg=typer.colors.RED, err=True)
    return 1
