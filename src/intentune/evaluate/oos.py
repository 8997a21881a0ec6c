"""Out-of-scope detection: the scores and thresholds that reject, the metrics that judge them, and the bundled
stand-in out-of-scope sentences.

A chatbot must say "I don't know" when a message fits no intent. Two mechanisms work together:

- an explicit out-of-scope intent (``oos.label``, ``oos`` by default) when the training data has examples of it;
- a rejection threshold on a score: below a threshold on the calibrated confidence, or above one on the
  distance of the message's pooled vector from the training data of its nearest intent
  (:class:`DistanceModel`), the answer is the out-of-scope label.

The thresholds are fitted on validation data in :mod:`intentune.evaluate.thresholds`; here they are applied
(:func:`apply_rejection`) and judged (:func:`oos_metrics`, :func:`oos_summary`). Out-of-scope precision, recall
and F1 need out-of-scope rows: without them they are None ("cannot be measured"), and what rejection costs the
in-scope rows (coverage, accuracy drop) is what a report can show. :func:`outlier_texts` reads the generic
out-of-domain sentences shipped with intentune, which stand in for validation out-of-scope rows when the data has
none (``oos.outlier_exposure``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import DataError

OUTLIERS = "resources/outliers.txt"  # the stand-in out-of-scope sentences, inside the intentune package
NOT_MEASURABLE = "OOS recall cannot be measured: the data has no {label} rows"


@dataclass
class DistanceModel:
    """How far a pooled vector lies from the training data of the nearest in-scope intent: the Mahalanobis
    distance to each intent's mean under one covariance shared by all intents (Lee et al., 2018; Podolskiy et
    al., 2021, for fine-tuned transformers), fitted on the training rows' pooled vectors after training.

    A message unlike every intent's examples lies far from all the means even when the classification layer
    is sure of one intent; on CLINC150 this separates out-of-scope messages better than the confidence does.
    The covariance is shrunk towards a multiple of the identity (Ledoit-Wolf), so a few rows per intent in many
    dimensions still give a usable one.

    Attributes:
        means: ``(k, h)`` intent means, whitened (multiplied by ``whiten``).
        whiten: ``(h, h)`` matrix ``W`` with ``W W^T`` = the inverse of the shared covariance.
    """

    means: np.ndarray
    whiten: np.ndarray

    @classmethod
    def fit(cls, features: np.ndarray, labels: Sequence[str], oos_label: str) -> DistanceModel:
        """Fit on the training rows' pooled vectors ``(n, h)``; rows labelled ``oos_label`` are left out (they
        belong to no intent's cluster).

        Raises:
            DataError: if fewer than two in-scope rows remain.
        """
        from sklearn.covariance import ledoit_wolf

        y = np.asarray(labels, dtype=object)
        x = np.asarray(features, dtype=np.float64)[y != oos_label]
        y = y[y != oos_label]
        if len(x) < 2:
            raise DataError("the distance score needs at least two in-scope training rows")
        intents, index = np.unique(y, return_inverse=True)
        means = np.stack([x[index == i].mean(axis=0) for i in range(len(intents))])
        covariance, _ = ledoit_wolf(x - means[index], assume_centered=True)
        values, vectors = np.linalg.eigh(covariance)
        values = np.maximum(values, values.max() * 1e-9)
        whiten = vectors / np.sqrt(values)  # x @ whiten has unit covariance
        return cls((means @ whiten).astype(np.float32), whiten.astype(np.float32))

    def distances(self, features: np.ndarray) -> np.ndarray:
        """Distance to the nearest intent's mean, as a root mean square over the dimensions (about 1 for a
        typical training row, more for unusual messages). ``(n,)`` float64

        The products run in ``np.einsum``'s own loop on the calling thread, not in BLAS: a BLAS product of a
        wide backbone's vectors wakes BLAS's worker threads, which keep spinning after it returns and take the
        cores from the network's threads on the next text (a single-text prediction with a 768-wide encoder on
        2 cores runs several times slower behind it). The loop costs little beside the network's forward pass."""
        z = np.einsum("nh,hd->nd", np.asarray(features, dtype=np.float32), self.whiten)
        cross = np.einsum("nd,kd->nk", z, self.means)
        squared = (z**2).sum(axis=1, keepdims=True) - 2.0 * cross + (self.means**2).sum(axis=1)[None, :]
        nearest = np.maximum(squared.min(axis=1).astype(np.float64), 0.0)
        return np.sqrt(nearest / self.whiten.shape[1])

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"means": self.means, "whiten": self.whiten}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> DistanceModel:
        return cls(np.asarray(arrays["means"], dtype=np.float32), np.asarray(arrays["whiten"], dtype=np.float32))


