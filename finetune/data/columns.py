"""`data.column_names` for every kind of data, not only csv/tsv.

A csv/tsv file without a header line takes the names as its header (sources.py passes them to the reader). Other
data names its columns already (JSON keys, parquet and Hub schemas, a CoNLL file's `tokens`/`ner_tags`): the names
rename them in order, so one recipe serves GoEmotions' headerless TSV and a JSON or parquet copy whose columns are
called otherwise. The count must match, and a name may not move to another column than the one the data gives it
(renaming `label, sentence` to `text, label` would swap them); names the data already has, in any order, change
nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from finetune.errors import UserError, preview

if TYPE_CHECKING:
    import datasets


def renamed(split: datasets.Dataset, names: list[str], where: str) -> datasets.Dataset:
    """`split` with its columns renamed to `names`, in order; `where` names the split and source in errors."""
    columns = list(split.column_names)
    if columns == names or (len(columns) == len(names) and set(columns) == set(names)):
        return split
    if len(columns) != len(names):
        raise UserError(f"data.column_names gives {len(names)} names ({', '.join(names)}) but the {where} has "
                        f"{len(columns)} columns ({', '.join(columns)}). Give one name per column in the data's "
                        f"order, or leave column_names out: only csv/tsv files without a header line need it.")
    for position, name in enumerate(names):
        if name in columns and columns.index(name) != position:
            raise UserError(f"data.column_names would rename the {where}'s column {preview(columns[position])} to "
                            f"{preview(name)}, but {preview(name)} is already its column {columns.index(name) + 1}. "
                            f"Give the names in the data's column order ({', '.join(columns)}), or leave "
                            f"column_names out.")
    return split.rename_columns({old: new for old, new in zip(columns, names) if old != new})


def apply_column_names(loaded: Any, names: list[str] | None) -> Any:
    """Every split of `loaded` (sources.LoadedData, which imports this module) with `names` as its columns (see the
    module docstring); unchanged without names."""
    if not names:
        return loaded
    if loaded.glue_task is not None:
        raise UserError("data.column_names does not apply to GLUE data (finetune knows its columns): leave it out.")
    if loaded.train is not None:
        loaded.train = renamed(loaded.train, names, f"training data ({loaded.source})")
    loaded.eval = {name: renamed(split, names, f"{name} data ({loaded.source})") for name, split in loaded.eval.items()}
    loaded.test = {name: renamed(split, names, f"{name} data ({loaded.source})") for name, split in loaded.test.items()}
    return loaded
