"""The report of a multi-label evaluation (:func:`intentune.evaluate.multilabel.evaluate_multilabel`): subset
accuracy, the per-intent and averaged scores, the multi-intent and out-of-scope rows, co-occurrence of missed and
added intents, calibration of the (row, intent) cells, rendered as text, Markdown, JSON and HTML, and saved as a
folder of files.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from .multilabel_html import AVERAGES, CO_OCCURRENCE, ROW_KINDS, plot_cell_reliability, render_multilabel_html


@dataclass
class MultiLabelReport:
    """An evaluation of predicted sets of intents against true ones.

    Attributes:
        classes: the model's intents, in its probability-column order.
        report: ``classification_report``-style dict: one entry per intent in ``classes`` with ``precision``,
            ``recall``, ``f1-score`` and ``support`` (rows with the intent), plus ``micro avg``, ``macro avg``,
            ``weighted avg`` and ``samples avg``. The samples average scores a row with an empty true and an empty
            predicted set 1 (an out-of-scope row answered right), and an empty answer's precision 1.
        subset_accuracy: the share of rows whose predicted set is exactly the true set.
        hamming_loss: the share of wrong (row, intent) cells over the model's intents.
        rows: counts of ``single_intent``, ``multi_intent`` and ``out_of_scope`` rows.
        by_row_kind: for ``single_intent`` and ``multi_intent`` rows, ``{"rows", "subset_accuracy", "micro_f1"}``,
            or None when there are no such rows.
        oos: ``{"label", "support", "answered_empty", "recall", "precision", "in_scope_rejected"}``: out-of-scope
            rows, how many got no intent, recall and precision of the empty answer (None when not measurable: no
            out-of-scope rows, or no empty answer), and in-scope rows that got no intent.
        co_occurrence: ``{"missed": [...], "added": [...]}``, each ``{"intent", "alongside", "count"}``, most
            frequent first: in wrong rows, an intent missed while ``alongside`` was found, and an intent added
            while ``alongside`` was a true intent.
        errors: the wrong rows (index, text, true and predicted label, missed and added intents, and the highest
            probabilities when given).
        unanswerable: rows per true intent the model was not trained on; those rows count as wrong.
        calibration: None, or ``{"bins", "cells", "ece", "reliability"}``: every (row, intent) cell taken as a
            binary prediction with its probability; ``reliability`` holds the non-empty equal-width bins as
            ``{"lower", "upper", "count", "confidence", "accuracy"}`` (accuracy = share of cells that are true).
        thresholds: the model's per-intent thresholds, by intent, or None.
        warnings: what a reader must know before trusting the numbers; the renderings show them first.
    """

    classes: list[str]
    report: dict[str, Any]
    subset_accuracy: float
    hamming_loss: float
    rows: dict[str, int]
    by_row_kind: dict[str, dict[str, Any] | None]
    oos: dict[str, Any]
    co_occurrence: dict[str, list[dict[str, Any]]]
    errors: list[dict[str, Any]] = field(default_factory=list)
    unanswerable: dict[str, int] = field(default_factory=dict)
    calibration: dict[str, Any] | None = None
    thresholds: dict[str, float] | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def accuracy(self) -> float:
        """Subset accuracy, the counterpart of a single-label report's accuracy."""
        return self.subset_accuracy

    @property
    def support(self) -> int:
        """The number of evaluated rows."""
        return sum(self.rows.values())

    def to_dict(self) -> dict[str, Any]:
        """Everything as plain JSON-ready values; ``calibration`` and ``thresholds`` only when set."""
        out: dict[str, Any] = {
            "multi_label": True,
            "accuracy": self.accuracy,
            "subset_accuracy": self.subset_accuracy,
            "hamming_loss": self.hamming_loss,
            "micro": _summary(self.report["micro avg"]),
            "macro": _summary(self.report["macro avg"]),
            "report": self.report,
            "labels": self.classes,
            "rows": self.rows,
            "by_row_kind": self.by_row_kind,
            "oos": self.oos,
            "co_occurrence": self.co_occurrence,
            "unanswerable": self.unanswerable,
            "num_errors": len(self.errors),
            "warnings": self.warnings,
        }
        for name in ("calibration", "thresholds"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        return _jsonable(out)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def to_text(self, digits: int = 3) -> str:
        """A short console summary: warnings, subset accuracy, micro and macro F1, Hamming loss, the multi- and
        single-intent rows' numbers, out of scope, calibration and the most frequent missed pairs."""
        d, micro = digits, self.report["micro avg"]
        lines = [f"warning: {w}" for w in self.warnings] + [""] if self.warnings else []
        lines += [
            f"subset accuracy {self.accuracy:.{d}f} on {self.support} rows ({self.rows_text()})",
            f"micro F1 {micro['f1-score']:.{d}f} (precision {micro['precision']:.{d}f}, recall "
            f"{micro['recall']:.{d}f}), macro F1 {self.report['macro avg']['f1-score']:.{d}f}, "
            f"Hamming loss {self.hamming_loss:.{d}f}",
        ]
        for kind, name in reversed(ROW_KINDS.items()):
            if (r := self.by_row_kind.get(kind)) is not None:
                lines.append(
                    f"{name}: subset accuracy {r['subset_accuracy']:.{d}f}, micro F1 {r['micro_f1']:.{d}f}"
                    f" (rows: {r['rows']})"
                )
        lines.append(f"out of scope ({self.oos['label']}): {self.oos_text(d)}")
        if (cal := self.calibration) is not None:
            lines.append(f"calibration: ECE {cal['ece']:.{d}f} over {cal['cells']} intent cells ({cal['bins']} bins)")
        if missed := self.co_occurrence["missed"][:5]:
            lines += ["", "most often missed (intent, while finding: count):"]
            lines += [f"  {p['intent']}, while finding {p['alongside']}: {p['count']}" for p in missed]
        return "\n".join(lines)

    def rows_text(self) -> str:
        """How many rows of each kind, in words."""
        r = self.rows
        return f"{r['single_intent']} single-intent, {r['multi_intent']} multi-intent, {r['out_of_scope']} out of scope"

    def oos_text(self, digits: int = 3) -> str:
        """The out-of-scope numbers in one sentence."""
        o = self.oos

        def num(x: float | None) -> str:
            return "cannot be measured" if x is None else f"{x:.{digits}f}"

        return (
            f"recall {num(o['recall'])} ({o['answered_empty']} of {o['support']} answered with no intent), "
            f"precision {num(o['precision'])}; in-scope rows answered with no intent: {o['in_scope_rejected']}"
        )

    def to_markdown(self, digits: int = 3) -> str:
        """Markdown: the warnings, the summary, the per-intent table, the row kinds, out of scope, the co-occurring
        errors, the unanswerable intents and calibration."""
        d = digits
        parts = [f"> **Warning:** {w}" for w in self.warnings]
        parts.append(
            f"**Subset accuracy: {self.accuracy:.{d}f}** ({self.support} examples: {self.rows_text()}); "
            f"micro F1 {self.report['micro avg']['f1-score']:.{d}f}, macro F1 "
            f"{self.report['macro avg']['f1-score']:.{d}f}, Hamming loss {self.hamming_loss:.{d}f}."
        )
        parts += [self._markdown_intents(d), self._markdown_row_kinds(d)]
        parts.append(f"## Out of scope\n\nOut-of-scope label `{self.oos['label']}`: {self.oos_text(d)}.")
        for kind, (title, column) in CO_OCCURRENCE.items():
            if pairs := self.co_occurrence[kind]:
                lines = [f"{title}:", "", f"| intent | {column} | count |", "|---|---|---:|"]
                lines += [f"| `{p['intent']}` | `{p['alongside']}` | {p['count']} |" for p in pairs]
                parts.append("\n".join(lines))
        if self.unanswerable:
            lines = ["Intents the model was not trained on (their rows count as wrong):", "", "| intent | rows |"]
            parts.append("\n".join([*lines, "|---|---:|", *(f"| `{k}` | {n} |" for k, n in self.unanswerable.items())]))
        if (cal := self.calibration) is not None:
            parts.append(
                f"## Calibration\n\nExpected calibration error over {cal['cells']} (row, intent) cells, each a binary "
                f"prediction with its probability ({cal['bins']} equal-width bins): {cal['ece']:.{d}f}."
            )
        return "\n\n".join(p for p in parts if p)

    def _markdown_intents(self, d: int) -> str:
        thresholds = self.thresholds
        head = "| intent | precision | recall | f1-score | support |" + (" threshold |" if thresholds else "")
        lines = [head, "|---|---:|---:|---:|---:|" + ("---:|" if thresholds else "")]
        for name in [*self.classes, *AVERAGES]:
            r = self.report[name]
            label = f"*{name}*" if name in AVERAGES else f"`{name}`"
            row = f"| {label} | {r['precision']:.{d}f} | {r['recall']:.{d}f} | {r['f1-score']:.{d}f} | {r['support']} |"
            if thresholds:
                row += f" {thresholds[name]:.{d}f} |" if name in thresholds else " |"
            lines.append(row)
        return "\n".join(lines)

    def _markdown_row_kinds(self, d: int) -> str:
        lines = ["| rows | count | subset accuracy | micro F1 |", "|---|---:|---:|---:|"]
        for kind, name in ROW_KINDS.items():
            if (r := self.by_row_kind.get(kind)) is not None:
                lines.append(f"| {name} | {r['rows']} | {r['subset_accuracy']:.{d}f} | {r['micro_f1']:.{d}f} |")
        return "\n".join(lines) if len(lines) > 2 else ""

    def figures(self) -> dict[str, Callable[[str | Path | BinaryIO], None]]:
        """The pictures this report has the data for, by name (also their file name without ``.png``): the
        reliability diagram of the intent cells when the report has probabilities."""

        return {"reliability": partial(plot_cell_reliability, self.calibration)} if self.calibration else {}

    def save(self, directory: str | Path, *, extra: dict[str, Any] | None = None) -> dict[str, Path]:
        """Write ``metrics.json`` (with ``extra``), ``report.md``, ``report.html`` (self-contained),
        ``errors.jsonl`` and one PNG per picture in :meth:`figures` into a folder (created if missing); returns
        what was written, by name (``metrics``, ``report``, ``html``, ``errors`` and the picture names)."""

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        names = {"metrics": "metrics.json", "report": "report.md", "html": "report.html", "errors": "errors.jsonl"}
        paths = {key: directory / name for key, name in names.items()}
        paths["metrics"].write_text(json.dumps({**self.to_dict(), **(extra or {})}, indent=2), encoding="utf-8")
        paths["report"].write_text("# Evaluation report\n\n" + self.to_markdown() + "\n", encoding="utf-8")
        paths["errors"].write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in self.errors), "utf-8")
        images = {}
        for name, draw in self.figures().items():
            paths[name] = directory / f"{name}.png"
            draw(paths[name])
            images[name] = paths[name].read_bytes()
        paths["html"].write_text(render_multilabel_html(self, extra=extra, images=images), encoding="utf-8")
        return paths


def _summary(row: dict[str, Any]) -> dict[str, float]:
    return {"precision": row["precision"], "recall": row["recall"], "f1": row["f1-score"]}


def _jsonable(value: Any) -> Any:
    """``value`` with numpy arrays and scalars as lists and Python numbers, and NaN or infinity as None."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value
