"""Out-of-scope detection: rejection thresholds fitted from validation data, and the metrics that judge them.

A chatbot must say "I don't know" when a message fits no intent. Two mechanisms work together:

- an explicit out-of-scope intent (``oos.label``, ``oos`` by default) when the training data has examples of it;
- a rejection threshold on a score: below a threshold on the calibrated confidence, or above one on the
  distance of the message's pooled vector from the training data of its nearest intent
  (:class:`DistanceModel`), the answer is the out-of-scope label.

The threshold is not a magic number: :func:`fit_thresholds` picks, on validation data, the strictest one that
keeps in-scope accuracy within ``max_accuracy_drop`` of its value without rejection. Since every stricter
threshold rejects at least as many out-of-scope messages, that is the threshold with the best out-of-scope
recall the accuracy budget allows. Per-intent thresholds reject the same share of each intent's correct answers
(an intent whose answers are all less confident gets a lower threshold), shrunk towards the global one for
intents with few validation rows; they are used when validation out-of-scope rows show they catch more. The
score (``oos.score``) is chosen the same way: the distance when validation out-of-scope rows show it catches more
within the same budget, else the confidence.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import DataError

PER_INTENT_PRIOR = 20.0  # validation rows' worth of weight the global threshold gets in each per-intent one
SCORES = ("confidence", "distance")
HELD_OUT_FOLDS = 5  # cross-fitting folds that judge per-intent thresholds and the score on unseen validation rows


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
        typical training row, more for unusual messages). ``(n,)`` float64"""
        z = np.asarray(features, dtype=np.float32) @ self.whiten
        squared = (z**2).sum(axis=1, keepdims=True) - 2.0 * z @ self.means.T + (self.means**2).sum(axis=1)[None, :]
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


def fit_thresholds(
    probs: np.ndarray,
    true: Sequence[str],
    classes: Sequence[str],
    *,
    oos_label: str = "oos",
    max_accuracy_drop: float = 0.01,
    per_intent: str = "auto",
    distances: np.ndarray | None = None,
    score: str = "auto",
) -> Thresholds:
    """Fit rejection thresholds on validation data.

    Args:
        probs: ``(n, k)`` calibrated probabilities of the validation rows, columns in ``classes`` order.
        true: the validation labels; rows labelled ``oos_label`` are out-of-scope examples (optional, but only
            they can show whether per-intent thresholds, or the distance score, help).
        classes: the model's intents.
        oos_label: the out-of-scope label.
        max_accuracy_drop: how much in-scope accuracy (a share, 0.01 = one point) rejection may cost.
        per_intent: ``off`` (global only), ``on``, or ``auto``: per-intent thresholds when, fitted on part of the
            validation rows and judged on the rest (:data:`HELD_OUT_FOLDS`-fold cross-fitting), they catch more
            out-of-scope rows than the global threshold without costing more in-scope accuracy than the budget
            (or than the global threshold itself costs on held-out rows, if that is more). Per-intent thresholds
            rest on few rows each, so judged on the rows they were fitted on they always look within budget.
        distances: ``(n,)`` distance scores of the validation rows (:meth:`DistanceModel.distances`).
        score: ``confidence``, ``distance`` (needs ``distances``), or ``auto``: the distance when validation
            out-of-scope rows show it catches more than the confidence within the same budget (held-out rows too).

    The thresholds returned are fitted on all the validation rows; ``fit["candidates"]`` scores each candidate on
    those rows, ``fit["held_out"]`` on held-out rows (when a choice was made from out-of-scope rows).

    Raises:
        DataError: if the validation data has no in-scope rows.
        ValueError: for ``score="distance"`` without distances, or an unknown score.
    """
    if score not in ("auto", *SCORES):
        raise ValueError(f"unknown out-of-scope score {score!r}; choose auto, {', '.join(SCORES)}")
    if score == "distance" and distances is None:
        raise ValueError("score 'distance' needs the validation rows' distances")
    true = np.asarray(true, dtype=object)
    intents, confidences, explicit = apply_rejection(classes, probs, None, oos_label)
    in_scope = true != oos_label
    if not in_scope.any():
        raise DataError("the validation data has no in-scope rows, so no rejection threshold can be fitted")
    correct = in_scope & (np.asarray(intents, dtype=object) == true)
    allowed = math.floor(max_accuracy_drop * in_scope.sum() + 1e-9)  # correct answers rejection may cost
    has_oos = bool((~in_scope).any())
    # Each score as a value that rejection keeps when high: the confidence, and the distance negated.
    values = {"confidence": confidences}
    if distances is not None and score != "confidence":
        values["distance"] = -np.asarray(distances, dtype=np.float64)
    if score == "distance":
        del values["confidence"]
    kinds = ("global",) if per_intent == "off" else ("global", "per_intent")
    candidates: dict[str, Thresholds] = {}
    scores: dict[str, dict[str, float]] = {}
    for name, value in values.items():
        for key, t in _candidates(intents, value, correct, allowed, oos_label, kinds, name).items():
            candidates[key] = t
            scores[key] = _score(t, intents, value, true, in_scope, explicit, oos_label)
    # Choices that out-of-scope rows decide are judged on rows the thresholds were not fitted on.
    choosing = has_oos and (per_intent == "auto" or len(values) == 2)
    held_out = (
        _held_out(intents, values, correct, true, in_scope, explicit, max_accuracy_drop, oos_label, kinds)
        if choosing
        else {}
    )
    chosen_of: dict[str, str] = {}
    for name in values:
        prefix = _prefix(name)
        chosen_of[name] = prefix + "global"
        if per_intent == "on":
            chosen_of[name] = prefix + "per_intent"
        elif per_intent == "auto" and has_oos:
            glob, per = held_out[prefix + "global"], held_out[prefix + "per_intent"]
            affordable = per["cost"] <= max(max_accuracy_drop, glob["cost"]) + 1e-12
            if affordable and per["oos_recall"] > glob["oos_recall"]:
                chosen_of[name] = prefix + "per_intent"
    used = next(iter(values))
    if len(values) == 2 and has_oos:
        recall_of = {name: held_out[key]["oos_recall"] for name, key in chosen_of.items()}
        if recall_of["distance"] > recall_of["confidence"]:
            used = "distance"
    chosen = chosen_of[used]
    result = candidates[chosen]
    if used == "distance":  # back from the negated values to distances (rejected above the threshold)
        result = Thresholds(oos_label, -result.global_threshold, {k: -v for k, v in result.per_intent.items()},
                            score="distance")  # fmt: skip
    base = _score(None, intents, confidences, true, in_scope, explicit, oos_label)
    result.fit = {
        "rows": len(true),
        "in_scope_rows": int(in_scope.sum()),
        "oos_rows": int((~in_scope).sum()),
        "max_accuracy_drop": max_accuracy_drop,
        "score": used,
        "chosen": chosen,
        "without_rejection": base,
        "candidates": scores,
    }
    if held_out:
        result.fit["held_out"] = {"folds": HELD_OUT_FOLDS, **held_out}
    return result


