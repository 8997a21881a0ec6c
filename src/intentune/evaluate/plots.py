"""Pictures for reports: confusion-matrix heatmap, confidence histogram, reliability diagram and coverage curve.

Each ``plot_*`` function writes one PNG (to a path or a binary file object) and returns nothing; matplotlib is
used without pyplot (no global state, no display needed).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

MAX_CELL_COUNTS = 30  # above this many intents the heatmap shows only the intents with an error, without counts

Target = str | Path | BinaryIO


def confusion_order(confusion: np.ndarray) -> list[int]:
    """The intents involved in at least one error (as true or predicted intent), ordered so that intents confused
    with each other sit together.

    The order is the leaf order of an average-linkage clustering of the symmetric off-diagonal confusion
    ``C + C.T`` (distance ``1 / (1 + count)``), with optimal leaf ordering; a mutually confused pair is merged
    before anything else, so it always ends up side by side.

    Args:
        confusion: ``(n, n)`` counts, rows = true intent, columns = predicted.

    Returns:
        Row/column indices into ``confusion``; empty when there is no error.
    """
    from scipy.cluster.hierarchy import leaves_list, linkage, optimal_leaf_ordering
    from scipy.spatial.distance import squareform

    both = np.asarray(confusion, dtype=float)
    both = both + both.T
    np.fill_diagonal(both, 0.0)
    involved = np.flatnonzero(both.sum(axis=1) > 0)
    if len(involved) <= 2:
        return [int(i) for i in involved]
    distance = 1.0 / (1.0 + both[np.ix_(involved, involved)])
    np.fill_diagonal(distance, 0.0)
    condensed = squareform(distance, checks=False)
    tree = optimal_leaf_ordering(linkage(condensed, method="average"), condensed)
    return [int(involved[i]) for i in leaves_list(tree)]


def plot_confusion_matrix(confusion: np.ndarray, labels: Sequence[str], path: Target) -> None:
    """A heatmap PNG of the confusion matrix, each row normalised by its true count.

    Up to 30 intents: every intent, with the counts in the cells. More: only the intents involved in at least
    one error (see :func:`confusion_order`), grouped so that confused intents sit together, on a square-root
    colour scale so that small error shares stay visible; the title says how many intents are shown.
    """
    from matplotlib.colors import Normalize, PowerNorm

    totals = confusion.sum(axis=1, keepdims=True)
    share = np.divide(confusion, totals, out=np.zeros(confusion.shape, dtype=float), where=totals > 0)
    n = len(labels)
    if n <= MAX_CELL_COUNTS:
        _heatmap(share, confusion, list(labels), Normalize(0.0, 1.0), "Confusion matrix", path)
        return
    order = confusion_order(confusion) or list(range(n))
    pick = np.ix_(order, order)
    title = f"Confusion matrix: {len(order)} of {n} intents\n(those with an error; confused intents side by side)"
    shown = confusion[pick] if len(order) <= MAX_CELL_COUNTS else None
    _heatmap(share[pick], shown, [labels[i] for i in order], PowerNorm(0.5, 0.0, 1.0), title, path)


def _heatmap(
    share: np.ndarray, counts: np.ndarray | None, labels: list[str], norm: Any, title: str, path: Target
) -> None:
    from matplotlib.figure import Figure

    n = len(labels)
    size = max(4.0, min(0.45 * n + 2.5, 40.0))
    fig = Figure(figsize=(size, size * 0.9), dpi=100)
    ax = fig.add_subplot()
    image = ax.imshow(share, cmap="Blues", norm=norm)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of true intent")
    ax.set_xticks(range(n), labels=labels, rotation=45 if n < 30 else 90, ha="right" if n < 30 else "center")
    ax.set_yticks(range(n), labels=labels)
    ax.set_xlabel("predicted intent")
    ax.set_ylabel("true intent")
    if counts is not None:
        for i, j in zip(*np.nonzero(counts)):
            color = "white" if share[i, j] > 0.5 else "black"
            ax.text(j, i, str(int(counts[i, j])), ha="center", va="center", color=color, fontsize=9)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, format="png")


def plot_confidence_histogram(confidences: np.ndarray, correct: np.ndarray, path: Target) -> None:
    """Two overlaid histograms over [0, 1]: the confidence of the right and of the wrong predictions."""
    from matplotlib.figure import Figure

    confidences = np.asarray(confidences, dtype=float)
    correct = np.asarray(correct, dtype=bool)
    fig = Figure(figsize=(7, 4), dpi=100)
    ax = fig.add_subplot()
    bins = np.linspace(0.0, 1.0, 21)
    for mask, name, color in ((correct, "correct", "tab:blue"), (~correct, "wrong", "tab:red")):
        ax.hist(confidences[mask], bins=bins, alpha=0.6, color=color, label=f"{name} ({int(mask.sum())})")
    ax.set_xlim(0.0, 1.0)
    ax.set_xlabel("confidence of the prediction")
    ax.set_ylabel("predictions")
    ax.set_title("Confidence of right and wrong predictions")
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, format="png")


def plot_reliability(calibration: dict[str, Any], path: Target) -> None:
    """A reliability diagram: accuracy against mean confidence per bin, before and after temperature scaling,
    with the diagonal of perfect calibration; marker area grows with the bin's count; ECE in the legend."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 6), dpi=100)
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="perfectly calibrated")
    temperature = calibration.get("temperature", 1.0)
    for when, name, color in (("before", "raw (T = 1)", "tab:red"), ("after", f"T = {temperature:.2f}", "tab:blue")):
        ece = calibration.get(f"ece_{when}")
        label = f"{name}, ECE {ece:.3f}" if ece is not None else name
        _reliability_points(ax, calibration.get(f"reliability_{when}") or [], label, color)
    ax.set_xlim(0.0, 1.0)
    ax.set_ylim(0.0, 1.0)
    ax.set_xlabel("mean confidence in bin")
    ax.set_ylabel("accuracy in bin")
    ax.set_title("Reliability diagram")
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, format="png")


