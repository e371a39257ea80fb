"""`data.column_names` beyond csv/tsv: JSON, jsonl and parquet columns are renamed in order (one recipe for a
headerless TSV and a JSON or parquet copy), and a mismatch is a clear error, never silently ignored."""

from __future__ import annotations

import pytest

from finetune.config.schema import DataSection
from finetune.data.sources import load_data
from finetune.errors import UserError
from tests.helpers import write_jsonl

ROWS = [{"body": "a good film", "tags": "0,2", "key": "a"}, {"body": "a dull film", "tags": "1", "key": "b"}]


def test_the_same_names_read_a_headerless_tsv_and_a_parquet_copy_alike(tmp_path):
    import pandas as pd

    tsv = tmp_path / "train.tsv"
    tsv.write_text("".join(f"{row['body']}\t{row['tags']}\t{row['key']}\n" for row in ROWS), encoding="utf-8")
    parquet = tmp_path / "train.parquet"
    pd.DataFrame(ROWS).to_parquet(parquet)
    names = ["text", "labels", "id"]
    from_tsv = load_data(DataSection(train_file=str(tsv), column_names=names, multi_label=True)).train
    from_parquet = load_data(DataSection(train_file=str(parquet), column_names=names, multi_label=True)).train
    assert from_tsv is not None and from_parquet is not None
    assert from_tsv.column_names == from_parquet.column_names == names
    assert from_tsv.to_list() == from_parquet.to_list() == [
        {"text": "a good film", "labels": "0,2", "id": "a"}, {"text": "a dull film", "labels": "1", "id": "b"}]


def test_json_columns_renamed_for_a_run(cli, tmp_path, tiny_bert):
    rows = [{"body": row["body"], "verdict": "positive" if "good" in row["body"] else "negative"}
            for row in ROWS * 4]
    train = write_jsonl(tmp_path / "train.jsonl", rows)
    result = cli(["classify", "--model", tiny_bert, "--train-file", train, "--validation-file", train,
                  "--column-names", "text,label", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "text columns" in result.output and "negative 4 (50%), positive 4 (50%)" in result.output


def test_a_wrong_count_is_refused_naming_the_columns(cli, tmp_path, tiny_bert):
    train = write_jsonl(tmp_path / "train.jsonl", ROWS)
    result = cli(["classify", "--model", tiny_bert, "--train-file", train, "--column-names", "text,labels",
                  "--dry-run"])
    assert result.exit_code == 2
    assert ("data.column_names gives 2 names (text, labels) but the training data" in result.output
            and "has 3 columns (body, tags, key)" in result.output)


def test_a_rename_that_would_swap_columns_is_refused(tmp_path):
    train = write_jsonl(tmp_path / "train.jsonl", [{"label": "positive", "sentence": "a good film"}])
    with pytest.raises(UserError, match="'label' is already its column 1"):
        load_data(DataSection(train_file=str(train), column_names=["text", "label"]))


def test_names_the_data_already_has_change_nothing(tmp_path):
    train = write_jsonl(tmp_path / "train.jsonl", [{"label": "positive", "text": "a good film"}])
    loaded = load_data(DataSection(train_file=str(train), column_names=["text", "label"]))
    assert loaded.train is not None and loaded.train.to_list() == [{"label": "positive", "text": "a good film"}]


def test_glue_data_refuses_column_names():
    from finetune.data.columns import apply_column_names
    from finetune.data.glue import get_glue_task
    from finetune.data.sources import LoadedData

    with pytest.raises(UserError, match="does not apply to GLUE data"):
        apply_column_names(LoadedData(train=None, glue_task=get_glue_task("sst2")), ["text", "label"])


def test_a_refused_rename_writes_no_run_folder(cli, tmp_path, tiny_bert):
    train = write_jsonl(tmp_path / "train.jsonl", ROWS)
    before = sorted(path.name for path in tmp_path.iterdir())
    result = cli(["classify", "--model", tiny_bert, "--train-file", train, "--column-names", "text,labels",
                  "--output-dir", str(tmp_path / "run")])
    assert result.exit_code == 2, result.output
    assert "data.column_names gives 2 names" in result.output
    assert sorted(path.name for path in tmp_path.iterdir()) == before  # no run folder, nothing else written