def _candidates(
    intents: list[str],
    value: np.ndarray,
    correct: np.ndarray,
    allowed: int,
    oos_label: str,
    kinds: Sequence[str],
    score: str,
) -> dict[str, Thresholds]:
    """The global and (if in ``kinds``) per-intent thresholds on one score (values kept when high), keyed as in
    ``fit["candidates"]``: ``global``, ``per_intent``, ``distance_global``, ``distance_per_intent``."""
    prefix = _prefix(score)
    global_t = _highest_threshold(value[correct], allowed)
    found = {prefix + "global": Thresholds(oos_label, global_t)}
    if "per_intent" in kinds:
        found[prefix + "per_intent"] = _fit_per_intent(intents, value, correct, allowed, global_t, oos_label)
    return found


def _held_out(
    intents: list[str],
    values: dict[str, np.ndarray],
    correct: np.ndarray,
    true: np.ndarray,
    in_scope: np.ndarray,
    explicit: np.ndarray,
    max_accuracy_drop: float,
    oos_label: str,
    kinds: Sequence[str],
) -> dict[str, dict[str, float]]:
    """Cross-fitting: every candidate fitted on all folds but one and applied to that one, over
    :data:`HELD_OUT_FOLDS` folds stratified by label (a fixed draw, so the fit is deterministic). Per candidate:
    ``cost``, the share of in-scope rows answered right without rejection and rejected on held-out rows, and
    ``oos_recall``, the share of out-of-scope rows rejected or answered out-of-scope on held-out rows."""
    folds = _stratified_folds(true, HELD_OUT_FOLDS)
    lost = dict.fromkeys((_prefix(name) + kind for name in values for kind in kinds), 0)
    caught = dict(lost)
    names = np.asarray(intents, dtype=object)
    for fold in range(HELD_OUT_FOLDS):
        test, train = folds == fold, folds != fold
        if not train.any() or not test.any():
            continue
        part = [i for i, keep in zip(intents, train) if keep]
        allowed = math.floor(max_accuracy_drop * in_scope[train].sum() + 1e-9)
        for name, value in values.items():
            for key, t in _candidates(part, value[train], correct[train], allowed, oos_label, kinds, name).items():
                rejected = t.reject(list(names[test]), value[test]) | explicit[test]
                lost[key] += int((rejected & correct[test]).sum())
                caught[key] += int((rejected & ~in_scope[test]).sum())
    n_in, n_oos = max(int(in_scope.sum()), 1), max(int((~in_scope).sum()), 1)
    return {k: {"cost": round(lost[k] / n_in, 6), "oos_recall": round(caught[k] / n_oos, 6)} for k in lost}


