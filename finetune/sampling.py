"""Length-grouped training order that is the same every time for a given seed and epoch.

Batches of similar length waste little compute on padding. transformers' LengthGroupedSampler draws its
permutation from the global RNG, so a run resumed mid-epoch sees a different order than the uninterrupted run;
this one seeds each epoch's order from (seed, epoch), which makes resuming exact and every process of a
data-parallel run agree on the order.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import Sampler
from transformers.trainer_pt_utils import get_length_grouped_indices


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
        return iter(get_length_grouped_indices(self.lengths, self.batch_size, generator=generator))


def example_lengths(dataset, column: str = "input_ids") -> list[int]:
    """Token count per example, read column-wise (much faster than indexing rows one by one)."""
    return [len(ids) for ids in dataset[column]]
