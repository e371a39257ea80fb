"""Data sources: local files of every supported format, folders of split files, and fast failures."""

from __future__ import annotations

import json
import time

import pandas as pd
import pytest

from finetune.config.schema import DataSection
from finetune.data.sources import load_data, split_dataset_id
from finetune.errors import UserError

ROWS = [{"text": f"sentence {i}", "label": "positive" if i % 2 else "negative"} for i in range(10)]


def write(path, rows=ROWS):
    frame = pd.DataFrame(rows)
    suffix = path.suffix
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    elif suffix == ".tsv":
        frame.to_csv(path, index=False, sep="\t")
    elif suffix == ".jsonl":
        path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    elif suffix == ".json":
        frame.to_json(path, orient="records", lines=True)
    elif suffix == ".parquet":
        frame.to_parquet(path)
    return path


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl", ".json", ".parquet"])
def test_local_files_of_every_format(tmp_path, suffix):
    train = write(tmp_path / f"train{suffix}")
    validation = write(tmp_path / f"dev{suffix}", ROWS[:4])
    loaded = load_data(DataSection(train_file=str(train), validation_file=str(validation)))
    assert len(loaded.train) == 10 and len(loaded.eval["validation"]) == 4
    assert loaded.train[3] == {"text": "sentence 3", "label": "positive"}


def test_folder_of_split_files(tmp_path):
    write(tmp_path / "train.csv")
    write(tmp_path / "dev.csv", ROWS[:3])
    write(tmp_path / "test.csv", ROWS[:2])
    loaded = load_data(DataSection(dataset=str(tmp_path), test_split="test", max_train_samples=5))
    assert len(loaded.train) == 5 and len(loaded.eval["validation"]) == 3 and len(loaded.test["test"]) == 2


def test_missing_and_unsupported_files(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_data(DataSection(train_file=str(tmp_path / "missing.csv")))
    (tmp_path / "train.xlsx").write_bytes(b"PK")
    with pytest.raises(UserError, match="unsupported file type"):
        load_data(DataSection(train_file=str(tmp_path / "train.xlsx")))
    with pytest.raises(UserError, match="No data given"):
        load_data(DataSection())


def test_empty_folder_names_what_it_expected(tmp_path):
    with pytest.raises(UserError, match="train.csv"):
        load_data(DataSection(dataset=str(tmp_path)))


def test_unknown_split_name_lists_the_splits(tmp_path):
    write(tmp_path / "train.csv")
    with pytest.raises(UserError, match="Splits: train"):
        load_data(DataSection(dataset=str(tmp_path), eval_split="validaton"))


def test_hub_dataset_fails_fast_offline():
    started = time.perf_counter()
    with pytest.raises(UserError, match="local"):
        load_data(DataSection(dataset="nobody/no-such-dataset"))
    assert time.perf_counter() - started < 30


def test_dataset_id_with_inline_config():
    assert split_dataset_id("nyu-mll/glue:sst2", None) == ("nyu-mll/glue", "sst2")
    assert split_dataset_id("imdb", None) == ("imdb", None)
    assert split_dataset_id("x/y:a", "b") == ("x/y", "b")


def test_glue_from_the_data_folder(data_dir):
    # MNLI has no train split in the data folder; a dev split stands in for it.
    loaded = load_data(DataSection(dataset="glue/mnli", data_dir=str(data_dir), train_split="validation_matched"))
    assert set(loaded.eval) == {"validation_matched", "validation_mismatched"}
    assert loaded.glue_task.name == "mnli"
