"""Pictures for reports: confusion-matrix heatmap (and, as they land, confidence histogram, reliability diagram,
coverage curve). Each function writes one PNG and returns nothing; matplotlib is used without pyplot (no global
state, no display needed).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


def plot_confusion_matrix(confusion: np.ndarray, labels: Sequence[str], path: str | Path) -> None:
    """A heatmap PNG of the confusion matrix, each row normalised by its true count, with counts in the cells."""
    from matplotlib.figure import Figure

    n = len(labels)
    size = max(4.0, min(0.45 * n + 2.5, 40.0))
    fig = Figure(figsize=(size, size * 0.9), dpi=100)
    ax = fig.add_subplot()
    totals = confusion.sum(axis=1, keepdims=True)
    share = np.divide(confusion, totals, out=np.zeros(confusion.shape, dtype=float), where=totals > 0)
    image = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of true intent")
    ax.set_xticks(range(n), labels=labels, rotation=45 if n < 30 else 90, ha="right" if n < 30 else "center")
    ax.set_yticks(range(n), labels=labels)
    ax.set_xlabel("predicted intent")
    ax.set_ylabel("true intent")
    if n <= 30:
        for i in range(n):
            for j in range(n):
                if confusion[i, j]:
                    color = "white" if share[i, j] > 0.5 else "black"
                    ax.text(j, i, str(int(confusion[i, j])), ha="center", va="center", color=color, fontsize=9)
    ax.set_title("Confusion matrix")
    fig.tight_layout()
    fig.savefig(str(path))


