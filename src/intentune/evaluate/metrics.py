"""Metrics, confusion matrix and reports, shaped like scikit-learn's ``classification_report``.

Labels always come from the model's ``classes_``, so an intent missing from the test data still has a row.
Nothing here prints: a report renders itself as text, Markdown or JSON, and the caller decides where it goes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from .plots import plot_confusion_matrix

AVERAGES = ("macro avg", "weighted avg")


@dataclass
class EvalReport:
    """An evaluation of predictions against true labels.

    Attributes:
        labels: the intents, in the model's order (rows and columns of ``confusion``).
        report: ``classification_report``-style dict: one entry per intent with ``precision``, ``recall``,
            ``f1-score`` and ``support``, plus ``accuracy``, ``macro avg`` and ``weighted avg``.
        confusion: ``(n_labels, n_labels)`` counts, rows = true intent, columns = predicted.
        errors: misclassified examples (text, true intent, predicted intent, confidence).
        confidences: ``(n,)`` confidence of each prediction (calibrated when the model is), or None.
        correct: ``(n,)`` bool, whether each prediction was right, or None.
        calibration: None, or ``{"temperature", "bins", "ece_before", "ece_after", "reliability_before",
            "reliability_after"}``; ECE on this data with the raw (temperature 1) and the calibrated
            probabilities; each reliability list holds the non-empty equal-width bins as
            ``{"lower", "upper", "count", "confidence", "accuracy"}``.
        oos: None, or the out-of-scope summary: ``{"label", "threshold": {"global", "per_intent"},
            "in_scope_support", "oos_support", "in_scope_accuracy", "oos_precision", "oos_recall", "oos_f1",
            "without_rejection": {"in_scope_accuracy", "oos_precision", "oos_recall", "oos_f1"},
            "coverage_curve": [{"threshold", "coverage", "accuracy"}, ...]}``; the curve sweeps one global
            threshold over the in-scope rows (coverage = share answered, accuracy = on the answered ones).
    """

    labels: list[str]
    report: dict[str, Any]
    confusion: np.ndarray
    errors: list[dict[str, Any]] = field(default_factory=list)
    confidences: np.ndarray | None = None
    correct: np.ndarray | None = None
    calibration: dict[str, Any] | None = None
    oos: dict[str, Any] | None = None

    @property
    def accuracy(self) -> float:
        return float(self.report["accuracy"])

    def to_dict(self) -> dict[str, Any]:
        """Everything as plain JSON-ready values."""
        return {
            "accuracy": self.accuracy,
            "report": self.report,
            "labels": self.labels,
            "confusion_matrix": self.confusion.tolist(),
            "num_errors": len(self.errors),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def to_text(self, digits: int = 3) -> str:
        """A fixed-width table like scikit-learn's, then the accuracy and the most confused pairs."""
        width = max(len(x) for x in [*self.labels, *AVERAGES])
        head = f"{'':>{width}}  {'precision':>9}  {'recall':>9}  {'f1-score':>9}  {'support':>9}"

        def row(name: str) -> str:
            r = self.report[name]
            return (
                f"{name:>{width}}  {r['precision']:>9.{digits}f}  {r['recall']:>9.{digits}f}  "
                f"{r['f1-score']:>9.{digits}f}  {r['support']:>9d}"
            )

        total = self.report["macro avg"]["support"]
        accuracy = f"{'accuracy':>{width}}  {'':>9}  {'':>9}  {self.accuracy:>9.{digits}f}  {total:>9d}"
        lines = [head, "", *map(row, self.labels), "", accuracy, *map(row, AVERAGES)]
        pairs = self.confused_pairs()
        if pairs:
            lines += ["", "most confused (true -> predicted: count):"]
            lines += [f"  {t} -> {p}: {n}" for t, p, n in pairs]
        return "\n".join(lines)

    def to_markdown(self, digits: int = 3) -> str:
        """Markdown: the metrics table, the confusion matrix and the most confused pairs."""
        lines = [
            f"**Accuracy: {self.accuracy:.{digits}f}** ({self.report['macro avg']['support']} examples)",
            "",
            "| intent | precision | recall | f1-score | support |",
            "|---|---:|---:|---:|---:|",
        ]
        for name in [*self.labels, *AVERAGES]:
            row = self.report[name]
            label = f"*{name}*" if name in AVERAGES else f"`{name}`"
            lines.append(
                f"| {label} | {row['precision']:.{digits}f} | {row['recall']:.{digits}f} | "
                f"{row['f1-score']:.{digits}f} | {row['support']} |"
            )
        lines += ["", "Confusion matrix (rows: true intent, columns: predicted):", ""]
        lines.append("| true \\ predicted | " + " | ".join(f"`{x}`" for x in self.labels) + " |")
        lines.append("|---|" + "---:|" * len(self.labels))
        for name, row in zip(self.labels, self.confusion):
            lines.append(f"| `{name}` | " + " | ".join(str(int(v)) for v in row) + " |")
        pairs = self.confused_pairs()
        if pairs:
            lines += ["", "Most confused pairs:", ""]
            lines += [f"- `{t}` predicted as `{p}`: {n}" for t, p, n in pairs]
        return "\n".join(lines)

    def confused_pairs(self, top: int = 10) -> list[tuple[str, str, int]]:
        """The largest off-diagonal cells of the confusion matrix, largest first."""
        off = self.confusion.copy()
        np.fill_diagonal(off, 0)
        cells = [(int(off[i, j]), i, j) for i, j in zip(*np.nonzero(off))]
        cells.sort(key=lambda c: (-c[0], c[1], c[2]))
        return [(self.labels[i], self.labels[j], n) for n, i, j in cells[:top]]

    def save(self, directory: str | Path, *, extra: dict[str, Any] | None = None) -> dict[str, Path]:
        """Write ``metrics.json``, ``report.md``, ``errors.jsonl`` and ``confusion_matrix.png`` into a folder.

        Args:
            directory: the folder (created if missing).
            extra: more JSON-ready facts for ``metrics.json`` (run details, data sizes).

        Returns:
            What was written, by name.
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        paths = {
            "metrics": directory / "metrics.json",
            "report": directory / "report.md",
            "errors": directory / "errors.jsonl",
            "confusion_matrix": directory / "confusion_matrix.png",
        }
        paths["metrics"].write_text(json.dumps({**self.to_dict(), **(extra or {})}, indent=2), encoding="utf-8")
        paths["report"].write_text("# Evaluation report\n\n" + self.to_markdown() + "\n", encoding="utf-8")
        paths["errors"].write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in self.errors), "utf-8")
        plot_confusion_matrix(self.confusion, self.labels, paths["confusion_matrix"])
        return paths


def evaluate_predictions(
    y_true: Sequence[str],
    y_pred: Sequence[str],
    labels: Sequence[str],
    *,
    texts: Sequence[str] | None = None,
    confidences: Sequence[float] | None = None,
) -> EvalReport:
    """Score predictions against true intents.

    Args:
        y_true: the true intents.
        y_pred: the predicted intents.
        labels: every intent the model knows (``classes_``), in order.
        texts: the utterances, to list the misclassified ones.
        confidences: the probability of each prediction.

    Raises:
        DataError: if ``y_true`` holds intents the model does not know, or the lengths differ.
    """
    from sklearn.metrics import classification_report, confusion_matrix

    labels = list(labels)
    if len(y_true) != len(y_pred):
        raise DataError(f"{len(y_true)} true labels but {len(y_pred)} predictions")
    unknown = sorted(set(y_true) - set(labels))
    if unknown:
        raise DataError(
            f"the evaluation data has intents the model was not trained on: {', '.join(unknown)}; "
            "remove those rows or retrain with them"
        )
    report = classification_report(y_true, y_pred, labels=labels, output_dict=True, zero_division=0)
    report = {
        k: ({m: _plain(m, v) for m, v in row.items()} if isinstance(row, dict) else float(row))
        for k, row in report.items()
    }
    confusion = confusion_matrix(y_true, y_pred, labels=labels)
    errors = []
    for i, (t, p) in enumerate(zip(y_true, y_pred)):
        if t != p:
            errors.append(
                {
                    "index": i,
                    "text": texts[i] if texts is not None else None,
                    "true": t,
                    "predicted": p,
                    "confidence": round(float(confidences[i]), 4) if confidences is not None else None,
                }
            )
    errors.sort(key=lambda e: -(e["confidence"] or 0.0))
    return EvalReport(labels, report, confusion, errors)


def evaluate_classifier(classifier: Any, texts: Sequence[str], labels: Sequence[str]) -> EvalReport:
    """Predict ``texts`` with a fitted classifier and score against ``labels``."""
    probs = classifier.predict_proba(texts)
    predicted = [classifier.classes_[i] for i in probs.argmax(axis=1)]
    return evaluate_predictions(labels, predicted, classifier.classes_, texts=texts, confidences=probs.max(axis=1))


def _plain(metric: str, value: Any) -> int | float:
    return int(value) if metric == "support" else round(float(value), 6)
