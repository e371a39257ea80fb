"""Loading a recipe's data: Hub datasets, local files, and GLUE folders on disk, as `datasets.Dataset` splits.

Task-independent: which columns hold text and labels is the task's business (see tasks/).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from finetune.config.schema import DataSection
from finetune.data.columns import apply_column_names
from finetune.data.conll import CONLL_SUFFIXES, read_conll
from finetune.data.glue import GlueTask, get_glue_task
from finetune.errors import UserError, did_you_mean

if TYPE_CHECKING:
    import datasets

GLUE_HUB_ID = "nyu-mll/glue"
GLUE_PREFIXES = ("glue/", "nyu-mll/glue/")

# File extension -> `datasets` builder name.
_BUILDERS = {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet", ".txt": "text",
             **dict.fromkeys(CONLL_SUFFIXES, "conll")}  # token classification: one token and its tag a line


@dataclass
class LoadedData:
    """The splits a run uses. `eval` may hold several named sets (MNLI matched and mismatched)."""

    train: datasets.Dataset | None
    eval: dict[str, datasets.Dataset] = field(default_factory=dict)
    test: dict[str, datasets.Dataset] = field(default_factory=dict)
    glue_task: GlueTask | None = None
    source: str = ""


def glue_task_of(data: DataSection) -> GlueTask | None:
    """The GLUE task a `dataset` value names (glue/sst2, nyu-mll/glue with config sst2), or None."""
    name = data.dataset or ""
    if name in ("glue", GLUE_HUB_ID):
        if not data.config:
            raise UserError(f"--dataset {name} needs a task: use glue/<task>, for example glue/sst2.")
        return get_glue_task(data.config)
    for prefix in GLUE_PREFIXES:
        if name.lower().startswith(prefix):
            return get_glue_task(name[len(prefix):])
    return None


def dataset_card_entry(data: DataSection) -> dict[str, Any]:
    """The model card's description of the data: name, Hub type (or path), config and split."""
    glue = glue_task_of(data)
    if glue is not None:
        return {"name": f"GLUE {glue.name.upper()}", "type": GLUE_HUB_ID, "config": glue.name,
                "split": data.eval_split or glue.eval_splits[0]}
    name = data.dataset or data.train_file or "local data"
    entry = {"name": Path(name).name if Path(name).exists() else name, "type": name}
    if data.config:
        entry["config"] = data.config
    return entry


def load_data(data: DataSection, *, need_train: bool = True) -> LoadedData:
    glue_task = glue_task_of(data)
    if data.train_file or data.validation_file or data.test_file:
        loaded = _load_files(data)
    elif glue_task is not None:
        loaded = _load_glue(glue_task, data)
    elif data.dataset is None:
        raise UserError("No data given: pass --dataset (glue/sst2, a Hub id or a local path) or --train-file.")
    elif Path(data.dataset).expanduser().exists():
        loaded = _load_local_path(Path(data.dataset).expanduser(), data)
    else:
        loaded = _load_hub(data)
    loaded.glue_task = glue_task
    loaded = apply_column_names(loaded, data.column_names)  # csv/tsv: already their header; others: renamed
    if need_train and loaded.train is None:
        raise UserError(f"No training split found in {loaded.source}. Pass --train-file or set data.train_split.")
    return _truncate(loaded, data)


def _truncate(loaded: LoadedData, data: DataSection) -> LoadedData:
    if data.max_train_samples and loaded.train is not None:
        loaded.train = loaded.train.select(range(min(data.max_train_samples, len(loaded.train))))
    if data.max_eval_samples:
        loaded.eval = {name: split.select(range(min(data.max_eval_samples, len(split))))
                       for name, split in loaded.eval.items()}
    return loaded


# ----------------------------------------------------------------------------------------------------------------
# GLUE


def _load_glue(task: GlueTask, data: DataSection) -> LoadedData:
    eval_splits = [data.eval_split] if data.eval_split else list(task.eval_splits)
    test_splits = [data.test_split] if data.test_split else []
    if data.data_dir:
        from finetune.data.glue_files import load_glue_split

        data_dir = data.data_dir

        def read(split: str) -> datasets.Dataset:
            return load_glue_split(task, data_dir, split)

        source = f"GLUE {task.name} in {data.data_dir}"
    else:
        try:
            hub = _load_hub_dict(GLUE_HUB_ID, task.name, data)
        except UserError as error:
            raise UserError(f"{error} GLUE files on disk work offline: pass --data-dir DIR (a folder with "
                            f"glue/{task.tsv_dir}/ TSVs or glue_hf_parquet/{task.name}/).") from error

        def read(split: str) -> datasets.Dataset:
            if split not in hub:
                raise UserError(f"GLUE {task.name} has no split '{split}'. Splits: {', '.join(hub)}.")
            return hub[split]

        source = f"{GLUE_HUB_ID} ({task.name})"
    return LoadedData(
        train=read(data.train_split) if data.train_split else None,
        eval={split: read(split) for split in eval_splits},
        test={split: read(split) for split in test_splits},
        source=source,
    )


