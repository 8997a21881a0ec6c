"""Metrics and the confusion matrix of a model's answers, shaped like scikit-learn's ``classification_report``, into
an :class:`~intentune.evaluate.report.EvalReport`.

Labels always come from the model's ``classes_``, so an intent missing from the test data still has a row. The
macro and weighted averages are over those intents, plus the out-of-scope label when the data has out-of-scope
rows; other rows (an out-of-scope label the data has no rows of, intents the model was not trained on) are shown
but left out of the averages. Nothing here prints: a report renders itself as text, Markdown or JSON, and the
caller decides where it goes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import DataError
from .multilabel import MultiLabelReport, evaluate_multilabel
from .report import AVERAGES, EvalReport

MAX_NAMED_INTENTS = 20  # intents named in a warning before "and N more"


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
