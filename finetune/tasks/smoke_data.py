"""Tiny datasets each task family learns in seconds with a tiny random model: what `finetune smoke` trains on.

Each is a toy language small enough that a 2-layer, width-32 model learns it in a few dozen steps on a CPU, so a
run that does not learn points at a broken pipeline, not at the model. The families point at these from their
`TaskFamily.smoke`; everything is written to the folder given, as a user's own files would be.
"""

from __future__ import annotations

import csv
import json
import math
import random
from pathlib import Path
from typing import Any

from finetune.tasks.base import SmokeCase

POSITIVE = ["good", "great", "wonderful", "gorgeous", "witty", "delightful", "moving", "brilliant", "fun", "superb"]
NEGATIVE = ["bad", "awful", "boring", "dull", "tedious", "clumsy", "bland", "terrible", "weak", "lifeless"]
FILLER = ["a", "the", "film", "movie", "story", "plot", "acting", "was", "is", "really", "quite", "very", "and",
          "script", "cast", "ending", "this", "that", "with", "its"]
REQUIRED_ACCURACY = 0.8

SUBJECTS = ["the cat", "the dog", "a bird", "my sister", "the old man", "a child", "the farmer", "our teacher"]
VERBS = ["sees", "likes", "finds", "paints", "follows", "feeds"]
OBJECTS = ["a red ball", "the green door", "two small fish", "the tall tree", "a yellow kite", "the blue house"]
WORDS = ["red", "blue", "green", "cat", "dog", "bird", "sun", "moon", "tree", "fish"]

# Shared by every case: small batches (more steps from little data), a high learning rate (random weights).
_SCHEDULE = {"batch_size": 16, "learning_rate": 3e-3, "seed": 0}


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


def make_sentences(count: int, seed: int) -> list[str]:
    """Random subject-verb-object sentences: a language small enough to learn in a minute."""
    generator = random.Random(seed)
    return [f"{generator.choice(SUBJECTS)} {generator.choice(VERBS)} {generator.choice(OBJECTS)} ."
            for _ in range(count)]


def make_reversal_rows(count: int, seed: int) -> list[dict[str, str]]:
    """3-5 words from a 10-word vocabulary ("en") and the same words in reverse order ("de")."""
    generator = random.Random(seed)
    rows = []
    for _ in range(count):
        words = [generator.choice(WORDS) for _ in range(generator.randint(3, 5))]
        rows.append({"en": " ".join(words), "de": " ".join(reversed(words))})
    return rows


def make_summary_rows(count: int, seed: int) -> list[dict[str, str]]:
    """Three toy sentences; the summary is the first one."""
    sentences = make_sentences(3 * count, seed)
    return [{"document": " ".join(sentences[3 * i:3 * i + 3]), "summary": sentences[3 * i]} for i in range(count)]


def write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_jsonl(path: Path, rows: list[dict[str, str]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def _files(train: Path, validation: Path) -> dict[str, str]:
    return {"train_file": str(train), "validation_file": str(validation)}


# ---- one case per family --------------------------------------------------------------------------------------


def classification(folder: Path) -> SmokeCase:
    train, validation = make_sentiment_rows(320, seed=0), make_sentiment_rows(100, seed=1)
    files = _files(write_csv(folder / "train.csv", train), write_csv(folder / "validation.csv", validation))

    def check(metrics: dict[str, Any], records: list[dict[str, Any]]) -> str | None:
        labels = [record["label"] for record in records]
        if metrics["eval_accuracy"] < REQUIRED_ACCURACY or labels != ["positive", "negative"]:
            return f"accuracy {metrics['eval_accuracy']:.3f} < {REQUIRED_ACCURACY} or example labels {labels}"
        return None

    return SmokeCase(settings={"data": {**files, "max_length": 32}, "train": {"epochs": 4, **_SCHEDULE}},
                     texts=[row["text"] for row in train],
                     inputs=[("a gorgeous , witty film", None), ("the plot was dull and the acting awful", None)],
                     metric="eval_accuracy", check=check)


def _texts_out(records: list[dict[str, Any]]) -> str | None:
    empty = [record for record in records if not str(record.get("output", "")).strip()]
    return f"empty output for {empty[0]}" if empty else None


def summarization(folder: Path) -> SmokeCase:
    train, validation = make_summary_rows(240, seed=0), make_summary_rows(24, seed=1)
    files = _files(write_jsonl(folder / "train.jsonl", train), write_jsonl(folder / "validation.jsonl", validation))
    return SmokeCase(settings={"data": {**files, "max_length": 48, "max_target_length": 16},
                               "train": {"epochs": 4, **_SCHEDULE}, "generation": {"max_new_tokens": 12}},
                     texts=[row["document"] for row in train] + ["summarize:"] * 10,
                     inputs=[(validation[0]["document"], None)], metric="eval_rougeL",
                     check=lambda metrics, records: _texts_out(records))


def translation(folder: Path) -> SmokeCase:
    train, validation = make_reversal_rows(320, seed=0), make_reversal_rows(32, seed=1)
    files = _files(write_jsonl(folder / "train.jsonl", train), write_jsonl(folder / "validation.jsonl", validation))
    return SmokeCase(settings={"data": {**files, "source_lang": "en", "target_lang": "de", "max_length": 32,
                                        "max_target_length": 16},
                               "train": {"epochs": 4, **_SCHEDULE}, "generation": {"max_new_tokens": 8}},
                     texts=[" ".join(WORDS), "translate English to German:"] * 20,
                     inputs=[("red cat sun", None)], metric="eval_bleu",
                     check=lambda metrics, records: _texts_out(records))


def generation(folder: Path) -> SmokeCase:
    train, validation = make_sentences(600, seed=0), make_sentences(60, seed=1)
    (folder / "train.txt").write_text("\n".join(train) + "\n", encoding="utf-8")
    (folder / "validation.txt").write_text("\n".join(validation) + "\n", encoding="utf-8")

    def check(metrics: dict[str, Any], records: list[dict[str, Any]]) -> str | None:
        before, after = metrics["eval_perplexity_before_training"], metrics["eval_perplexity"]
        if not (math.isfinite(after) and after < before / 2):
            return f"perplexity {before:.1f} -> {after:.1f}: did not halve"
        return _texts_out(records)

    return SmokeCase(settings={"data": {**_files(folder / "train.txt", folder / "validation.txt"),
                                        "max_length": 32},
                               "train": {"epochs": 3, **_SCHEDULE},
                               "generation": {"max_new_tokens": 8, "num_samples": 1}},
                     texts=train, inputs=[("the cat", None)], metric="eval_perplexity", check=check)