@dataclass
class Thresholds:
    """Fitted rejection thresholds on the calibrated confidence or on the distance score.

    Attributes:
        label: the out-of-scope label answered when a prediction is rejected.
        global_threshold: confidence below which (score ``confidence``), or distance above which (score
            ``distance``), any prediction is rejected.
        per_intent: per predicted intent, a threshold that replaces the global one (empty: global only).
        fit: what the fit saw and achieved on the validation data (JSON-ready).
        score: ``confidence`` or ``distance`` (see :class:`DistanceModel`).
    """

    label: str
    global_threshold: float
    per_intent: dict[str, float] = field(default_factory=dict)
    fit: dict[str, Any] = field(default_factory=dict)
    score: str = "confidence"

    def for_intents(self, intents: Sequence[str]) -> np.ndarray:
        """The threshold that applies to each predicted intent. ``(n,)``"""
        return np.array([self.per_intent.get(i, self.global_threshold) for i in intents], dtype=np.float64)

    def reject(
        self, intents: Sequence[str], confidences: np.ndarray, distances: np.ndarray | None = None
    ) -> np.ndarray:
        """Which predictions fall on the wrong side of their threshold. ``(n,)`` bool

        Raises:
            ValueError: for distance thresholds without ``distances``.
        """
        if self.score == "distance":
            if distances is None:
                raise ValueError("these thresholds are on the distance score; pass the distances")
            return np.asarray(distances, dtype=np.float64) > self.for_intents(intents)
        return np.asarray(confidences, dtype=np.float64) < self.for_intents(intents)

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "score": self.score,
            "global": self.global_threshold,
            "per_intent": dict(self.per_intent),
            "fit": self.fit,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Thresholds:
        return cls(raw["label"], float(raw["global"]), {k: float(v) for k, v in raw.get("per_intent", {}).items()},
                   dict(raw.get("fit", {})), raw.get("score", "confidence"))  # fmt: skip


