"""Evaluation: metrics and reports (``metrics``), pictures (``plots``), confidence calibration (``calibration``)
and out-of-scope thresholds (``oos``).
"""

from __future__ import annotations

from .metrics import EvalReport, evaluate_classifier, evaluate_predictions
from .plots import plot_confusion_matrix

__all__ = ["EvalReport", "evaluate_classifier", "evaluate_predictions", "plot_confusion_matrix"]
