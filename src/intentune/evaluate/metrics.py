"""Metrics, confusion matrix and reports, shaped like scikit-learn's ``classification_report``.

Labels always come from the model's ``classes_``, so an intent missing from the test data still has a row. The
macro and weighted averages are over those intents, plus the out-of-scope label when the data has out-of-scope
rows; other rows (an out-of-scope label the data has no rows of, intents the model was not trained on) are shown
but left out of the averages. Nothing here prints: a report renders itself as text, Markdown or JSON, and the
caller decides where it goes.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from ..errors import DataError
from .multilabel import MultiLabelReport, evaluate_multilabel
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
MAX_NAMED_INTENTS = 20  # intents named in a warning before "and N more"


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


def evaluate_predictions(
    y_true: Sequence[str],
    y_pred: Sequence[str],
    labels: Sequence[str],
    *,
    texts: Sequence[str] | None = None,
    confidences: Sequence[float] | None = None,
    oos_label: str | None = None,
) -> EvalReport:
    """Score predictions against true intents.

    Every intent in ``labels`` has a row, and so has every other label in the data: the out-of-scope label, true
    intents the model was not trained on (their rows count as errors; ``unknown_intents`` and ``warnings`` name
    them) and predicted labels outside ``labels``. The macro and weighted averages are over ``labels`` and the
    out-of-scope label, the latter only when ``y_true`` holds it: a row with no examples in the data (F1 0 by
    convention) would otherwise drag the macro average down whenever rejection fires.

    Args:
        y_true: the true intents.
        y_pred: the predicted intents.
        labels: every intent the model knows (``classes_``), in order.
        texts: the utterances, to list the misclassified ones.
        confidences: the probability of each prediction.
        oos_label: the model's out-of-scope label, or None when it has none.

    Raises:
        DataError: if the lengths differ.

    Example:
        >>> r = evaluate_predictions(["a", "b", "z"], ["a", "b", "a"], ["a", "b"])
        >>> r.unknown_intents, round(r.accuracy, 3)
        ({'z': 1}, 0.667)
    """
    from sklearn.metrics import confusion_matrix

    if len(y_true) != len(y_pred):
        raise DataError(f"{len(y_true)} true labels but {len(y_pred)} predictions")
    rows, averaged, unknown = _report_labels(y_true, y_pred, labels, oos_label)
    report = _classification_report(y_true, y_pred, rows, averaged)
    confusion = confusion_matrix(y_true, y_pred, labels=rows)
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
    left_out = [x for x in rows if x not in averaged]
    warnings = [_unknown_warning(unknown)] if unknown else []
    return EvalReport(
        rows, report, confusion, errors, unknown_intents=unknown, averages_leave_out=left_out, warnings=warnings
    )


def _report_labels(
    y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str], oos_label: str | None
) -> tuple[list[str], list[str], dict[str, int]]:
    """The report's rows, the labels the averages are over, and the rows per true intent the model lacks.

    Rows: ``labels``, then the out-of-scope label if the data or the answers hold it, then the unknown true
    intents, then any other predicted label, so the report covers every label (scikit-learn otherwise swaps
    ``accuracy`` for ``micro avg``).
    """
    known, true_set, pred_set = set(labels), set(y_true), set(y_pred)
    unknown = {x: n for x, n in sorted(Counter(y_true).items()) if x not in known and x != oos_label}
    rows = list(labels)
    if oos_label is not None and oos_label not in known and oos_label in true_set | pred_set:
        rows.append(oos_label)
    rows += list(unknown)
    rows += sorted(pred_set - set(rows))
    averaged = [x for x in rows if (x in known and x != oos_label) or (x == oos_label and x in true_set)]
    return rows, averaged, unknown


def _classification_report(
    y_true: Sequence[str], y_pred: Sequence[str], rows: list[str], averaged: list[str]
) -> dict[str, Any]:
    """scikit-learn's ``classification_report`` dict over ``rows``, with the averages over ``averaged`` only."""
    from sklearn.metrics import classification_report

    def plain(report: dict[str, Any]) -> dict[str, Any]:
        return {
            k: ({m: _plain(m, v) for m, v in row.items()} if isinstance(row, dict) else float(row))
            for k, row in report.items()
        }

    report = plain(classification_report(y_true, y_pred, labels=rows, output_dict=True, zero_division=0))
    if averaged and averaged != rows:
        # Per-label scores do not depend on the label list, so only the averages change.
        subset = plain(classification_report(y_true, y_pred, labels=averaged, output_dict=True, zero_division=0))
        report.update({name: subset[name] for name in AVERAGES})
    return report


