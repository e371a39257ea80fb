"""Read GLUE splits from a folder on disk, for machines that cannot reach the Hugging Face Hub.

Two layouts are understood, and a data folder may hold either or both:

- the original GLUE TSVs (`download_glue_data.py`): `<root>/SST-2/dev.tsv`, each task with its own header quirks;
- the Hugging Face parquet export of `nyu-mll/glue`: `<root>/sst2/validation.parquet`.

Whatever the source, a split loads as a `datasets.Dataset` with the HF column names: the task's text columns,
`label` (class id, float score for STS-B, -1 where the split is unlabelled) and `idx`.

datasets and pyarrow are imported inside functions so that importing this module stays cheap.
"""

from __future__ import annotations

import csv
import itertools
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from finetune.data.glue import GlueTask, get_glue_task
from finetune.errors import UserError, did_you_mean

if TYPE_CHECKING:
    import datasets

# Label for rows of an unlabelled split (GLUE test sets), as in the HF export.
NO_LABEL = -1


# --- Where the files are ----------------------------------------------------------------------------------------

# Original GLUE file stem per HF split name.
_TSV_STEMS = {
    "train": "train",
    "validation": "dev",
    "validation_matched": "dev_matched",
    "validation_mismatched": "dev_mismatched",
    "test": "test",
    "test_matched": "test_matched",
    "test_mismatched": "test_mismatched",
}
# The diagnostic set is `diagnostic.tsv` in download_glue_data.py and `AX.tsv` in the submission zip. Exact names
# only: a `diagnostic*` glob would also catch `diagnostic-full.tsv`, which has a different, labelled format.
_AX_TSV_NAMES = ("diagnostic.tsv", "AX.tsv")
# Files that match a split's stem but are not that split: MRPC's dev_ids.tsv lists the dev id pairs, no text.
_NOT_SPLIT_FILES = {"dev_ids.tsv"}


def _existing_dir(data_dir: str | Path) -> Path:
    path = Path(data_dir).expanduser()
    if not path.is_dir():
        what = "is not a folder" if path.exists() else "does not exist"
        raise UserError(
            f"GLUE data folder {path} {what}. Point data_dir at a folder holding glue/ and/or glue_hf_parquet/, "
            "a folder of GLUE task folders, or one task's folder."
        )
    return path


def _check_split(task: GlueTask, split: str) -> None:
    if split not in task.splits:
        raise UserError(
            f"GLUE task {task.name} has no split '{split}'; its splits are: {', '.join(task.splits)}."
            + did_you_mean(split, task.splits)
        )


def _as_task_folder(task: GlueTask, data_dir: Path) -> list[Path]:
    """[data_dir] when it may be this task's own folder (it holds split files directly), else [].

    A folder whose name is another GLUE task's is refused, so that CoLA/dev.tsv is never read as SST-2.
    """
    if not any(data_dir.glob("*.tsv")) and not any(data_dir.glob("*.parquet")):
        return []
    try:
        return [data_dir] if get_glue_task(data_dir.name) == task else []
    except UserError:  # a name that is no GLUE task ("my_sst_copy") may hold any task
        return [data_dir]


def _tsv_dirs(task: GlueTask, data_dir: Path) -> list[Path]:
    return [data_dir / "glue" / task.tsv_dir, data_dir / task.tsv_dir, *_as_task_folder(task, data_dir)]


def _parquet_dirs(task: GlueTask, data_dir: Path) -> list[Path]:
    return [data_dir / "glue_hf_parquet" / task.name, data_dir / task.name, *_as_task_folder(task, data_dir)]


def _tsv_file(task: GlueTask, folder: Path, split: str) -> Path | None:
    if task.name == "ax":
        return next((folder / name for name in _AX_TSV_NAMES if (folder / name).is_file()), None)
    stem = _TSV_STEMS[split]
    exact = folder / f"{stem}.tsv"
    if exact.is_file():
        return exact
    # Subsets and samples keep the stem: QQP's train_subset_23497.tsv, MNLI's dev_matched_sample1000.tsv.
    others = sorted(p for p in folder.glob(f"{stem}*.tsv") if p.is_file() and p.name not in _NOT_SPLIT_FILES)
    return others[0] if others else None


def _find(task: GlueTask, data_dir: Path, split: str) -> Path | None:
    # The original TSVs win over the parquet export: they are the reference GLUE files, and some splits
    # (SST-2 train here) exist only as TSV.
    for folder in _tsv_dirs(task, data_dir):
        if folder.is_dir() and (path := _tsv_file(task, folder, split)):
            return path
    for folder in _parquet_dirs(task, data_dir):
        if (path := folder / f"{split}.parquet").is_file():
            return path
    return None