def _reliability_points(ax: Any, bins: list[dict[str, Any]], label: str, color: str) -> None:
    x = [b["confidence"] for b in bins]
    y = [b["accuracy"] for b in bins]
    counts = np.array([b["count"] for b in bins], dtype=float)
    size = 20 + 180 * np.sqrt(counts / counts.max()) if len(counts) else 40
    ax.plot(x, y, color=color, linewidth=1, alpha=0.7)
    ax.scatter(x, y, s=size, color=color, alpha=0.7, label=label)


def plot_coverage(oos: dict[str, Any], path: Target) -> None:
    """Accuracy on the answered in-scope messages against the share answered (coverage), as one global threshold
    sweeps the score the model rejects by (confidence or distance); the fitted global threshold, when there is
    one, is marked."""
    from matplotlib.figure import Figure

    curve = oos.get("coverage_curve") or []
    fig = Figure(figsize=(7, 4.5), dpi=100)
    ax = fig.add_subplot()
    ax.plot([p["coverage"] for p in curve], [p["accuracy"] for p in curve], color="tab:blue", marker=".")
    threshold = (oos.get("threshold") or {}).get("global")
    if threshold is not None and curve:
        point = min(curve, key=lambda p: abs(p["threshold"] - threshold))
        x, y = point["coverage"], point["accuracy"]
        score = oos.get("coverage_score", "confidence")
        label = f"global {score} threshold {threshold:.3f}: coverage {x:.3f}, accuracy {y:.3f}"
        ax.scatter([x], [y], s=90, color="tab:red", zorder=3, label=label)
        ax.legend(loc="lower left")
    ax.set_xlim(0.0, 1.02)
    ax.set_xlabel("coverage (share of in-scope messages answered)")
    ax.set_ylabel("accuracy on the answered ones")
    ax.set_title(f"Coverage against accuracy (threshold on the {oos.get('coverage_score', 'confidence')})")
    fig.tight_layout()
    fig.savefig(path, format="png")
