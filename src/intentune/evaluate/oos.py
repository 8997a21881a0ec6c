"""Out-of-scope detection: rejection thresholds fitted from validation data, and the metrics that judge them.

A chatbot must say "I don't know" when a message fits no intent. Two mechanisms work together:

- an explicit out-of-scope intent (``oos.label``, ``oos`` by default) when the training data has examples of it;
- a rejection threshold on the calibrated confidence: below it, the answer is the out-of-scope label.

The threshold is not a magic number: :func:`fit_thresholds` picks, on validation data, the highest one that
keeps in-scope accuracy within ``max_accuracy_drop`` of its value without rejection. Since every higher
threshold rejects at least as many out-of-scope messages, that is the threshold with the best out-of-scope
recall the accuracy budget allows. Per-intent thresholds reject the same share of each intent's correct answers
(an intent whose answers are all less confident gets a lower threshold), shrunk towards the global one for
intents with few validation rows; they are used when validation out-of-scope rows show they catch more.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import DataError

PER_INTENT_PRIOR = 20.0  # validation rows' worth of weight the global threshold gets in each per-intent one


@dataclass
class Thresholds:
    """Fitted rejection thresholds on the calibrated confidence.

    Attributes:
        label: the out-of-scope label answered when a prediction is rejected.
        global_threshold: confidence below which any prediction is rejected.
        per_intent: per predicted intent, a threshold that replaces the global one (empty: global only).
        fit: what the fit saw and achieved on the validation data (JSON-ready).
    """

    label: str
    global_threshold: float
    per_intent: dict[str, float] = field(default_factory=dict)
    fit: dict[str, Any] = field(default_factory=dict)

    def for_intents(self, intents: Sequence[str]) -> np.ndarray:
        """The threshold that applies to each predicted intent. ``(n,)``"""
        return np.array([self.per_intent.get(i, self.global_threshold) for i in intents], dtype=np.float64)

    def reject(self, intents: Sequence[str], confidences: np.ndarray) -> np.ndarray:
        """Which predictions fall below their threshold. ``(n,)`` bool"""
        return np.asarray(confidences, dtype=np.float64) < self.for_intents(intents)

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "global": self.global_threshold,
            "per_intent": dict(self.per_intent),
            "fit": self.fit,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Thresholds:
        return cls(raw["label"], float(raw["global"]), {k: float(v) for k, v in raw.get("per_intent", {}).items()},
                   dict(raw.get("fit", {})))  # fmt: skip


def apply_rejection(
    classes: Sequence[str], probs: np.ndarray, thresholds: Thresholds | None, oos_label: str
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Turn calibrated probabilities into answers.

    Returns:
        ``(intents, confidences, is_out_of_scope)``: the answered intent (the out-of-scope label when the
        explicit out-of-scope intent wins or the prediction is rejected), the top probability, and the flag.
    """
    top = probs.argmax(axis=1)
    confidences = probs[np.arange(len(top)), top]
    intents = [classes[i] for i in top]
    out = np.array([i == oos_label for i in intents], dtype=bool)
    if thresholds is not None:
        out |= thresholds.reject(intents, confidences)
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
) -> Thresholds:
    """Fit rejection thresholds on validation data.

    Args:
        probs: ``(n, k)`` calibrated probabilities of the validation rows, columns in ``classes`` order.
        true: the validation labels; rows labelled ``oos_label`` are out-of-scope examples (optional, but only
            they can show whether per-intent thresholds help).
        classes: the model's intents.
        oos_label: the out-of-scope label.
        max_accuracy_drop: how much in-scope accuracy (a share, 0.01 = one point) rejection may cost.
        per_intent: ``off`` (global only), ``on``, or ``auto`` (per-intent when validation out-of-scope rows
            show higher recall with them than without).

    Raises:
        DataError: if the validation data has no in-scope rows.
    """
    true = np.asarray(true, dtype=object)
    intents, confidences, explicit = apply_rejection(classes, probs, None, oos_label)
    in_scope = true != oos_label
    if not in_scope.any():
        raise DataError("the validation data has no in-scope rows, so no rejection threshold can be fitted")
    correct = in_scope & (np.asarray(intents, dtype=object) == true)
    allowed = math.floor(max_accuracy_drop * in_scope.sum() + 1e-9)  # correct answers rejection may cost
    global_t = _highest_threshold(confidences[correct], allowed)
    candidates = {"global": Thresholds(oos_label, global_t)}
    if per_intent != "off":
        candidates["per_intent"] = _fit_per_intent(intents, confidences, correct, allowed, global_t, oos_label)
    scores = {
        name: _score(t, intents, confidences, true, in_scope, explicit, oos_label) for name, t in candidates.items()
    }
    has_oos = bool((~in_scope).any())
    chosen = "global"
    if per_intent == "on" or (per_intent == "auto" and has_oos and
                              scores["per_intent"]["oos_recall"] > scores["global"]["oos_recall"]):  # fmt: skip
        chosen = "per_intent"
    result = candidates[chosen]
    base = _score(None, intents, confidences, true, in_scope, explicit, oos_label)
    result.fit = {
        "rows": len(true),
        "in_scope_rows": int(in_scope.sum()),
        "oos_rows": int((~in_scope).sum()),
        "max_accuracy_drop": max_accuracy_drop,
        "chosen": chosen,
        "without_rejection": base,
        "candidates": scores,
    }
    return result


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
    confidences: np.ndarray,
    true: np.ndarray,
    in_scope: np.ndarray,
    explicit: np.ndarray,
    oos_label: str,
) -> dict[str, float]:
    """In-scope accuracy and out-of-scope precision/recall/F1 of answers under ``thresholds``."""
    out = explicit.copy()
    if thresholds is not None:
        out |= thresholds.reject(intents, confidences)
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


def coverage_curve(confidences: np.ndarray, correct: np.ndarray, points: int = 101) -> list[dict[str, float]]:
    """Sweep one global threshold over in-scope answers: the share answered (coverage) and the accuracy on the
    answered ones, at ``points`` thresholds evenly spaced over [0, 1]."""
    confidences = np.asarray(confidences, dtype=np.float64)
    correct = np.asarray(correct, dtype=bool)
    curve = []
    for t in np.linspace(0.0, 1.0, points):
        kept = confidences >= t
        coverage = float(kept.mean()) if len(kept) else 0.0
        accuracy = float(correct[kept].mean()) if kept.any() else 1.0
        curve.append({"threshold": round(float(t), 4), "coverage": round(coverage, 6), "accuracy": round(accuracy, 6)})
    return curve
