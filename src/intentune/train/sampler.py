"""Batches of similar length for training, so short utterances are not padded to long ones."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import Sampler


class LengthGroupedBatches(Sampler[list[int]]):
    """Shuffled batches of similar length, so short utterances are not padded to long ones.

    Each epoch shuffles the rows, cuts them into chunks of ``batch_size * group_batches`` rows, sorts each chunk
    by length, cuts it into batches and shuffles the batches. Every row is used once per epoch, and there are
    ``ceil(len(lengths) / batch_size)`` batches, as with plain shuffling.
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, generator: torch.Generator, group_batches: int = 50):
        self.lengths = list(lengths)
        self.batch_size = batch_size
        self.generator = generator
        self.chunk = batch_size * group_batches

    def __len__(self) -> int:
        return math.ceil(len(self.lengths) / self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        order = torch.randperm(len(self.lengths), generator=self.generator).tolist()
        batches = []
        for start in range(0, len(order), self.chunk):
            chunk = sorted(order[start : start + self.chunk], key=lambda i: self.lengths[i])
            batches += [chunk[i : i + self.batch_size] for i in range(0, len(chunk), self.batch_size)]
        for index in torch.randperm(len(batches), generator=self.generator).tolist():
            yield batches[index]
