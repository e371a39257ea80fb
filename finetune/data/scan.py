"""Reading one column of a split without turning the whole column into Python objects: what label checks need is
the distinct values (two for SST-2, whatever the row count) and how often each occurs, which Arrow counts batch by
batch. A million-row split read as a Python list costs hundreds of MB and seconds; these stay flat.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import datasets
    import pyarrow as pa

BATCH_ROWS = 100_000


def arrow_tables(split: datasets.Dataset, columns: list[str]) -> Iterator[pa.Table]:
    """`columns` in Arrow tables of BATCH_ROWS rows, row selections (select, shuffle) applied."""
    table = split.select_columns(columns).with_format("arrow")
    batch_rows = BATCH_ROWS
    for start in range(0, len(split), batch_rows):
        yield table[start:start + batch_rows]


def arrow_batches(split: datasets.Dataset, column: str) -> Iterator[pa.ChunkedArray]:
    """One column in Arrow batches of BATCH_ROWS rows, row selections applied."""
    for table in arrow_tables(split, [column]):
        yield table[column]


def value_counts(split: datasets.Dataset, column: str) -> Counter[Any]:
    """How many rows hold each value of `column` (missing ones: None), values in the order they first appear.
    Nested values (lists, structs) come back as tuples."""
    import pyarrow as pa
    import pyarrow.compute as pc

    counts: Counter[Any] = Counter()
    for chunk in arrow_batches(split, column):
        if pa.types.is_nested(chunk.type):  # lists, structs: counted in Python, as tuples
            counts.update(_hashable(value) for value in chunk.to_pylist())
            continue
        nulls = chunk.null_count
        if nulls:
            counts[None] += nulls
        for entry in pc.value_counts(chunk.drop_null()).to_pylist():
            counts[entry["values"]] += entry["counts"]
    return counts


def _hashable(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_hashable(item) for item in value)
    if isinstance(value, dict):
        return tuple((key, _hashable(item)) for key, item in value.items())
    return value


def distinct_values(split: datasets.Dataset, column: str) -> list[Any]:
    """The distinct values of `column` in the order they first appear, read batch by batch."""
    return list(value_counts(split, column))
