"""Paired bootstrap: is model B better than model A on the same evaluation rows, or is the difference noise?

Both models predict the same rows. Each resample draws rows with replacement and scores both models on the same
draw, so the spread of the differences reflects how much the result depends on which rows happened to be in the
evaluation data. A difference whose interval contains 0 is "within noise": another draw of rows of the same size
could as well reverse it.

Example:
    >>> result = paired_bootstrap(["a", "b", "a"], ["a", "b", "b"], ["a", "b", "a"], ["a", "b"])
    >>> result.accuracy.difference
    0.333333
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import DataError, IntentuneError

# Resamples scored at once: bounds the (chunk, rows) matrix of draw counts to about 8 MB.
_CELLS_PER_CHUNK = 2_000_000


@dataclass(frozen=True)
class Interval:
    """A difference B - A on all evaluation rows and its bootstrap confidence interval.

    Attributes:
        difference: B's metric minus A's, on all rows.
        low: lower end of the interval.
        high: upper end of the interval.
    """

    difference: float
    low: float
    high: float

    @property
    def within_noise(self) -> bool:
        """True when the interval contains 0: the data do not show which model is better."""
        return self.low <= 0.0 <= self.high


@dataclass(frozen=True)
class BootstrapResult:
    """Intervals for the differences in accuracy, macro F1 and each intent's F1 (B - A).

    Attributes:
        accuracy: the accuracy difference.
        macro_f1: the macro-averaged F1 difference, over ``labels``.
        per_intent_f1: one interval per label, in ``labels`` order.
        resamples: how many resamples were drawn.
        confidence: the interval's coverage, e.g. 0.95.
        seed: the seed of the resampling.
    """

    accuracy: Interval
    macro_f1: Interval
    per_intent_f1: dict[str, Interval]
    resamples: int
    confidence: float
    seed: int


def paired_bootstrap(
    y_true: Sequence[str],
    pred_a: Sequence[str],
    pred_b: Sequence[str],
    labels: Sequence[str],
    *,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 13,
) -> BootstrapResult:
    """Percentile intervals for B - A in accuracy, macro F1 and per-label F1, resampling rows with replacement.

    F1 follows scikit-learn's ``classification_report`` with ``labels`` fixed and ``zero_division=0``: a label
    with no true and no predicted rows in a resample scores 0. Predictions outside ``labels`` (an out-of-scope
    answer, say) count as wrong and get no row of their own.

    Args:
        y_true: the true label of each row.
        pred_a: model A's answer for each row.
        pred_b: model B's answer for each row, same rows in the same order.
        labels: the labels to score F1 for (and to average in macro F1).
        resamples: how many resamples to draw.
        confidence: the interval's coverage, in (0, 1).
        seed: the resampling seed; the same inputs and seed give the same intervals.

    Returns:
        The intervals, each with the difference on all rows; values rounded to 6 decimals.

    Raises:
        DataError: if the three sequences differ in length, are empty, or ``labels`` is empty.
        IntentuneError: if ``resamples`` < 1 or ``confidence`` is not in (0, 1).
    """
    n = len(y_true)
    if not (n == len(pred_a) == len(pred_b)):
        raise DataError(f"paired bootstrap needs one answer per row: {n} true labels, {len(pred_a)} and {len(pred_b)}")
    if n == 0 or not labels:
        raise DataError("paired bootstrap needs at least one evaluation row and one label")
    if resamples < 1 or not 0.0 < confidence < 1.0:
        raise IntentuneError(f"resamples must be >= 1 and confidence in (0, 1); got {resamples} and {confidence}")
    labels = list(labels)
    truth, a, b = _one_hot(y_true, labels), _one_hot(pred_a, labels), _one_hot(pred_b, labels)
    right_a = np.asarray([t == p for t, p in zip(y_true, pred_a)], dtype=np.float64)
    right_b = np.asarray([t == p for t, p in zip(y_true, pred_b)], dtype=np.float64)
    # Column blocks of one matrix, so one product per chunk scores every metric of both models:
    # [correct A, correct B, true one-hot, A one-hot, B one-hot, hit A one-hot, hit B one-hot]
    k = len(labels)
    # float32 holds every count exactly (all are whole numbers <= n) at half the memory.
    columns = np.column_stack([right_a, right_b, truth, a, b, truth * a, truth * b]).astype(np.float32)  # (n, 2+5k)

    def scores(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Accuracy, macro F1 and per-label F1 differences for rows weighted by ``counts`` (draws, n)."""
        totals = (counts @ columns).astype(np.float64)  # (draws, 2 + 5k)
        accuracy = (totals[:, 1] - totals[:, 0]) / n
        support, predicted_a, predicted_b, hit_a, hit_b = (totals[:, 2 + i * k : 2 + (i + 1) * k] for i in range(5))
        f1 = _f1(hit_b, support, predicted_b) - _f1(hit_a, support, predicted_a)  # (draws, k)
        return accuracy, f1.mean(axis=1), f1

    observed = scores(np.ones((1, n), dtype=np.float32))
    rng = np.random.default_rng(seed)
    chunk = max(1, _CELLS_PER_CHUNK // n)
    drawn: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for start in range(0, resamples, chunk):
        size = min(chunk, resamples - start)
        rows = rng.integers(0, n, size=(size, n)) + n * np.arange(size)[:, None]  # offset per resample
        counts = np.bincount(rows.ravel(), minlength=size * n).reshape(size, n).astype(np.float32)  # draws per row
        drawn.append(scores(counts))
    accuracy, macro, per_label = (np.concatenate(parts) for parts in zip(*drawn))
    tail = 100 * (1 - confidence) / 2

    def interval(point: float, samples: np.ndarray) -> Interval:
        low, high = np.percentile(samples, [tail, 100 - tail])
        return Interval(round(float(point), 6), round(float(low), 6), round(float(high), 6))

    return BootstrapResult(
        accuracy=interval(observed[0][0], accuracy),
        macro_f1=interval(observed[1][0], macro),
        per_intent_f1={label: interval(observed[2][0, j], per_label[:, j]) for j, label in enumerate(labels)},
        resamples=resamples,
        confidence=confidence,
        seed=seed,
    )


def _one_hot(values: Sequence[str], labels: list[str]) -> np.ndarray:
    """``(len(values), len(labels))`` indicators; a value outside ``labels`` is an all-zero row."""
    index = {label: j for j, label in enumerate(labels)}
    out = np.zeros((len(values), len(labels)))
    for i, value in enumerate(values):
        if value in index:
            out[i, index[value]] = 1.0
    return out


def _f1(hits: np.ndarray, support: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """F1 = 2 TP / (true + predicted) per cell, 0 where a label has neither (scikit-learn's ``zero_division=0``)."""
    denominator = support + predicted
    return np.divide(2 * hits, denominator, out=np.zeros_like(hits), where=denominator > 0)