def _unknown_warning(unknown: dict[str, int]) -> str:
    """One sentence naming the evaluation intents the model lacks, their row count, and what to do."""
    names = list(unknown)
    shown = ", ".join(names[:MAX_NAMED_INTENTS])
    if len(names) > MAX_NAMED_INTENTS:
        shown += f" and {len(names) - MAX_NAMED_INTENTS} more"
    rows = sum(unknown.values())
    one = len(names) == 1
    return (
        f"{len(names)} intent{'' if one else 's'} in the evaluation data {'is' if one else 'are'} not among the "
        f"model's intents: {shown} ({rows} row{'' if rows == 1 else 's'}); {'it counts' if one else 'they count'} "
        f"as errors (add training examples for {'it' if one else 'them'}, or drop those rows)"
    )


def evaluate_classifier(classifier: Any, texts: Sequence[str], labels: Sequence[str]) -> EvalReport | MultiLabelReport:
    """Predict ``texts`` with a fitted classifier (its calibration and out-of-scope rejection included) and score
    against ``labels``; rows labelled with the model's out-of-scope label count as out-of-scope examples.

    Rows whose intent the model was not trained on do not stop the evaluation: they count as errors and the
    report names them (``report.unknown_intents``, and a sentence in ``report.warnings`` for the caller to log).
    A multi-label model gets a :class:`~intentune.evaluate.multilabel.MultiLabelReport`.
    """
    if getattr(classifier, "is_multi_label", False):
        return evaluate_multilabel_classifier(classifier, texts, labels)
    distance = getattr(classifier, "distance_", None)
    if distance is not None:
        logits, pooled = classifier.forward(texts, pooled=True)
        distances = distance.distances(pooled)
    else:
        logits, distances = classifier.decision_function(texts), None
    return evaluate_logits(
        logits,
        labels,
        classifier.classes_,
        texts=texts,
        temperature=getattr(classifier, "temperature_", 1.0),
        thresholds=getattr(classifier, "thresholds_", None),
        oos_label=classifier.config.oos.label,
        distances=distances,
    )


def evaluate_multilabel_classifier(classifier: Any, texts: Sequence[str], labels: Sequence[str]) -> MultiLabelReport:
    """Predict ``texts`` with a fitted multi-label classifier (its calibration and per-intent thresholds) and score
    the answered sets of intents against ``labels`` (``a+b`` labels; :func:`evaluate_multilabel`)."""
    probs = classifier.predict_proba(texts)
    found = [[d["intent"] for d in row["intents"]] for row in classifier.predict_details(texts)]
    return evaluate_multilabel(
        labels, found, classifier.classes_, separator=classifier.config.data.multi_label_separator,
        oos_label=classifier.config.oos.label, texts=texts, probs=probs,
        thresholds=list(classifier.intent_thresholds_.thresholds),
    )  # fmt: skip


def evaluate_logits(
    logits: np.ndarray,
    y_true: Sequence[str],
    classes: Sequence[str],
    *,
    texts: Sequence[str] | None = None,
    temperature: float = 1.0,
    thresholds: Any = None,
    oos_label: str = "oos",
    distances: np.ndarray | None = None,
) -> EvalReport:
    """Score raw logits: predictions after temperature scaling and rejection, plus the calibration summary (ECE
    before and after) and, when out-of-scope rows or rejection are involved, the out-of-scope summary.

    Args:
        logits: ``(n, len(classes))`` raw scores.
        y_true: the true intents; ``oos_label`` may appear even if it is not one of ``classes``, and so may
            intents the model lacks (see :func:`evaluate_predictions`).
        classes: the model's intents, in logit order.
        temperature: the model's calibration temperature.
        thresholds: the model's :class:`~intentune.evaluate.oos.Thresholds`, or None.
        distances: ``(n,)`` out-of-scope distances, needed when ``thresholds`` are on the distance score.
    """
    from .calibration import calibration_summary, softmax
    from .oos import apply_rejection, oos_summary

    classes = list(classes)
    probs = softmax(logits, temperature)
    answers, confidences, _ = apply_rejection(classes, probs, thresholds, oos_label, distances)
    # The out-of-scope label gets a row when the data has it or the model answered it (rejection), and counts in
    # the averages only when the data has it.
    report = evaluate_predictions(y_true, answers, classes, texts=texts, confidences=confidences, oos_label=oos_label)
    true = np.asarray(y_true, dtype=object)
    report.confidences = confidences
    report.correct = np.asarray(answers, dtype=object) == true
    index = {c: i for i, c in enumerate(classes)}
    known = np.array([y in index for y in y_true], dtype=bool)
    if known.any():
        ids = [index[y] for y in true[known]]
        report.calibration = calibration_summary(logits[known], ids, temperature)
    if oos_label in report.labels:
        report.oos = oos_summary(probs, true, classes, answers, thresholds, oos_label, distances)
    return report


def _plain(metric: str, value: Any) -> int | float:
    return int(value) if metric == "support" else round(float(value), 6)