def find_glue_split(task: GlueTask, data_dir: Path, split: str) -> Path | None:
    """The file that holds `split` of `task` under `data_dir` (TSV preferred, then parquet), or None."""
    _check_split(task, split)
    return _find(task, _existing_dir(data_dir), split)


def available_glue_splits(task: GlueTask, data_dir: str | Path) -> list[str]:
    """The splits of `task` that have a file under `data_dir`, in train, eval, test order."""
    root = _existing_dir(data_dir)
    return [split for split in task.splits if _find(task, root, split) is not None]


def _missing_split_error(task: GlueTask, data_dir: Path, split: str) -> UserError:
    candidates = dict.fromkeys((*_tsv_dirs(task, data_dir), *_parquet_dirs(task, data_dir)))
    searched = [str(d) for d in candidates if d.is_dir()]
    if searched:
        where = f"looked in {' and '.join(searched)}"
    else:
        where = f"found none of {', '.join(str(d) for d in candidates)}"
    available = available_glue_splits(task, data_dir)
    return UserError(
        f"{task.tsv_dir} {split} is not in {data_dir} ({where}); available: {', '.join(available) or 'none'}. "
        f"Use an available split, or add {task.tsv_dir}/{_TSV_STEMS.get(split, split)}.tsv "
        f"or {task.name}/{split}.parquet to the data folder."
    )


# --- Reading the original TSVs -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Positions:
    """Column positions in a headerless TSV, and how many fields each of its rows has."""

    text: tuple[int, ...]
    label: int | None  # None: the file has no label column (a test split)
    num_fields: int


@dataclass(frozen=True)
class _TsvColumns:
    """How a task's GLUE TSVs name their columns. Test files lack the label column; their rows get NO_LABEL."""

    text: tuple[str, ...]  # header names, in the order of task.text_columns
    label: str
    headerless: _Positions | None = None  # set for tasks that ship files without a header line


_NLI_PAIR = _TsvColumns(("sentence1", "sentence2"), "label")

_TSV_COLUMNS: dict[str, _TsvColumns] = {
    # CoLA train/dev: `source, label, original_mark, sentence`, no header; test has `index, sentence`.
    "cola": _TsvColumns(("sentence",), "label", _Positions(text=(3,), label=1, num_fields=4)),
    "sst2": _TsvColumns(("sentence",), "label"),
    "mrpc": _TsvColumns(("#1 String", "#2 String"), "Quality"),
    # QQP subsets cut from train keep the 6 GLUE columns but drop the header.
    "qqp": _TsvColumns(("question1", "question2"), "is_duplicate", _Positions(text=(3, 4), label=5, num_fields=6)),
    "stsb": _TsvColumns(("sentence1", "sentence2"), "score"),
    # Full GLUE MNLI files have a header (premise = sentence1); the TextFooler 1,000-example samples have none
    # and are just `gold_label, premise, hypothesis`.
    "mnli": _TsvColumns(("sentence1", "sentence2"), "gold_label", _Positions(text=(1, 2), label=0, num_fields=3)),
    "qnli": _TsvColumns(("question", "sentence"), "label"),
    "rte": _NLI_PAIR,
    "wnli": _NLI_PAIR,
    "ax": _NLI_PAIR,  # diagnostic.tsv: `index, sentence1, sentence2`, unlabelled
}


def _layout(task: GlueTask, first_row: list[str], path: Path) -> tuple[_Positions | None, bool]:
    """Where the columns are, from the first row: (positions, whether that row is a header).

    A row that holds every expected text column name is a header; anything else is data of a headerless file.
    """
    spec = _TSV_COLUMNS[task.name]
    if set(spec.text) <= set(first_row):
        label = first_row.index(spec.label) if spec.label in first_row else None
        return _Positions(tuple(first_row.index(c) for c in spec.text), label, len(first_row)), True
    if spec.headerless is None:
        raise UserError(
            f"{path}: line 1 is not a {task.tsv_dir} header; expected columns "
            f"{', '.join(spec.text)} and (unless it is a test file) {spec.label}. Fix or replace the file."
        )
    return spec.headerless, False


def _label_parser(task: GlueTask, path: Path):
    """A function (value, line number) -> label id, or float score for regression."""
    if task.is_regression:

        def parse_score(value: str, line: int) -> float:
            try:
                return float(value)
            except ValueError:
                raise UserError(f"{path}, line {line}: {task.tsv_dir} score {value!r} is not a number.") from None

        return parse_score

    # Names map through the HF ClassLabel order; files that already store ids ("0", "1") pass through.
    names = task.label_names or ()
    ids = {name: i for i, name in enumerate(names)} | {str(i): i for i in range(task.num_labels)}

    def parse_class(value: str, line: int) -> int:
        try:
            return ids[value]
        except KeyError:
            raise UserError(
                f"{path}, line {line}: unknown {task.tsv_dir} label {value!r}; allowed labels are "
                f"{', '.join(names)} (or their ids 0-{task.num_labels - 1}). Fix that line of the file."
            ) from None

    return parse_class


