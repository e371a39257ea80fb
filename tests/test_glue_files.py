"""GLUE task table and GLUE file loading, checked against the real GLUE files in the shared data folder.

The expected numbers come from the files themselves and match the published GLUE statistics (see the data folder's
README.md). Tests that need the data are skipped when the folder is missing; the table tests always run.
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from finetune.data.glue import GLUE_TASKS, get_glue_task
from finetune.data.glue_files import available_glue_splits, find_glue_split, load_glue_split
from finetune.errors import UserError
from tests.conftest import DATA_DIR, requires_data  # per test, so that the task-table tests run without the data


def load(task_name: str, split: str, data_dir: Path | None = None):
    return load_glue_split(get_glue_task(task_name), data_dir or DATA_DIR, split)


def label_counts(dataset) -> Counter:
    return Counter(dataset["label"])


# --- The task table (no data needed) -----------------------------------------------------------------------------


def test_table_has_the_nine_glue_tasks_and_ax():
    assert list(GLUE_TASKS) == ["cola", "sst2", "mrpc", "qqp", "stsb", "mnli", "qnli", "rte", "wnli", "ax"]


def test_label_orders_follow_hf_classlabel():
    assert GLUE_TASKS["cola"].label_names == ("unacceptable", "acceptable")
    assert GLUE_TASKS["mnli"].label_names == ("entailment", "neutral", "contradiction")
    assert GLUE_TASKS["ax"].label_names == GLUE_TASKS["mnli"].label_names
    assert GLUE_TASKS["rte"].label_names == ("entailment", "not_entailment")
    assert GLUE_TASKS["wnli"].label_names == ("not_entailment", "entailment")  # reversed w.r.t. RTE


def test_regression_and_metrics():
    stsb = GLUE_TASKS["stsb"]
    assert stsb.is_regression and stsb.num_labels == 1 and stsb.label_names is None
    assert stsb.metrics == ("pearson", "spearmanr") and stsb.main_metric == "pearson"
    assert GLUE_TASKS["mrpc"].main_metric == "f1"
    assert GLUE_TASKS["cola"].main_metric == "matthews_correlation"
    assert GLUE_TASKS["mnli"].num_labels == 3 and not GLUE_TASKS["mnli"].is_regression
    assert all(task.main_metric == task.metrics[0] for task in GLUE_TASKS.values())


def test_split_names():
    mnli, ax = GLUE_TASKS["mnli"], GLUE_TASKS["ax"]
    assert mnli.eval_splits == ("validation_matched", "validation_mismatched")
    assert mnli.test_splits == ("test_matched", "test_mismatched")
    assert ax.eval_splits == () and ax.test_splits == ("test",)
    assert GLUE_TASKS["sst2"].splits == ("train", "validation", "test")


@pytest.mark.parametrize(
    ("alias", "name"),
    [("SST-2", "sst2"), ("sst-2", "sst2"), ("sts-b", "stsb"), ("STS-B", "stsb"), ("CoLA", "cola"),
     ("QNLI", "qnli"), ("diagnostic", "ax"), ("MNLI", "mnli")],
)
def test_get_glue_task_accepts_aliases(alias, name):
    assert get_glue_task(alias) is GLUE_TASKS[name]


def test_unknown_task_suggests_the_closest():
    with pytest.raises(UserError, match="Did you mean 'sst2'") as info:
        get_glue_task("sst3")
    assert "cola, sst2" in str(info.value)  # lists the valid names


def test_modules_import_no_heavy_libraries():
    code = (
        "import sys, finetune.data.glue, finetune.data.glue_files; "
        "heavy = {'torch', 'transformers', 'datasets', 'pandas', 'pyarrow'} & set(sys.modules); "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1])


# --- Errors that need no real data -------------------------------------------------------------------------------


def test_missing_data_dir_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_glue_split(GLUE_TASKS["sst2"], tmp_path / "nope", "validation")


def test_unknown_split_name_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="Did you mean 'validation_matched'"):
        load_glue_split(GLUE_TASKS["mnli"], tmp_path, "validation")


def test_unknown_label_names_file_line_and_allowed_labels(tmp_path):
    rte = tmp_path / "RTE"
    rte.mkdir()
    (rte / "dev.tsv").write_text("index\tsentence1\tsentence2\tlabel\n0\ta\tb\tentailment\n1\tc\td\tmaybe\n")
    with pytest.raises(UserError) as info:
        load_glue_split(GLUE_TASKS["rte"], tmp_path, "validation")
    message = str(info.value)
    assert str(rte / "dev.tsv") in message and "line 3" in message and "'maybe'" in message
    assert "entailment, not_entailment" in message


def test_headerless_file_of_a_headed_task_is_a_user_error(tmp_path):
    (tmp_path / "SST-2").mkdir()
    (tmp_path / "SST-2" / "dev.tsv").write_text("a fine film\t1\n")
    with pytest.raises(UserError, match="not a SST-2 header"):
        load_glue_split(GLUE_TASKS["sst2"], tmp_path, "validation")


# --- Real GLUE files ---------------------------------------------------------------------------------------------


@requires_data
def test_sst2_dev():
    dev = load("sst2", "validation")
    assert dev.column_names == ["sentence", "label", "idx"]
    assert len(dev) == 872
    assert label_counts(dev) == {1: 444, 0: 428}
    assert dev["idx"] == list(range(872))
    assert dev[0]["sentence"] == "it 's a charming and often affecting journey . "  # GLUE's trailing space kept


@requires_data
def test_sst2_train_exists_only_as_tsv():
    train = load("sst2", "train")
    assert len(train) == 67_349
    assert label_counts(train) == {1: 37_569, 0: 29_780}


@requires_data
def test_mrpc_dev_with_bom_header():
    dev = load("mrpc", "validation")
    assert dev.column_names == ["sentence1", "sentence2", "label", "idx"]
    assert len(dev) == 408
    assert label_counts(dev) == {1: 279, 0: 129}
    # Bare quotes are text, not CSV quoting.
    assert dev[0]["sentence2"] == '"The foodservice pie business does not fit our long-term growth strategy.'


@requires_data
def test_cola_headerless_train_and_dev():
    dev = load("cola", "validation")
    assert len(dev) == 1_043
    assert label_counts(dev) == {1: 721, 0: 322}
    assert dev[0]["sentence"] == "The sailors rode the breeze clear of the rocks."
    assert len(load("cola", "train")) == 8_551


@requires_data
def test_stsb_dev_scores():
    dev = load("stsb", "validation")
    assert len(dev) == 1_500
    assert dev.features["label"].dtype == "float32"
    assert all(0.0 <= score <= 5.0 for score in dev["label"])
    assert dev[0]["label"] == 5.0 and dev[1]["label"] == 4.75


@requires_data
def test_rte_dev_string_labels():
    dev = load("rte", "validation")
    assert len(dev) == 277
    assert label_counts(dev) == {0: 146, 1: 131}  # 0 = entailment


@requires_data
def test_wnli_dev_numeric_labels():
    dev = load("wnli", "validation")
    assert len(dev) == 71
    assert label_counts(dev) == {0: 40, 1: 31}  # 1 = entailment


@requires_data
def test_qnli_validation():
    dev = load("qnli", "validation")
    assert dev.column_names == ["question", "sentence", "label", "idx"]
    assert len(dev) == 5_463
    assert label_counts(dev) == {0: 2_702, 1: 2_761}


@requires_data
def test_mnli_headerless_samples():
    matched = load("mnli", "validation_matched")
    assert matched.column_names == ["premise", "hypothesis", "label", "idx"]
    assert len(matched) == 1_000
    assert label_counts(matched) == {0: 373, 1: 311, 2: 316}
    assert label_counts(load("mnli", "validation_mismatched")) == {0: 346, 1: 319, 2: 335}


@requires_data
def test_qqp_train_subset_skips_its_broken_first_line():
    # Line 1 of train_subset_23497.tsv has a space instead of a tab before its label, so it is dropped with a
    # warning: 23,496 rows, the count (and 14,749 / 8,747 label split) a GLUE-style reader gets.
    with pytest.warns(UserWarning, match=r"skipped 1 row.*line\(s\) 1\)"):
        train = load("qqp", "train")
    assert len(train) == 23_496
    assert label_counts(train) == {0: 14_749, 1: 8_747}
    assert train[0]["question1"] == "What causes stool color to change to yellow?"


@requires_data
def test_qqp_dev_fixture_with_crlf_line_ends():
    dev = load("qqp", "validation")
    assert len(dev) == 9
    assert not any(text.endswith("\r") for text in dev["question2"])


@requires_data
@pytest.mark.parametrize("name", ["cola", "sst2", "mrpc", "stsb", "qnli", "rte", "wnli", "ax"])
def test_test_splits_are_unlabelled(name):
    task = GLUE_TASKS[name]
    assert task.test_splits == ("test",)
    test = load(name, "test")
    assert len(test) > 0 and set(test["label"]) == {-1}


@requires_data
@pytest.mark.parametrize("name", ["cola", "rte"])
def test_tsv_and_parquet_layouts_agree(name):
    task = GLUE_TASKS[name]
    from_tsv = load(name, "validation", DATA_DIR / "glue")
    from_parquet = load(name, "validation", DATA_DIR / "glue_hf_parquet")
    assert find_glue_split(task, DATA_DIR / "glue", "validation").suffix == ".tsv"
    assert find_glue_split(task, DATA_DIR / "glue_hf_parquet", "validation").suffix == ".parquet"
    columns = [*task.text_columns, "label"]
    assert from_tsv.features == from_parquet.features
    assert from_tsv.select_columns(columns).to_list() == from_parquet.select_columns(columns).to_list()


@requires_data
def test_task_folder_itself_as_data_dir():
    assert len(load("cola", "validation", DATA_DIR / "glue" / "CoLA")) == 1_043
    assert len(load("sst2", "validation", DATA_DIR / "glue_hf_parquet" / "sst2")) == 872
    # A folder named for another task is not read as this one.
    with pytest.raises(UserError, match="available: none"):
        load("sst2", "validation", DATA_DIR / "glue" / "CoLA")


@requires_data
def test_tsv_preferred_then_parquet():
    cola_train = find_glue_split(GLUE_TASKS["cola"], DATA_DIR, "train")
    assert cola_train == DATA_DIR / "glue" / "CoLA" / "train.tsv"
    assert find_glue_split(GLUE_TASKS["ax"], DATA_DIR, "test") == DATA_DIR / "glue_hf_parquet" / "ax" / "test.parquet"
    assert find_glue_split(GLUE_TASKS["mrpc"], DATA_DIR, "validation").name == "dev.tsv"  # not dev_ids.tsv
    assert find_glue_split(GLUE_TASKS["qnli"], DATA_DIR, "train") is None


@requires_data
def test_available_splits():
    assert available_glue_splits(GLUE_TASKS["qnli"], DATA_DIR) == ["validation", "test"]
    assert available_glue_splits(GLUE_TASKS["mnli"], DATA_DIR) == ["validation_matched", "validation_mismatched"]
    assert available_glue_splits(GLUE_TASKS["qqp"], DATA_DIR) == ["train", "validation"]
    assert available_glue_splits(GLUE_TASKS["ax"], DATA_DIR) == ["test"]


@requires_data
def test_missing_split_lists_where_it_looked_and_what_exists():
    with pytest.raises(UserError) as info:
        load("qnli", "train")
    message = str(info.value)
    assert "QNLI train is not in" in message
    assert str(DATA_DIR / "glue" / "QNLI") in message and str(DATA_DIR / "glue_hf_parquet" / "qnli") in message
    assert "available: validation, test" in message