# ----------------------------------------------------------------------------------------------------------------
# Local files and folders


def _builder_for(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in _BUILDERS:
        raise UserError(f"{path}: unsupported file type '{suffix or path.name}'. "
                        f"Use one of {', '.join(sorted(_BUILDERS))}.")
    return _BUILDERS[suffix]


def _languages(data: DataSection) -> tuple[str, str] | None:
    """(source, target) language codes when the recipe names both: then line-aligned text files are accepted."""
    return (data.source_lang, data.target_lang) if data.source_lang and data.target_lang else None


def parallel_text_files(path: Path, languages: tuple[str, str]) -> tuple[Path, Path] | None:
    """`train` or `train.en` -> (train.en, train.de) when both exist (the Multi30k layout); None when neither does."""
    source, target = languages
    prefix = path.with_suffix("") if path.suffix in (f".{source}", f".{target}") else path
    files = (prefix.parent / f"{prefix.name}.{source}", prefix.parent / f"{prefix.name}.{target}")
    present = [file.is_file() for file in files]
    if all(present):
        return files
    if any(present):
        missing = files[present.index(False)]
        raise UserError(f"{missing} not found: line-aligned translation data needs one file per language "
                        f"({files[0].name} and {files[1].name}, same number of lines).")
    return None


def _read_lines(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise UserError(f"{path}: not UTF-8 text ({error.reason}). Convert the file to UTF-8.") from error
    # split("\n"), not splitlines(): a stray form feed or U+2028 inside a sentence must not shift the alignment.
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.rstrip("\r") for line in lines]


def _read_parallel_text(files: tuple[Path, Path], languages: tuple[str, str]) -> datasets.Dataset:
    """Two line-aligned files as one dataset with a column per language code."""
    import datasets

    source, target = (_read_lines(file) for file in files)
    if len(source) != len(target):
        raise UserError(f"{files[0]} has {len(source)} lines but {files[1]} has {len(target)}: line-aligned "
                        f"files need exactly one sentence per line in each language.")
    return datasets.Dataset.from_dict({languages[0]: source, languages[1]: target})


def _require_utf8(path: Path) -> None:
    """Name the line of the first byte that is not UTF-8, before `datasets` fails on it with a traceback."""
    import codecs

    decoder = codecs.getincrementaldecoder("utf-8")()
    line = 1
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            try:
                line += decoder.decode(chunk).count("\n")
            except UnicodeDecodeError as error:
                line += chunk[:error.start].count(b"\n")
                raise UserError(f"{path}: line {line} is not UTF-8 text ({error.reason}). "
                                f"Convert the file to UTF-8 (e.g. iconv -f latin1 -t utf-8).") from error


def _csv_options(data: DataSection | None) -> dict[str, Any]:
    """pandas options of csv/tsv files from the recipe: the column names of files without a header line, and
    multi-label cells ('2,3' next to '27') read as text, so no chunk of the file guesses them as numbers."""
    options: dict[str, Any] = {}
    if data is None:
        return options
    if data.column_names:
        options.update(column_names=list(data.column_names), header=None)
    if data.multi_label:
        options["converters"] = {name: str for name in dict.fromkeys((data.label_column, "label", "labels"))
                                 if name and (not data.column_names or name in data.column_names)}
    return options


def _read_files(files: dict[str, Path], languages: tuple[str, str] | None = None,
                data: DataSection | None = None) -> dict[str, datasets.Dataset]:
    """Each split from its own file; the builder comes from the extension (tsv is csv with tabs).

    With `languages`, a path may also name line-aligned text files: `train` (or `train.en`) reads train.en + train.de.
    """
    import datasets

    result = {}
    for split, path in files.items():
        if languages and (parallel := parallel_text_files(path, languages)):
            result[split] = _read_parallel_text(parallel, languages)
            continue
        if not path.is_file():
            raise UserError(f"Data file not found: {path}. Check the path (it is relative to {Path.cwd()}).")
        builder = _builder_for(path)
        if builder == "conll":
            from finetune.data import conll
            from finetune.data.caching import cached_file_dataset

            # Parsed in Python, so kept as an Arrow file for the next run, like a GLUE TSV.
            result[split] = cached_file_dataset(path, _conll_reader(path), settings="conll", code=[conll])
            continue
        if builder != "parquet":
            _require_utf8(path)
        kwargs: dict[str, Any] = {"sep": "\t"} if path.suffix.lower() == ".tsv" else {}
        if builder == "csv":
            # Only an empty cell is missing: pandas' default reads the strings NA, None, null, NaN, n/a ... as
            # missing too, which turns a real class named "None" or "NA" into a missing label.
            kwargs.update(keep_default_na=False, na_values=[""], **_csv_options(data))
        try:
            result[split] = datasets.load_dataset(builder, data_files={split: str(path)}, split=split, **kwargs)
        except UnicodeDecodeError as error:
            raise UserError(f"{path}: not UTF-8 text ({error.reason}). Convert the file to UTF-8.") from error
        except (ValueError, datasets.exceptions.DatasetGenerationError) as error:
            cause = error.__cause__ or error
            raise UserError(f"{path}: cannot be read as {builder} ({cause}).") from error
    return result


def _conll_reader(path: Path) -> Callable[[], datasets.Dataset]:
    return lambda: read_conll(path)


def _load_files(data: DataSection) -> LoadedData:
    files = {split: Path(path).expanduser() for split, path in
             (("train", data.train_file), ("eval", data.validation_file), ("test", data.test_file)) if path}
    loaded = _read_files(files, _languages(data), data)
    return LoadedData(
        train=loaded.get("train"),
        eval={"validation": loaded["eval"]} if "eval" in loaded else {},
        test={"test": loaded["test"]} if "test" in loaded else {},
        source=", ".join(str(path) for path in files.values()),
    )


def _split_files_in(folder: Path, languages: tuple[str, str] | None = None) -> dict[str, Path]:
    """train.* / validation.* (or dev.*, valid.*, val.*) / test.* files of a folder, by split name.

    With `languages`, train.en + train.de style pairs count too (as the prefix `folder/train`).
    """
    aliases = {"train": "train", "validation": "validation", "valid": "validation", "val": "validation",
               "dev": "validation", "eval": "validation", "test": "test"}
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        split = aliases.get(path.stem.lower())
        if split and path.suffix.lower() in _BUILDERS and split not in found:
            found[split] = path
        elif split and languages and path.suffix == f".{languages[0]}" and split not in found:
            found[split] = path.with_suffix("")
    return found


def _load_local_path(path: Path, data: DataSection) -> LoadedData:
    if path.is_file():
        splits = _read_files({"train": path}, _languages(data), data)
    elif (path / "dataset_dict.json").is_file() or (path / "state.json").is_file():
        import datasets

        saved = datasets.load_from_disk(str(path))
        splits = dict(saved) if isinstance(saved, datasets.DatasetDict) else {"train": saved}
    elif files := _split_files_in(path, _languages(data)):
        splits = _read_files(files, _languages(data), data)
    else:
        raise UserError(f"{path}: no train/validation/test data files found in this folder "
                        f"(expected e.g. train.csv, validation.jsonl, test.parquet).")
    return _pick_splits(splits, data, source=str(path))


def _pick_splits(splits: dict[str, datasets.Dataset], data: DataSection, source: str) -> LoadedData:
    """Choose train/eval/test from named splits, honouring the recipe's split names."""
    def pick(name: str | None, fallbacks: tuple[str, ...]) -> str | None:
        if name:
            if name not in splits:
                raise UserError(f"{source} has no split '{name}'.{did_you_mean(name, splits)} "
                                f"Splits: {', '.join(splits)}.")
            return name
        return next((split for split in fallbacks if split in splits), None)

    train = pick(data.train_split, ())
    evaluation = pick(data.eval_split, ("validation", "valid", "dev", "test"))
    test = pick(data.test_split, ())
    return LoadedData(
        train=splits[train] if train else None,
        eval={evaluation: splits[evaluation]} if evaluation and evaluation != train else {},
        test={test: splits[test]} if test else {},
        source=source,
    )


# ----------------------------------------------------------------------------------------------------------------
# Hugging Face Hub


def split_dataset_id(name: str, config: str | None) -> tuple[str, str | None]:
    """'user/data:config' -> ('user/data', 'config'); an explicit config wins."""
    if ":" in name and not Path(name).exists():
        name, _, inline_config = name.partition(":")
        return name, config or inline_config
    return name, config


def _load_hub_dict(name: str, config: str | None, data: DataSection) -> dict[str, datasets.Dataset]:
    from finetune.hub import not_found_hint, prepare_for_hub

    prepare_for_hub(name)
    import datasets

    try:
        loaded = datasets.load_dataset(name, config)
    except (FileNotFoundError, ConnectionError, datasets.exceptions.DatasetNotFoundError) as error:
        raise UserError(not_found_hint(name, "dataset") + f" ({type(error).__name__})") from error
    except ValueError as error:  # e.g. a missing or unknown config name; the message lists the valid ones
        raise UserError(f"Dataset '{name}': {error}") from error
    return dict(loaded)


def _load_hub(data: DataSection) -> LoadedData:
    name, config = split_dataset_id(data.dataset or "", data.config)
    return _pick_splits(_load_hub_dict(name, config, data), data, source=name)
