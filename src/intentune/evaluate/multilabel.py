"""The evaluation of a multi-label model: messages that may carry several intents (``cancel_order+refund``).

A row is right when the predicted set of intents is exactly the true set (subset accuracy); an out-of-scope row has
the empty set, so it is right when nothing is predicted. Per-intent precision, recall and F1, the micro, macro,
weighted and samples averages and the Hamming loss come from scikit-learn's multi-label metrics over the model's
intents, shaped like ``classification_report`` so that :mod:`intentune.evaluate.compare` reads them as it reads a
single-label report. On top of them the report splits out the multi-intent rows (the ones a multi-label model is
for), the out-of-scope answers, which intents are missed or added alongside which others, rows no answer can get
right (an intent the model never learned), and, with probabilities, the calibration of every (row, intent) cell.
Nothing here prints: the report (:mod:`intentune.evaluate.multilabel_report`, whose class this module also exports)
renders itself as text, Markdown, JSON or HTML, and the caller decides where it goes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import DataError
from ..labels import intent_sets, join_intents, multi_hot
from .calibration import DEFAULT_BINS, expected_calibration_error, reliability_bins
from .multilabel_html import AVERAGES
from .multilabel_report import MultiLabelReport

TOP_PAIRS = 20  # co-occurrence pairs kept per kind
TOP_PROBABILITIES = 3  # probabilities listed per wrong row
MAX_NAMED_INTENTS = 20  # intents named in a warning before "and N more"

__all__ = ["MultiLabelReport", "evaluate_multilabel"]


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


def _plain(report: dict[str, Any]) -> dict[str, Any]:
    """scikit-learn's report dict with supports as ints and scores as floats rounded to 6 digits."""
    return {
        k: {m: int(v) if m == "support" else round(float(v), 6) for m, v in row.items()} for k, row in report.items()
    }
