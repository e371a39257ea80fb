"""Length-grouped training order that is the same every time for a given seed and epoch.

Batches of similar length waste little compute on padding: on SST-2, random batches of 32 compute three padded
positions for every real token, length-grouped ones about one in twenty (see benchmarks/). transformers'
LengthGroupedSampler draws its permutation from the global RNG, so a run resumed mid-epoch sees a different order
than the uninterrupted run; this one seeds each epoch's order from (seed, epoch), which makes resuming exact and
every process of a data-parallel run agree on the order.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch.utils.data import Sampler

# Examples are sorted by length within random mega-batches of this many batches (transformers' LengthGroupedSampler
# uses the same number, but shrinks it on datasets of fewer than 200 batches, where batches then pad twice as much).
MEGA_BATCH_BATCHES = 50


def length_grouped_indices(lengths: Sequence[int], batch_size: int, generator: torch.Generator,
                           mega_batch_batches: int = MEGA_BATCH_BATCHES) -> list[int]:
    """A random order of range(len(lengths)) in which each run of `batch_size` indices has similar lengths.

    Random mega-batches of `mega_batch_batches * batch_size` examples are each sorted by length and cut into
    batches. The batches are then shuffled, so an epoch does not run from long examples to short ones, and the batch
    holding the longest example goes first, so an out-of-memory error shows at the first step. A final partial batch
    stays last, so every other batch keeps its boundaries (the DataLoader cuts the order into consecutive batches).
    """
    count = len(lengths)
    permutation = torch.randperm(count, generator=generator).tolist()
    mega_size = max(1, mega_batch_batches) * batch_size
    batches: list[list[int]] = []
    for start in range(0, count, mega_size):
        # sorted() is stable: examples of equal length stay in their random order.
        mega = sorted(permutation[start:start + mega_size], key=lengths.__getitem__, reverse=True)
        batches += [mega[offset:offset + batch_size] for offset in range(0, len(mega), batch_size)]
    partial = [batches.pop()] if batches and len(batches[-1]) < batch_size else []
    batches = [batches[index] for index in torch.randperm(len(batches), generator=generator).tolist()]
    if batches:
        longest = max(range(len(batches)), key=lambda index: lengths[batches[index][0]])
        batches[0], batches[longest] = batches[longest], batches[0]
    return [index for batch in batches + partial for index in batch]


class SeededLengthGroupedSampler(Sampler[int]):
    def __init__(self, lengths: Sequence[int], batch_size: int, seed: int) -> None:
        self.lengths = list(lengths)
        self.batch_size = batch_size
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Called by accelerate/the Trainer at the start of each epoch."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return iter(length_grouped_indices(self.lengths, self.batch_size, generator))


def example_lengths(dataset: Any, column: str = "input_ids") -> list[int]:
    """Token count per example, computed by Arrow (indexing rows one by one takes seconds on large splits)."""
    import pyarrow.compute as pc

    return pc.list_value_length(dataset.with_format("arrow")[column]).to_pylist()


def length_order(dataset: Any, column: str = "input_ids") -> list[int]:
    """Row indices, longest example first: evaluation batches of similar length pad (and compute) less."""
    lengths = example_lengths(dataset, column)
    return sorted(range(len(lengths)), key=lambda index: -lengths[index])


def longest_first(evaluation: Any) -> Any:
    """Evaluation data (one split, a dict of named splits, or None) with each split's rows longest first."""
    if isinstance(evaluation, dict):
        return {name: split.select(length_order(split)) for name, split in evaluation.items()}
    return None if evaluation is None else evaluation.select(length_order(evaluation))


def padding_efficiency(lengths: Sequence[int], order: Sequence[int], batch_size: int) -> float:
    """Real tokens / positions computed when `order` is cut into batches padded to their longest example."""
    real = computed = 0
    for start in range(0, len(order), batch_size):
        batch = [lengths[index] for index in order[start:start + batch_size]]
        real += sum(batch)
        computed += max(batch) * len(batch)
    return real / computed if computed else 1.0
