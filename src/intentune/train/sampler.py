"""Which rows each training epoch uses, and in what batches.

- :class:`EpochRows`: the rows of one epoch when they are not all of them: every row of ``fixed``, plus the next
  ``per_epoch`` rows of each pool in a seeded order (replayed rows of the old intents, when intents are added to a
  trained model), so the epoch keeps its size while the pools' rows take turns, each seen before any is seen again.
- :class:`LengthGroupedBatches`: shuffled batches of similar length, so short utterances are not padded to long
  ones.
- :class:`ShuffledBatches`: plain shuffled batches of an :class:`EpochRows` epoch (``train.group_by_length`` off).

The shuffling draws from the training loop's generator, whose state at the start of an epoch a checkpoint saves, and
an epoch's rows depend only on its index (the samplers' :meth:`start_epoch`), so a resumed run trains on the same rows
and batches as the uninterrupted one.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from torch.utils.data import Sampler


@dataclass(frozen=True)
class EpochRows:
    """The rows of each epoch: all of ``fixed``, and ``per_epoch`` rows of each pool (the whole pool when it is
    smaller). Each pool is put in an order seeded by ``seed`` and read round and round, ``per_epoch`` rows at a
    time: epoch ``e`` takes its rows ``e * per_epoch`` to ``(e + 1) * per_epoch - 1`` (wrapping), so every pooled
    row is used once before any is used again.

    Attributes:
        fixed: row indices used in every epoch.
        pools: groups of row indices (one per old intent) that take turns.
        per_epoch: rows of each pool per epoch.
        seed: seeds the order of each pool.
    """

    fixed: tuple[int, ...]
    pools: tuple[tuple[int, ...], ...]
    per_epoch: int
    seed: int = 0

    @property
    def size(self) -> int:
        """Rows in one epoch."""
        return len(self.fixed) + sum(min(self.per_epoch, len(pool)) for pool in self.pools)

    def rows(self, epoch: int) -> list[int]:
        """The rows of epoch ``epoch`` (0-based), in index order."""
        rows = list(self.fixed)
        for number, pool in enumerate(self.pools):
            if len(pool) <= self.per_epoch:
                rows += pool
                continue
            order = torch.randperm(len(pool), generator=torch.Generator().manual_seed(self.seed * 100_003 + number))
            start = epoch * self.per_epoch
            rows += [pool[order[(start + i) % len(pool)]] for i in range(self.per_epoch)]
        return sorted(rows)


class LengthGroupedBatches(Sampler[list[int]]):
    """Shuffled batches of similar length, so short utterances are not padded to long ones.

    Each epoch shuffles the rows, cuts them into chunks of ``batch_size * group_batches`` rows, sorts each chunk
    by length, cuts it into batches and shuffles the batches. Every row is used once per epoch (every row of the
    epoch's draw, with ``epoch_rows``), and there are ``ceil(rows / batch_size)`` batches, as with plain shuffling.
    """

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        generator: torch.Generator,
        group_batches: int = 50,
        epoch_rows: EpochRows | None = None,
    ):
        self.lengths = list(lengths)
        self.batch_size = batch_size
        self.generator = generator
        self.chunk = batch_size * group_batches
        self.epoch_rows = epoch_rows
        self.epoch = 0

    def start_epoch(self, epoch: int) -> None:
        """The epoch the next iteration is (its rows, with ``epoch_rows``). Not ``set_epoch``: accelerate's loader
        calls a sampler's ``set_epoch`` with its own count of iterations, which starts again at 0 in a resumed
        run."""
        self.epoch = epoch

    def __len__(self) -> int:
        rows = self.epoch_rows.size if self.epoch_rows is not None else len(self.lengths)
        return math.ceil(rows / self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        if self.epoch_rows is None:
            order = torch.randperm(len(self.lengths), generator=self.generator).tolist()
        else:
            rows = self.epoch_rows.rows(self.epoch)
            order = [rows[i] for i in torch.randperm(len(rows), generator=self.generator).tolist()]
        batches = []
        for start in range(0, len(order), self.chunk):
            chunk = sorted(order[start : start + self.chunk], key=lambda i: self.lengths[i])
            batches += [chunk[i : i + self.batch_size] for i in range(0, len(chunk), self.batch_size)]
        for index in torch.randperm(len(batches), generator=self.generator).tolist():
            yield batches[index]


class ShuffledBatches(Sampler[list[int]]):
    """Each epoch: the rows :class:`EpochRows` gives it, shuffled and cut into batches of ``batch_size``."""

    def __init__(self, epoch_rows: EpochRows, batch_size: int, generator: torch.Generator):
        self.epoch_rows = epoch_rows
        self.batch_size = batch_size
        self.generator = generator
        self.epoch = 0

    def start_epoch(self, epoch: int) -> None:
        """The epoch the next iteration is."""
        self.epoch = epoch

    def __len__(self) -> int:
        return math.ceil(self.epoch_rows.size / self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        rows = self.epoch_rows.rows(self.epoch)
        order = [rows[i] for i in torch.randperm(len(rows), generator=self.generator).tolist()]
        for start in range(0, len(order), self.batch_size):
            yield order[start : start + self.batch_size]
