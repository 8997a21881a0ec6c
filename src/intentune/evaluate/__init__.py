"""Evaluation: metrics (``metrics``) and the report they make (``report``), pictures (``plots``), the HTML report
(``html``), confidence calibration (``calibration``) and out-of-scope rejection (``oos``; its thresholds fitted in
``thresholds``); two runs' metrics compared (``compare``), and a model set beside the one it started from
(``previous``).
"""

from __future__ import annotations

from .html import render_html
from .metrics import evaluate_classifier, evaluate_logits, evaluate_predictions
from .multilabel import MultiLabelReport, evaluate_multilabel
from .plots import confusion_order, plot_confidence_histogram, plot_confusion_matrix, plot_coverage, plot_reliability
from .report import EvalReport

__all__ = [
    "EvalReport",
    "MultiLabelReport",
    "confusion_order",
    "evaluate_classifier",
    "evaluate_logits",
    "evaluate_multilabel",
    "evaluate_predictions",
    "plot_confidence_histogram",
    "plot_confusion_matrix",
    "plot_coverage",
    "plot_reliability",
    "render_html",
]
