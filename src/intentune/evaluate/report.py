"""The evaluation report of a single-label model (:class:`EvalReport`): accuracy, the per-intent table shaped like
scikit-learn's ``classification_report``, the confusion matrix and its most confused pairs, calibration and the
out-of-scope numbers, rendered as text, Markdown, JSON, HTML and pictures, and saved into a run folder.
:mod:`intentune.evaluate.metrics` computes it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from .oos import NOT_MEASURABLE, cost_text, fit_notes, is_measurable
from .plots import (
    MAX_CELL_COUNTS,
    confusion_order,
    plot_confidence_histogram,
    plot_confusion_matrix,
    plot_coverage,
    plot_reliability,
)

AVERAGES = ("macro avg", "weighted avg")


@dataclass
class EvalReport:
    """An evaluation of predictions against true labels.

    Attributes:
        labels: the rows and columns of ``confusion``: the model's intents in its order, then the out-of-scope
            label when the data or the answers hold it, then intents the model was not trained on.
        report: ``classification_report``-style dict: one entry per label with ``precision``, ``recall``,
            ``f1-score`` and ``support``, plus ``accuracy``, ``macro avg`` and ``weighted avg``; the averages
            leave out the labels in ``averages_leave_out``.
        confusion: ``(n_labels, n_labels)`` counts, rows = true intent, columns = predicted.
        errors: misclassified examples (text, true intent, predicted intent, confidence).
        confidences: ``(n,)`` confidence of each prediction (calibrated when the model is), or None.
        correct: ``(n,)`` bool, whether each prediction was right, or None.
        calibration: None, or ``{"temperature", "bins", "ece_before", "ece_after", "reliability_before",
            "reliability_after"}``; ECE on this data with the raw (temperature 1) and the calibrated
            probabilities; each reliability list holds the non-empty equal-width bins as
            ``{"lower", "upper", "count", "confidence", "accuracy"}``.
        oos: None, or the out-of-scope summary (:func:`intentune.evaluate.oos.oos_summary`): ``{"label",
            "threshold": {"score", "global", "per_intent"}, "in_scope_support", "oos_support", "oos_measurable",
            "in_scope_accuracy", "oos_precision", "oos_recall", "oos_f1", "without_rejection": {the same four},
            "coverage", "accuracy_drop", "stand_in_oos_rows" (when stand-ins chose the thresholds),
            "coverage_score", "coverage_curve": [{"threshold", "coverage", "accuracy"}, ...]}``; out-of-scope
            precision, recall and F1 are None when the data has no out-of-scope rows (``oos_measurable`` false);
            ``coverage`` is the share of in-scope rows answered with an intent and ``accuracy_drop`` what rejection
            costs in-scope accuracy; the curve sweeps one global threshold over the in-scope rows (coverage = share
            answered, accuracy = on the answered ones), on the score the model rejects by (``coverage_score``:
            confidence or distance).
        unknown_intents: rows per true intent the model was not trained on (``{intent: count}``); those rows
            count as errors.
        averages_leave_out: labels with a row but not in the macro and weighted averages: the out-of-scope label
            when the data has no out-of-scope rows, and the unknown intents.
        warnings: what a reader must know before trusting the numbers (unknown intents), for callers to log; the
            renderings show them first.
    """

    labels: list[str]
    report: dict[str, Any]
    confusion: np.ndarray
    errors: list[dict[str, Any]] = field(default_factory=list)
    confidences: np.ndarray | None = None
    correct: np.ndarray | None = None
    calibration: dict[str, Any] | None = None
    oos: dict[str, Any] | None = None
    unknown_intents: dict[str, int] = field(default_factory=dict)
    averages_leave_out: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def accuracy(self) -> float:
        return float(self.report["accuracy"])

    @property
    def support(self) -> int:
        """The number of evaluated rows (the averages' support leaves out the rows of ``averages_leave_out``)."""
        return sum(int(self.report[name]["support"]) for name in self.labels)

    def to_dict(self) -> dict[str, Any]:
        """Everything as plain JSON-ready values; ``calibration``, ``oos``, ``unknown_intents``,
        ``averages_leave_out`` and ``warnings`` only when set."""
        out = {
            "accuracy": self.accuracy,
            "report": self.report,
            "labels": self.labels,
            "confusion_matrix": self.confusion.tolist(),
            "num_errors": len(self.errors),
        }
        for name in ("calibration", "oos", "unknown_intents", "averages_leave_out", "warnings"):
            if getattr(self, name):
                out[name] = self._jsonable(getattr(self, name))
        return out

    @staticmethod
    def _jsonable(value: Any) -> Any:
        """``value`` with numpy arrays and scalars as lists and Python numbers, and NaN or infinity as None."""
        if isinstance(value, dict):
            return {str(k): EvalReport._jsonable(v) for k, v in value.items()}
        if isinstance(value, list | tuple | np.ndarray):
            return [EvalReport._jsonable(v) for v in value]
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, float) and not np.isfinite(value):
            return None
        return value

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def to_text(self, digits: int = 3) -> str:
        """The warnings, a fixed-width table like scikit-learn's, then the accuracy, a few lines on calibration and
        out-of-scope detection when the report has them, and the most confused pairs."""
        width = max(len(x) for x in [*self.labels, *AVERAGES])
        head = f"{'':>{width}}  {'precision':>9}  {'recall':>9}  {'f1-score':>9}  {'support':>9}"

        def row(name: str) -> str:
            r = self.report[name]
            return (
                f"{name:>{width}}  {r['precision']:>9.{digits}f}  {r['recall']:>9.{digits}f}  "
                f"{r['f1-score']:>9.{digits}f}  {r['support']:>9d}"
            )

        accuracy = f"{'accuracy':>{width}}  {'':>9}  {'':>9}  {self.accuracy:>9.{digits}f}  {self.support:>9d}"
        lines = [f"warning: {w}" for w in self.warnings] + [""] if self.warnings else []
        lines += [head, "", *map(row, self.labels), "", accuracy, *map(row, AVERAGES)]
        if self.averages_leave_out:
            lines.append(f"(macro and weighted averages leave out {', '.join(self.averages_leave_out)})")
        lines += self._text_summary(digits)
        pairs = self.confused_pairs()
        if pairs:
            lines += ["", "most confused (true -> predicted: count):"]
            lines += [f"  {t} -> {p}: {n}" for t, p, n in pairs]
        return "\n".join(lines)

    def _text_summary(self, digits: int) -> list[str]:
        """Short lines on calibration and out-of-scope detection, when the report has them."""
        lines = []
        if (cal := self.calibration) is not None:
            lines.append(
                f"calibration: temperature {cal['temperature']:.{digits}f}, ECE {cal['ece_before']:.{digits}f} -> "
                f"{cal['ece_after']:.{digits}f} (raw -> calibrated, {cal['bins']} bins)"
            )
        if (oos := self.oos) is not None:
            if is_measurable(oos):
                lines += [
                    f"out of scope ({oos['label']}): {self._oos_scores(oos, digits)}",
                    f"  without rejection: {self._oos_scores(oos['without_rejection'], digits)}",
                ]
            else:
                lines.append(f"out of scope ({oos['label']}): {NOT_MEASURABLE.format(label=oos['label'])}")
            if cost := cost_text(oos, digits):
                lines.append(f"  rejection cost: {cost}")
            lines.append(f"  rejection thresholds: {self.thresholds_text(digits)}")
            lines += [f"  {note}" for note in fit_notes(oos)]
        return ["", *lines] if lines else []

    @staticmethod
    def _oos_scores(r: dict[str, Any], digits: int) -> str:
        return (
            f"in-scope accuracy {r['in_scope_accuracy']:.{digits}f}, OOS precision {r['oos_precision']:.{digits}f}, "
            f"recall {r['oos_recall']:.{digits}f}, F1 {r['oos_f1']:.{digits}f}"
        )

    def thresholds_text(self, digits: int = 3) -> str:
        """The rejection thresholds in words: the score they apply to, the global one and how many intents have
        their own."""
        threshold = (self.oos or {}).get("threshold") or {}
        glob = threshold.get("global")
        per_intent = len(threshold.get("per_intent") or {})
        score = threshold.get("score") or "confidence"
        if glob is None:
            text = "no global one"
        elif score == "distance":
            text = f"distance from the nearest intent above {glob:.{digits}f}"
        else:
            text = f"confidence below {glob:.{digits}f}"
        return f"{text}, per-intent for {per_intent} intent{'' if per_intent == 1 else 's'}"

    def to_markdown(self, digits: int = 3) -> str:
        """Markdown: the warnings, the metrics table, the confusion matrix (above 30 intents, a pointer to its
        picture), the most confused pairs, and sections on calibration and out-of-scope detection when the report
        has them."""
        parts = [f"> **Warning:** {w}" for w in self.warnings]
        parts += [self._markdown_metrics(digits), self._markdown_confusion(), self._markdown_pairs()]
        if self.calibration is not None:
            parts.append(self._markdown_calibration(digits))
        if self.oos is not None:
            parts.append(self._markdown_oos(digits))
        return "\n\n".join(p for p in parts if p)

    def _markdown_metrics(self, digits: int) -> str:
        lines = [
            f"**Accuracy: {self.accuracy:.{digits}f}** ({self.support} examples)",
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
        if self.averages_leave_out:
            lines += [
                "",
                f"Macro and weighted averages leave out {', '.join(f'`{x}`' for x in self.averages_leave_out)}.",
            ]
        return "\n".join(lines)

    def _markdown_confusion(self) -> str:
        """The confusion matrix as a table; above 30 intents, a pointer to ``confusion_matrix.png`` instead."""
        n = len(self.labels)
        if n > MAX_CELL_COUNTS:
            shown = len(confusion_order(self.confusion))
            return (
                f"Confusion matrix: {n} intents are too many for a table; `confusion_matrix.png` shows the {shown} "
                "intents involved in an error, confused intents side by side."
            )
        lines = ["Confusion matrix (rows: true intent, columns: predicted):", ""]
        lines.append("| true \\ predicted | " + " | ".join(f"`{x}`" for x in self.labels) + " |")
        lines.append("|---|" + "---:|" * n)
        for name, row in zip(self.labels, self.confusion):
            lines.append(f"| `{name}` | " + " | ".join(str(int(v)) for v in row) + " |")
        return "\n".join(lines)

    def _markdown_pairs(self) -> str:
        pairs = self.confused_pairs(top=10 if len(self.labels) <= MAX_CELL_COUNTS else 20)
        if not pairs:
            return ""
        lines = ["Most confused pairs:", "", "| true intent | predicted as | count |", "|---|---|---:|"]
        return "\n".join(lines + [f"| `{t}` | `{p}` | {n} |" for t, p, n in pairs])

    def _markdown_calibration(self, digits: int) -> str:
        cal = self.calibration or {}
        t = f"{cal['temperature']:.{digits}f}"
        return "\n".join(
            [
                "## Calibration",
                "",
                f"Temperature scaling with T = {t}. Expected calibration error (ECE, {cal['bins']} equal-width "
                "confidence bins) on this data:",
                "",
                "| probabilities | ECE |",
                "|---|---:|",
                f"| raw (T = 1) | {cal['ece_before']:.{digits}f} |",
                f"| calibrated (T = {t}) | {cal['ece_after']:.{digits}f} |",
            ]
        )

    def _markdown_oos(self, digits: int) -> str:
        oos = self.oos or {}
        if is_measurable(oos):
            keys = ("in_scope_accuracy", "oos_precision", "oos_recall", "oos_f1")
            header = "| | in-scope accuracy | OOS precision | OOS recall | OOS F1 |\n|---|---:|---:|---:|---:|"
            intro = f"{oos['in_scope_support']} in-scope and {oos['oos_support']} out-of-scope examples."
        else:
            keys = ("in_scope_accuracy",)
            header = "| | in-scope accuracy |\n|---|---:|"
            intro = f"{oos['in_scope_support']} in-scope examples; {NOT_MEASURABLE.format(label=oos['label'])}."

        def row(name: str, r: dict[str, Any]) -> str:
            return f"| {name} | " + " | ".join(f"{r[k]:.{digits}f}" for k in keys) + " |"

        lines = ["## Out of scope", "", f"Out-of-scope label `{oos['label']}`: {intro}", "", header]
        lines += [row("with rejection", oos), row("without rejection", oos["without_rejection"]), ""]
        if cost := cost_text(oos, digits):
            lines += [f"Rejection cost: {cost}.", ""]
        lines.append(f"Rejection thresholds: {self.thresholds_text(digits)}.")
        for note in fit_notes(oos):
            lines += ["", note[0].upper() + note[1:] + "."]
        return "\n".join(lines)

    def confused_pairs(self, top: int = 10) -> list[tuple[str, str, int]]:
        """The largest off-diagonal cells of the confusion matrix, largest first."""
        off = self.confusion.copy()
        np.fill_diagonal(off, 0)
        cells = [(int(off[i, j]), i, j) for i, j in zip(*np.nonzero(off))]
        cells.sort(key=lambda c: (-c[0], c[1], c[2]))
        return [(self.labels[i], self.labels[j], n) for n, i, j in cells[:top]]

    def figures(self) -> dict[str, Callable[[str | Path | BinaryIO], None]]:
        """The pictures this report has the data for, by name (also their file name without ``.png``): the
        confusion matrix always, the confidence histogram, reliability diagram and coverage curve when the
        report has confidences, calibration and out-of-scope results. Each draws a PNG to a path or binary file.
        """
        figures = {"confusion_matrix": partial(plot_confusion_matrix, self.confusion, self.labels)}
        if self.confidences is not None and self.correct is not None:
            figures["confidence_histogram"] = partial(plot_confidence_histogram, self.confidences, self.correct)
        if self.calibration is not None:
            figures["reliability"] = partial(plot_reliability, self.calibration)
        if self.oos is not None:
            figures["coverage"] = partial(plot_coverage, self.oos)
        return figures

    def save(self, directory: str | Path, *, extra: dict[str, Any] | None = None) -> dict[str, Path]:
        """Write the report files into a folder: ``metrics.json``, ``report.md``, ``report.html`` (self-contained),
        ``errors.jsonl``, and one PNG per picture in :meth:`figures` (``confusion_matrix.png`` always).

        Args:
            directory: the folder (created if missing).
            extra: more JSON-ready facts for ``metrics.json`` and the HTML report (run details, data sizes).

        Returns:
            What was written, by name (``metrics``, ``report``, ``html``, ``errors`` and the picture names).
        """
        from .html import render_html

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        paths = {
            "metrics": directory / "metrics.json",
            "report": directory / "report.md",
            "html": directory / "report.html",
            "errors": directory / "errors.jsonl",
        }
        paths["metrics"].write_text(json.dumps({**self.to_dict(), **(extra or {})}, indent=2), encoding="utf-8")
        paths["report"].write_text("# Evaluation report\n\n" + self.to_markdown() + "\n", encoding="utf-8")
        paths["errors"].write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in self.errors), "utf-8")
        for name, draw in self.figures().items():
            paths[name] = directory / f"{name}.png"
            draw(paths[name])
        images = {name: paths[name].read_bytes() for name in self.figures()}
        paths["html"].write_text(render_html(self, extra=extra, images=images), encoding="utf-8")
        return paths


__all__ = ["AVERAGES", "EvalReport"]