def apply_rejection(
    classes: Sequence[str],
    probs: np.ndarray,
    thresholds: Thresholds | None,
    oos_label: str,
    distances: np.ndarray | None = None,
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Turn calibrated probabilities (and, for distance thresholds, the distances) into answers.

    Returns:
        ``(intents, confidences, is_out_of_scope)``: the answered intent (the out-of-scope label when the
        explicit out-of-scope intent wins or the prediction is rejected), the top probability, and the flag.
    """
    top = probs.argmax(axis=1)
    confidences = probs[np.arange(len(top)), top]
    intents = [classes[i] for i in top]
    out = np.array([i == oos_label for i in intents], dtype=bool)
    if thresholds is not None:
        out |= thresholds.reject(intents, confidences, distances)
    answers = [oos_label if o else i for i, o in zip(intents, out)]
    return answers, confidences, out


def oos_metrics(true: Sequence[str], answers: Sequence[str], oos_label: str) -> dict[str, float | None]:
    """In-scope accuracy (on rows whose true label is not out-of-scope) and out-of-scope precision, recall, F1;
    the last three are None when ``true`` has no out-of-scope rows (nothing to measure them on)."""
    true = np.asarray(true, dtype=object)
    answers = np.asarray(answers, dtype=object)
    in_scope, said_oos, is_oos = true != oos_label, answers == oos_label, true == oos_label
    accuracy = float((answers[in_scope] == true[in_scope]).mean()) if in_scope.any() else 0.0
    out: dict[str, float | None] = {"in_scope_accuracy": round(accuracy, 6)}
    if not is_oos.any():
        return out | dict.fromkeys(("oos_precision", "oos_recall", "oos_f1"))
    hits = int((said_oos & is_oos).sum())
    precision = hits / said_oos.sum() if said_oos.any() else 0.0
    recall = hits / is_oos.sum()
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return out | {
        "oos_precision": round(float(precision), 6),
        "oos_recall": round(float(recall), 6),
        "oos_f1": round(float(f1), 6),
    }


def oos_summary(
    probs: np.ndarray,
    true: Sequence[str],
    classes: Sequence[str],
    answers: Sequence[str],
    thresholds: Thresholds | None,
    oos_label: str,
    distances: np.ndarray | None = None,
) -> dict[str, Any]:
    """The out-of-scope part of an evaluation report (:attr:`intentune.evaluate.EvalReport.oos`): the thresholds,
    the metrics with and without rejection (:func:`oos_metrics`), what rejection costs the in-scope rows
    (``coverage``: the share of them answered with an intent; ``accuracy_drop``: in-scope accuracy without
    rejection minus with it), whether out-of-scope recall can be measured here (``oos_measurable``), how many
    stand-in out-of-scope sentences chose the thresholds (``stand_in_oos_rows``, when any did), what the fit
    promised about the threshold's cost on unseen rows (``budget``, see
    :func:`intentune.evaluate.thresholds.budget_summary`), and the coverage
    curve on the score the model rejects by."""
    true = np.asarray(true, dtype=object)
    classes = list(classes)
    plain, confidences, _ = apply_rejection(classes, probs, None, oos_label)
    in_scope = true != oos_label
    argmax = np.asarray([classes[i] for i in probs.argmax(axis=1)], dtype=object)
    # The curve sweeps the score the model rejects by, so the fitted threshold lies on it.
    by_distance = thresholds is not None and thresholds.score == "distance" and distances is not None
    swept = np.asarray(distances, dtype=np.float64) if by_distance else confidences
    score = "distance" if by_distance else "confidence"
    with_rejection, without = oos_metrics(true, answers, oos_label), oos_metrics(true, plain, oos_label)
    answered = np.asarray(answers, dtype=object)[in_scope] != oos_label
    summary: dict[str, Any] = {
        "label": oos_label,
        "threshold": {
            "score": thresholds.score if thresholds is not None else None,
            "global": thresholds.global_threshold if thresholds is not None else None,
            "per_intent": dict(thresholds.per_intent) if thresholds is not None else {},
        },
        "in_scope_support": int(in_scope.sum()),
        "oos_support": int((~in_scope).sum()),
        "oos_measurable": bool((~in_scope).any()),
        **with_rejection,
        "without_rejection": without,
        "coverage": round(float(answered.mean()), 6) if answered.size else 0.0,
        "accuracy_drop": round(float(without["in_scope_accuracy"]) - float(with_rejection["in_scope_accuracy"]), 6),
    }
    stand_ins = ((thresholds.fit if thresholds is not None else {}).get("outlier_exposure") or {}).get("rows", 0)
    if stand_ins:
        summary["stand_in_oos_rows"] = int(stand_ins)
    if thresholds is not None and thresholds.fit.get("budget"):
        summary["budget"] = dict(thresholds.fit["budget"])
    summary["coverage_score"] = score
    summary["coverage_curve"] = coverage_curve(swept[in_scope], (argmax == true)[in_scope], score=score)
    return summary


def is_measurable(oos: dict[str, Any]) -> bool:
    """Whether an out-of-scope summary has out-of-scope rows to measure precision and recall on (summaries
    written before ``oos_measurable`` existed say so by their support)."""
    return bool(oos.get("oos_measurable", oos.get("oos_support", 0) > 0)) and oos.get("oos_recall") is not None


def cost_text(oos: dict[str, Any], digits: int) -> str:
    """What rejection costs the in-scope rows, in words ('' for summaries without the numbers)."""
    if oos.get("coverage") is None or oos.get("accuracy_drop") is None:
        return ""
    before = oos["without_rejection"]["in_scope_accuracy"]
    return (
        f"{oos['coverage']:.1%} of in-scope rows answered, in-scope accuracy {before:.{digits}f} -> "
        f"{oos['in_scope_accuracy']:.{digits}f} (drop {oos['accuracy_drop']:.{digits}f})"
    )


def fit_notes(oos: dict[str, Any]) -> list[str]:
    """Sentences on how the thresholds were fitted, for the reports: that stand-in out-of-scope sentences, not rows
    of the data, chose them, and that the validation data had too few in-scope rows for the accuracy budget to hold
    on unseen rows at the fit's confidence (with the rows it would take). Empty when neither applies."""
    notes = []
    if rows := oos.get("stand_in_oos_rows"):
        notes.append(
            f"the thresholds were chosen with {rows} stand-in out-of-scope sentences shipped with intentune "
            "(oos.outlier_exposure) as validation out-of-scope rows"
        )
    budget = oos.get("budget") or {}
    if budget.get("met") is False and budget.get("rows_needed"):
        notes.append(
            f"{budget['rows']} in-scope validation rows are too few to keep the accuracy budget of "
            f"{budget['max_accuracy_drop']:.1%} on unseen messages with {budget['confidence']:.0%} confidence: the "
            f"threshold is expected to cost {budget['expected_cost']:.1%}; about {budget['rows_needed']} validation "
            "rows would keep it, or raise oos.max_accuracy_drop"
        )
    return notes


