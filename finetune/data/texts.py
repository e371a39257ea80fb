"""Plain text out of a user's data files, whatever their layout: what `finetune tiny-model` trains a tokenizer on.

Every string in the file counts (all columns, nested translation pairs included), so the tokenizer knows the words
of both sides of a pair. No task knowledge: a column's role does not matter here.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from finetune.data.conll import CONLL_SUFFIXES, read_conll
from finetune.errors import UserError

_TABLES = {".csv", ".tsv", ".json", ".jsonl", ".parquet"}


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        if value.strip():
            yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _strings(item)


def _rows(path: Path) -> Iterator[Any]:
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        with path.open(encoding="utf-8", newline="") as handle:
            yield from csv.DictReader(handle, delimiter="\t" if suffix == ".tsv" else ",")
    elif suffix == ".jsonl" or (suffix == ".json" and not path.read_text(encoding="utf-8").lstrip().startswith("[")):
        with path.open(encoding="utf-8") as handle:
            yield from (json.loads(line) for line in handle if line.strip())
    elif suffix == ".json":
        yield from json.loads(path.read_text(encoding="utf-8"))
    elif suffix in CONLL_SUFFIXES:  # token classification: the words of each sentence, without their tags
        yield from (" ".join(tokens) for tokens in read_conll(path)["tokens"])
    elif suffix == ".parquet":
        import pyarrow.parquet as parquet

        yield from parquet.read_table(path).to_pylist()
    else:  # .txt, line-aligned translation files (train.en), anything else: one text per line
        with path.open(encoding="utf-8", errors="replace") as handle:
            yield from handle


def data_files(given: Path) -> list[Path]:
    """The files a --train-file value names: a file, the files of a folder, or a prefix (train -> train.en,
    train.de: line-aligned translation files)."""
    if given.is_file():
        return [given]
    if given.is_dir():
        return sorted(path for path in given.iterdir() if path.is_file() and not path.name.startswith("."))
    matches = sorted(given.parent.glob(given.name + ".*")) if given.parent.is_dir() else []
    if not matches:
        raise UserError(f"{given} not found (a file, a folder, or the prefix of line-aligned files such as "
                        f"train for train.en and train.de).")
    return matches


def texts_from_files(paths: list[Path], limit: int = 50_000) -> list[str]:
    """Up to `limit` non-empty strings from the files, in file order."""
    texts: list[str] = []
    for path in (file for given in paths for file in data_files(Path(given))):
        try:
            for row in _rows(path):
                texts.extend(text.rstrip("\n") for text in _strings(row))
                if len(texts) >= limit:
                    return texts[:limit]
        except (UnicodeDecodeError, json.JSONDecodeError, csv.Error) as error:
            raise UserError(f"Cannot read text from {path}: {error}") from error
    if not texts:
        raise UserError(f"No text found in {', '.join(str(path) for path in paths)}.")
    return texts
