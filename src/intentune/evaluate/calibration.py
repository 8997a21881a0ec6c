"""Confidence calibration: temperature scaling (Guo et al., 2017) and the expected calibration error.

A fine-tuned classifier is usually over-confident: of the answers it gives with 0.95, fewer than 95 % are
right. Temperature scaling divides the logits by one number ``T`` fitted on held-out data to minimise the
negative log-likelihood; it changes no prediction (the arg-max is the same), only how sure each one is.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

DEFAULT_BINS = 15


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of ``logits / temperature``, computed stably. ``(n, k) -> (n, k)``."""
    z = logits.astype(np.float64) / temperature
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def fit_temperature(
    logits: np.ndarray, label_ids: Sequence[int], *, bounds: tuple[float, float] = (0.05, 20.0)
) -> float:
    """The temperature that minimises the negative log-likelihood of the true labels.

    Args:
        logits: ``(n, k)`` raw scores of held-out examples.
        label_ids: the true class index of each row.
        bounds: the search interval; the NLL is convex in ``1/T``, so a bounded scalar search finds the optimum.

    Returns:
        ``T > 0``; 1.0 when there is nothing to fit (no rows).
    """
    from scipy.optimize import minimize_scalar

    y = np.asarray(label_ids, dtype=np.int64)
    if len(y) == 0:
        return 1.0
    z = logits.astype(np.float64)

    def nll(log_t: float) -> float:
        scaled = z / np.exp(log_t)
        scaled -= scaled.max(axis=1, keepdims=True)
        log_norm = np.log(np.exp(scaled).sum(axis=1))
        return float(np.mean(log_norm - scaled[np.arange(len(y)), y]))

    result = minimize_scalar(nll, bounds=(np.log(bounds[0]), np.log(bounds[1])), method="bounded")
    return round(float(np.exp(result.x)), 6)


def reliability_bins(confidences: np.ndarray, correct: np.ndarray, bins: int = DEFAULT_BINS) -> list[dict[str, Any]]:
    """Equal-width confidence bins over [0, 1]: for each non-empty bin its range, count, mean confidence and
    accuracy (a reliability diagram's points)."""
    confidences = np.asarray(confidences, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    # Bin i holds (edges[i], edges[i+1]]; a confidence of exactly 0 goes to the first bin.
    index = np.clip(np.searchsorted(edges, confidences, side="left") - 1, 0, bins - 1)
    table = []
    for i in range(bins):
        members = index == i
        if members.any():
            table.append(
                {
                    "lower": round(float(edges[i]), 6),
                    "upper": round(float(edges[i + 1]), 6),
                    "count": int(members.sum()),
                    "confidence": round(float(confidences[members].mean()), 6),
                    "accuracy": round(float(correct[members].mean()), 6),
                }
            )
    return table


def expected_calibration_error(confidences: np.ndarray, correct: np.ndarray, bins: int = DEFAULT_BINS) -> float:
    """ECE: the count-weighted mean gap between accuracy and mean confidence over equal-width bins.

    Example:
        Two answers at confidence 0.9, one right and one wrong: ECE = |0.5 - 0.9| = 0.4.
    """
    n = len(confidences)
    if n == 0:
        return 0.0
    table = reliability_bins(confidences, correct, bins)
    return round(sum(b["count"] * abs(b["accuracy"] - b["confidence"]) for b in table) / n, 6)


def calibration_summary(
    logits: np.ndarray, label_ids: Sequence[int], temperature: float, bins: int = DEFAULT_BINS
) -> dict[str, Any]:
    """ECE and reliability bins of the raw (T = 1) and the calibrated probabilities, for :class:`EvalReport`."""
    y = np.asarray(label_ids, dtype=np.int64)
    out: dict[str, Any] = {"temperature": float(temperature), "bins": bins}
    for name, t in (("before", 1.0), ("after", temperature)):
        probs = softmax(logits, t)
        confidences, correct = probs.max(axis=1), probs.argmax(axis=1) == y
        out[f"ece_{name}"] = expected_calibration_error(confidences, correct, bins)
        out[f"reliability_{name}"] = reliability_bins(confidences, correct, bins)
    return out