def _read_tsv(task: GlueTask, path: Path) -> dict[str, list]:
    columns: dict[str, list] = {name: [] for name in (*task.text_columns, "label")}
    parse_label = _label_parser(task, path)
    missing_label = float(NO_LABEL) if task.is_regression else NO_LABEL
    bad_lines: list[int] = []
    # QUOTE_NONE: GLUE text contains bare quotes (MRPC: `"The foodservice pie business ...`) that are not CSV
    # quoting. utf-8-sig drops the byte-order mark in front of MRPC's header. newline="" lets csv handle CRLF
    # files (QQP dev_first9.tsv) itself.
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        first = next(reader, None)
        if first is None:
            return {**columns, "idx": []}
        positions, is_header = _layout(task, first, path)
        assert positions is not None  # _layout raises when it cannot place the columns
        for row in reader if is_header else itertools.chain([first], reader):
            if not row:  # blank line
                continue
            if len(row) != positions.num_fields:
                bad_lines.append(reader.line_num)
                continue
            for name, pos in zip(task.text_columns, positions.text):
                columns[name].append(row[pos])
            label = missing_label if positions.label is None else parse_label(row[positions.label], reader.line_num)
            columns["label"].append(label)
    if bad_lines:
        # Broken rows exist in real GLUE copies (QQP train_subset_23497.tsv line 1 lost its last tab), so they are
        # dropped rather than fatal, but never silently.
        warnings.warn(
            f"{path}: skipped {len(bad_lines)} row(s) without exactly {positions.num_fields} tab-separated fields "
            f"(line(s) {', '.join(map(str, bad_lines[:10]))}{', ...' if len(bad_lines) > 10 else ''}).",
            stacklevel=3,
        )
    columns["idx"] = list(range(len(columns["label"])))
    return columns


# --- Reading the HF parquet export -------------------------------------------------------------------------------


def _read_parquet(task: GlueTask, path: Path) -> dict[str, list]:
    import pyarrow.parquet as pq

    present = set(pq.read_schema(path).names)
    missing = [c for c in task.text_columns if c not in present]
    if missing:
        raise UserError(
            f"{path} has no column(s) {', '.join(missing)} (it has {', '.join(sorted(present))}); "
            f"a GLUE {task.name} parquet file needs {', '.join(task.text_columns)}, label and idx."
        )
    wanted = [c for c in (*task.text_columns, "label", "idx") if c in present]
    columns = pq.read_table(path, columns=wanted).to_pydict()
    num_rows = len(columns[task.text_columns[0]])
    columns.setdefault("label", [NO_LABEL] * num_rows)
    columns.setdefault("idx", list(range(num_rows)))
    return columns


# --- Public entry point ------------------------------------------------------------------------------------------


def _to_dataset(task: GlueTask, columns: dict[str, list]) -> datasets.Dataset:
    from datasets import Dataset, Features, Value

    # Plain int labels rather than the parquet's ClassLabel, so TSV and parquet give the same features; float32
    # for STS-B as in the HF export (the TSV's 3.800 and the parquet's float32 3.8 then compare equal).
    features = Features(
        {
            **{name: Value("string") for name in task.text_columns},
            "label": Value("float32" if task.is_regression else "int64"),
            "idx": Value("int32"),
        }
    )
    return Dataset.from_dict({name: columns[name] for name in features}, features=features)


def load_glue_split(task: GlueTask, data_dir: str | Path, split: str) -> datasets.Dataset:
    """Load one split of a GLUE task from `data_dir` as a Dataset of text columns, `label` and `idx`.

    `data_dir` may hold glue/ and/or glue_hf_parquet/, or be a folder of task folders in either layout, or be one
    task's folder. Raises UserError when the folder or the split is missing, or a label is not one of the task's.
    """
    _check_split(task, split)
    root = _existing_dir(data_dir)
    path = _find(task, root, split)
    if path is None:
        raise _missing_split_error(task, root, split)
    from finetune.data.caching import cached_file_dataset

    # A re-run reads the parsed split back (memory-mapped Arrow) instead of parsing the file again.
    read = _read_parquet if path.suffix == ".parquet" else _read_tsv
    return cached_file_dataset(path, lambda: _to_dataset(task, read(task, path)), settings=repr(task))
