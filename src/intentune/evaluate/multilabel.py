"""The evaluation of a multi-label model: messages that may carry several intents (``cancel_order+refund``).

A row is right when the predicted set of intents is exactly the true set (subset accuracy); an out-of-scope row has
the empty set, so it is right when nothing is predicted. Per-intent precision, recall and F1, the micro, macro,
weighted and samples averages and the Hamming loss come from scikit-learn's multi-label metrics over the model's
intents, shaped like ``classification_report`` so that :mod:`intentune.evaluate.compare` reads them as it reads a
single-label report. On top of them the report splits out the multi-intent rows (the ones a multi-label model is
for), the out-of-scope answers, which intents are missed or added alongside which others, rows no answer can get
right (an intent the model never learned), and, with probabilities, the calibration of every (row, intent) cell.
Nothing here prints: the report renders itself as text, Markdown, JSON or HTML, and the caller decides where it goes.
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
from ..labels import intent_sets, join_intents, multi_hot
from .calibration import DEFAULT_BINS, expected_calibration_error, reliability_bins
from .multilabel_html import AVERAGES, CO_OCCURRENCE, ROW_KINDS, plot_cell_reliability, render_multilabel_html

TOP_PAIRS = 20  # co-occurrence pairs kept per kind
TOP_PROBABILITIES = 3  # probabilities listed per wrong row
MAX_NAMED_INTENTS = 20  # intents named in a warning before "and N more"


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


def evaluate_multilabel(
    y_true: Sequence[str],
    predicted: Sequence[Sequence[str]],
    classes: Sequence[str],
    *,
    separator: str = "+",
    oos_label: str = "oos",
    texts: Sequence[str] | None = None,
    probs: np.ndarray | None = None,
    thresholds: Sequence[float] | None = None,
) -> MultiLabelReport:
    """Score predicted sets of intents against the true labels.

    Args:
        y_true: the labels as the data file has them: ``"a"``, ``"a+b"`` or the out-of-scope label.
        predicted: each row's predicted intents; an empty one means the row was answered out of scope.
        classes: the model's intents, in its probability-column order.
        separator: what joins the intents of a label.
        oos_label: the out-of-scope label (no intent: its rows have an empty true set).
        texts: the utterances, to list the wrong rows.
        probs: ``(n, len(classes))`` calibrated per-intent probabilities, for the calibration summary and the
            wrong rows' top probabilities.
        thresholds: the model's per-intent thresholds, in ``classes`` order, shown in the report.

    Raises:
        DataError: if the lengths or shapes differ, or a prediction names an intent outside ``classes``.

    Example:
        >>> r = evaluate_multilabel(["a+b", "a", "oos"], [["a", "b"], ["a", "b"], []], ["a", "b"])
        >>> round(r.accuracy, 3), r.by_row_kind["multi_intent"]["subset_accuracy"]
        (0.667, 1.0)
    """
    from sklearn.metrics import classification_report, hamming_loss, precision_recall_fscore_support

    classes, n = list(classes), len(y_true)
    true = [frozenset(s) for s in intent_sets(y_true, separator, oos_label)]
    pred = [frozenset(p) - {oos_label} for p in predicted]
    _check(n, pred, classes, texts, probs, thresholds)
    # One always-empty column more than the intents keeps scikit-learn in multi-label mode with a single intent
    # (an (n, 1) matrix reads as binary labels); ``labels`` leaves it out of every score.
    y, p = (np.pad(multi_hot(s, classes).astype(int), ((0, 0), (0, 1))) for s in (true, pred))
    k = len(classes)
    correct = np.array([t == q for t, q in zip(true, pred)], dtype=bool)
    if classes and n:
        report = classification_report(y, p, labels=range(k), target_names=classes, output_dict=True, zero_division=0)
        scores = precision_recall_fscore_support(y, p, labels=range(k), average="samples", zero_division=1)[:3]
        report["samples avg"] = {**dict(zip(("precision", "recall", "f1-score"), scores)), "support": y.sum()}
        report = _plain(report)
        hamming = round(float(hamming_loss(y[:, :k], p[:, :k])), 6)
    else:  # scikit-learn cannot score an empty matrix
        zero = {"precision": 0.0, "recall": 0.0, "f1-score": 0.0, "support": 0}
        report, hamming = {name: dict(zero) for name in [*classes, *AVERAGES]}, 0.0
    known = set(classes)
    unanswerable = dict(sorted(Counter(i for t in true for i in t if i not in known).items()))
    probabilities = None if probs is None else np.asarray(probs, dtype=np.float64)
    calibration = None
    if probabilities is not None and probabilities.size:
        cells, truth = probabilities.ravel(), y[:, :k].ravel()
        calibration = {"bins": DEFAULT_BINS, "cells": int(cells.size)}
        calibration["ece"] = expected_calibration_error(cells, truth, DEFAULT_BINS)
        calibration["reliability"] = reliability_bins(cells, truth, DEFAULT_BINS)
    sizes = np.array([len(t) for t in true], dtype=int)
    kinds = {"single_intent": sizes == 1, "multi_intent": sizes > 1}
    return MultiLabelReport(
        classes=classes,
        report=report,
        subset_accuracy=round(float(correct.mean()), 6) if n else 0.0,
        hamming_loss=hamming,
        rows={**{kind: int(rows.sum()) for kind, rows in kinds.items()}, "out_of_scope": int((sizes == 0).sum())},
        by_row_kind={kind: _row_kind(rows, y, p, correct) for kind, rows in kinds.items()},
        oos=_oos(true, pred, oos_label),
        co_occurrence=_co_occurrence(true, pred),
        errors=_errors(true, pred, correct, separator, oos_label, classes, texts, probabilities),
        unanswerable=unanswerable,
        calibration=calibration,
        thresholds=None if thresholds is None else {c: float(t) for c, t in zip(classes, thresholds)},
        warnings=[_unanswerable_warning(unanswerable)] if unanswerable else [],
    )


def _check(
    n: int,
    pred: list[frozenset[str]],
    classes: list[str],
    texts: Sequence[str] | None,
    probs: np.ndarray | None,
    thresholds: Sequence[float] | None,
) -> None:
    """Raise :class:`DataError` when the inputs do not fit together."""
    if len(pred) != n:
        raise DataError(f"{n} true labels but {len(pred)} predictions")
    if texts is not None and len(texts) != n:
        raise DataError(f"{n} true labels but {len(texts)} texts")
    if probs is not None and np.shape(probs) != (n, len(classes)):
        raise DataError(f"probabilities of shape {np.shape(probs)}, expected {(n, len(classes))}")
    if thresholds is not None and len(thresholds) != len(classes):
        raise DataError(f"{len(thresholds)} thresholds for {len(classes)} intents")
    if stray := sorted(set().union(*pred) - set(classes)):
        raise DataError(f"predicted intents that are not among the model's intents: {', '.join(stray)}")


def _row_kind(rows: np.ndarray, y: np.ndarray, p: np.ndarray, correct: np.ndarray) -> dict[str, Any] | None:
    """Subset accuracy and micro-F1 on the chosen rows, or None when none is chosen (``y`` and ``p`` end with the
    always-empty column)."""
    from sklearn.metrics import f1_score

    if not rows.any():
        return None
    micro = f1_score(y[rows], p[rows], labels=range(y.shape[1] - 1), average="micro", zero_division=0)
    accuracy = round(float(correct[rows].mean()), 6)
    return {"rows": int(rows.sum()), "subset_accuracy": accuracy, "micro_f1": round(float(micro), 6)}


def _oos(true: list[frozenset[str]], pred: list[frozenset[str]], label: str) -> dict[str, Any]:
    """How the empty answer fares: out-of-scope rows answered empty, and in-scope rows answered empty."""
    support = sum(1 for t in true if not t)
    hits = sum(1 for t, q in zip(true, pred) if not t and not q)
    empty = sum(1 for q in pred if not q)
    return {
        "label": label,
        "support": support,
        "answered_empty": hits,
        "recall": round(hits / support, 6) if support else None,
        "precision": round(hits / empty, 6) if empty else None,
        "in_scope_rejected": empty - hits,
    }


def _co_occurrence(true: list[frozenset[str]], pred: list[frozenset[str]]) -> dict[str, list[dict[str, Any]]]:
    """In wrong rows, how often each intent was missed while another was found, and added beside a true one."""
    missed: Counter[tuple[str, str]] = Counter()
    added: Counter[tuple[str, str]] = Counter()
    for t, q in zip(true, pred):
        if t != q:
            missed.update((m, f) for m in t - q for f in t & q)
            added.update((a, x) for a in q - t for x in t)

    def top(counts: Counter[tuple[str, str]]) -> list[dict[str, Any]]:
        pairs = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_PAIRS]
        return [{"intent": i, "alongside": a, "count": c} for (i, a), c in pairs]

    return {"missed": top(missed), "added": top(added)}


def _errors(
    true: list[frozenset[str]],
    pred: list[frozenset[str]],
    correct: np.ndarray,
    separator: str,
    oos_label: str,
    classes: list[str],
    texts: Sequence[str] | None,
    probs: np.ndarray | None,
) -> list[dict[str, Any]]:
    """The wrong rows in data order, with the highest probabilities when given."""
    errors = []
    for i in np.flatnonzero(~correct):
        t, q = true[i], pred[i]
        error = {
            "index": int(i),
            "text": texts[i] if texts is not None else None,
            "true": join_intents(t, separator, oos_label),
            "predicted": join_intents(q, separator, oos_label),
            "missed": sorted(t - q),
            "added": sorted(q - t),
        }
        if probs is not None:
            order = np.argsort(-probs[i], kind="stable")[:TOP_PROBABILITIES]
            error["probabilities"] = {classes[j]: round(float(probs[i, j]), 4) for j in order}
        errors.append(error)
    return errors


def _unanswerable_warning(unanswerable: dict[str, int]) -> str:
    """One sentence naming the true intents the model lacks, their row count, and what to do."""
    names, rows = list(unanswerable), sum(unanswerable.values())
    shown = ", ".join(names[:MAX_NAMED_INTENTS])
    if len(names) > MAX_NAMED_INTENTS:
        shown += f" and {len(names) - MAX_NAMED_INTENTS} more"
    one = len(names) == 1
    return (
        f"{len(names)} intent{'' if one else 's'} in the evaluation data {'is' if one else 'are'} not among the "
        f"model's intents: {shown} (in {rows} row{'' if rows == 1 else 's'}); no answer gets those rows right, so "
        f"they count as wrong (add training examples for {'it' if one else 'them'}, or drop those rows)"
    )


def _summary(row: dict[str, Any]) -> dict[str, float]:
    return {"precision": row["precision"], "recall": row["recall"], "f1": row["f1-score"]}


def _plain(report: dict[str, Any]) -> dict[str, Any]:
    """scikit-learn's report dict with supports as ints and scores as floats rounded to 6 digits."""
    return {
        k: {m: int(v) if m == "support" else round(float(v), 6) for m, v in row.items()} for k, row in report.items()
    }


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