def _prefix(score: str) -> str:
    """How a score's candidates are keyed: ``global`` / ``per_intent`` for the confidence, ``distance_...``."""
    return "" if score == "confidence" else "distance_"


def _stratified_folds(labels: np.ndarray, folds: int, seed: int = 0) -> np.ndarray:
    """A fold number per row: each label's rows shuffled (fixed seed) and dealt to the folds in turn, so every
    fold holds about the same share of every intent and of the out-of-scope rows."""
    rng = np.random.default_rng(seed)
    out = np.empty(len(labels), dtype=np.int64)
    offset = 0
    for label in sorted(set(labels.tolist())):
        rows = np.flatnonzero(labels == label)
        rng.shuffle(rows)
        out[rows] = (np.arange(len(rows)) + offset) % folds
        offset += len(rows)  # labels with few rows do not all start in fold 0
    return out


def _highest_threshold(correct_confidences: np.ndarray, allowed: int) -> float:
    """The highest threshold that rejects at most ``allowed`` of these (correct) answers."""
    ordered = np.sort(correct_confidences)
    if len(ordered) == 0:
        return 0.0
    if allowed >= len(ordered):
        return float(ordered[-1])
    # Rejection is "confidence < threshold", so the (allowed+1)-th smallest itself is kept.
    return float(ordered[allowed])


def _fit_per_intent(
    intents: list[str], confidences: np.ndarray, correct: np.ndarray, allowed: int, global_t: float, oos_label: str
) -> Thresholds:
    """Per-intent thresholds that reject the same share ``r`` of each intent's correct answers, shrunk towards
    the global threshold by :data:`PER_INTENT_PRIOR`; ``r`` is the largest share within the budget (bisection)."""
    names = np.asarray(intents, dtype=object)
    groups = {c: np.sort(confidences[correct & (names == c)]) for c in sorted(set(intents)) if c != oos_label}

    def thresholds_at(share: float) -> dict[str, float]:
        out = {}
        for c, values in groups.items():
            if len(values):
                raw = float(np.quantile(values, share))
                out[c] = round((len(values) * raw + PER_INTENT_PRIOR * global_t) / (len(values) + PER_INTENT_PRIOR), 6)
        return out

    def cost(table: dict[str, float]) -> int:
        limits = np.array([table.get(i, global_t) for i in intents])
        return int((correct & (confidences < limits)).sum())

    low, high = 0.0, 1.0
    for _ in range(30):
        mid = (low + high) / 2
        low, high = (mid, high) if cost(thresholds_at(mid)) <= allowed else (low, mid)
    table = thresholds_at(low)
    if cost(table) > allowed:  # the shrinkage alone can exceed the budget; then fall back to the global one
        table = {}
    return Thresholds(oos_label, global_t, table)


def _score(
    thresholds: Thresholds | None,
    intents: list[str],
    values: np.ndarray,
    true: np.ndarray,
    in_scope: np.ndarray,
    explicit: np.ndarray,
    oos_label: str,
) -> dict[str, float]:
    """In-scope accuracy and out-of-scope precision/recall/F1 of answers under ``thresholds`` (confidence-style:
    ``values`` below the threshold are rejected)."""
    out = explicit.copy()
    if thresholds is not None:
        out |= thresholds.reject(intents, values)
    answers = np.where(out, oos_label, np.asarray(intents, dtype=object))
    return oos_metrics(true, answers, oos_label)


def oos_metrics(true: Sequence[str], answers: Sequence[str], oos_label: str) -> dict[str, float]:
    """In-scope accuracy (on rows whose true label is not out-of-scope) and out-of-scope precision, recall, F1."""
    true = np.asarray(true, dtype=object)
    answers = np.asarray(answers, dtype=object)
    in_scope, said_oos, is_oos = true != oos_label, answers == oos_label, true == oos_label
    hits = int((said_oos & is_oos).sum())
    precision = hits / said_oos.sum() if said_oos.any() else 0.0
    recall = hits / is_oos.sum() if is_oos.any() else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    accuracy = float((answers[in_scope] == true[in_scope]).mean()) if in_scope.any() else 0.0
    return {
        "in_scope_accuracy": round(accuracy, 6),
        "oos_precision": round(float(precision), 6),
        "oos_recall": round(float(recall), 6),
        "oos_f1": round(float(f1), 6),
    }


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