def outlier_texts(exclude: Iterable[str] = ()) -> tuple[list[str], int]:
    """The generic out-of-domain sentences shipped with intentune (:data:`OUTLIERS`: small talk, trivia, requests
    no business handles), less those whose text matches one of ``exclude`` (the training and validation texts)
    under :func:`intentune.preprocess.normalize_for_matching`, so no stand-in contradicts a labelled row.

    Returns:
        ``(texts, dropped)``: the sentences kept, in file order, and how many matched ``exclude``.
    """
    from importlib.resources import files

    from ..preprocess import normalize_for_matching

    raw = files("intentune").joinpath(OUTLIERS).read_text(encoding="utf-8")
    lines = [line.strip() for line in raw.splitlines()]
    texts = [line for line in lines if line and not line.startswith("#")]
    taken = {normalize_for_matching(t) for t in exclude}
    kept = [t for t in texts if normalize_for_matching(t) not in taken]
    return kept, len(texts) - len(kept)


def coverage_curve(
    values: np.ndarray, correct: np.ndarray, points: int = 101, *, score: str = "confidence"
) -> list[dict[str, float]]:
    """Sweep one global threshold over in-scope answers: the share answered (coverage) and the accuracy on the
    answered ones, at ``points`` thresholds.

    Args:
        values: the score of each answer: the confidence (answered when at least the threshold; thresholds evenly
            spaced over [0, 1]) or, for ``score="distance"``, the distance (answered when at most the threshold;
            thresholds evenly spaced from the smallest to the largest distance).
        correct: whether each answer is right.
    """
    values = np.asarray(values, dtype=np.float64)
    correct = np.asarray(correct, dtype=bool)
    if score == "distance":
        low, high = (float(values.min()), float(values.max())) if len(values) else (0.0, 1.0)
        thresholds, kept_at = np.linspace(low, high, points), lambda t: values <= t
    else:
        thresholds, kept_at = np.linspace(0.0, 1.0, points), lambda t: values >= t
    curve = []
    for t in thresholds:
        kept = kept_at(t)
        coverage = float(kept.mean()) if len(kept) else 0.0
        accuracy = float(correct[kept].mean()) if kept.any() else 1.0
        curve.append({"threshold": round(float(t), 4), "coverage": round(coverage, 6), "accuracy": round(accuracy, 6)})
    return curve
