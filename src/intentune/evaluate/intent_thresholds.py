"""Confidences and answers of a multi-label model: a calibrated sigmoid per intent and a threshold per intent.

A multi-label model (``model.multi_label``) scores every intent on its own, so a message can have several intents
or none. Both parts are fitted on the validation rows after training:

- **Calibration** (:func:`fit_intent_calibration`): one shared temperature for all intents (the binary
  cross-entropy of every cell, a bounded scalar search), then Platt scaling per intent, ``sigmoid(a * logit + b)``,
  fitted as a maximum a posteriori estimate whose prior sits at the shared temperature and weighs as much as
  ``prior_rows`` validation rows. An intent with few validation rows keeps about the shared temperature; one with
  many gets its own scale and offset.
- **Thresholds** (:func:`fit_intent_thresholds`): the global threshold that maximises micro-F1 over every cell,
  then for each intent the threshold that maximises its own F1, shrunk towards the global one by
  ``positives / (positives + prior_rows)`` and never below the floor (``oos.multi_label_floor``), so an intent
  with two validation examples does not get a threshold fitted to two rows. An intent is answered when its
  calibrated probability reaches its threshold; a message with no intent answered is out of scope.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

GRID = np.round(np.linspace(0.01, 0.99, 99), 2)  # the candidate thresholds


def sigmoid(x: np.ndarray) -> np.ndarray:
    """The logistic function, in float64 and without overflow warnings."""
    x = np.asarray(x, dtype=np.float64)
    return np.exp(-np.logaddexp(0.0, -x))


@dataclass
class IntentCalibration:
    """Per-intent Platt scaling: ``probability = sigmoid(scale * logit + bias)``, one ``scale`` and ``bias`` per
    intent (``temperature`` is the shared one the scales were shrunk towards)."""

    scale: np.ndarray
    bias: np.ndarray
    temperature: float = 1.0
    fit: dict[str, Any] = field(default_factory=dict)

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        """Calibrated probabilities ``(n, k)`` from raw logits ``(n, k)``."""
        return sigmoid(np.asarray(logits, dtype=np.float64) * self.scale + self.bias)

    @classmethod
    def identity(cls, intents: int) -> IntentCalibration:
        """No calibration: the plain sigmoid of the logits."""
        return cls(np.ones(intents), np.zeros(intents))

    def to_dict(self) -> dict[str, Any]:
        return {"scale": [round(float(v), 6) for v in self.scale], "bias": [round(float(v), 6) for v in self.bias],
                "temperature": self.temperature, "fit": self.fit}  # fmt: skip

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> IntentCalibration:
        return cls(np.asarray(raw["scale"], dtype=np.float64), np.asarray(raw["bias"], dtype=np.float64),
                   float(raw.get("temperature", 1.0)), dict(raw.get("fit") or {}))  # fmt: skip


def binary_nll(probs: np.ndarray, targets: np.ndarray) -> float:
    """Mean binary cross-entropy of probabilities against 0/1 targets, over every cell."""
    p = np.clip(np.asarray(probs, dtype=np.float64), 1e-12, 1 - 1e-12)
    y = np.asarray(targets, dtype=np.float64)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))) if y.size else 0.0


def fit_intent_calibration(
    logits: np.ndarray, targets: np.ndarray, *, prior_rows: float = 20.0, iterations: int = 30
) -> IntentCalibration:
    """Fit the shared temperature, then each intent's Platt scale and bias (see the module docstring).

    Args:
        logits: ``(n, k)`` raw validation logits.
        targets: ``(n, k)`` 0/1, the intents each row has (an out-of-scope row is all zeros).
        prior_rows: how many rows' worth of evidence the prior at the shared temperature weighs, per intent.
        iterations: Newton steps of the per-intent fit.
    """
    from scipy.optimize import minimize_scalar

    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(targets, dtype=np.float64)
    k = z.shape[1]
    if len(z) == 0:
        return IntentCalibration.identity(k)
    result = minimize_scalar(
        lambda log_t: binary_nll(sigmoid(z / np.exp(log_t)), y), bounds=(np.log(0.05), np.log(20.0)), method="bounded"
    )
    temperature = float(np.exp(result.x))
    prior = np.array([1.0 / temperature, 0.0])
    # The prior's precision: prior_rows rows' worth of Fisher information at probability 0.5 (0.25 per row), for
    # the scale in units of the logits' spread.
    spread = np.maximum(np.mean(z * z, axis=0), 1e-6)
    precision = np.stack([0.25 * prior_rows * spread, np.full(k, 0.25 * prior_rows)], axis=1)  # (k, 2)
    params = np.tile(prior, (k, 1))  # (k, 2): scale, bias
    for _ in range(iterations):
        p = sigmoid(z * params[:, 0] + params[:, 1])
        residual, weight = p - y, p * (1 - p)
        grad = np.stack([(residual * z).sum(0), residual.sum(0)], axis=1) + precision * (params - prior)
        h_aa = (weight * z * z).sum(0) + precision[:, 0]
        h_ab = (weight * z).sum(0)
        h_bb = weight.sum(0) + precision[:, 1]
        det = h_aa * h_bb - h_ab * h_ab
        step = np.stack([h_bb * grad[:, 0] - h_ab * grad[:, 1], h_aa * grad[:, 1] - h_ab * grad[:, 0]], axis=1)
        params -= step / det[:, None]
        if np.abs(step / det[:, None]).max() < 1e-8:
            break
    calibration = IntentCalibration(params[:, 0].copy(), params[:, 1].copy(), round(temperature, 6))
    calibration.fit = {
        "rows": len(z),
        "prior_rows": prior_rows,
        "nll_before": round(binary_nll(sigmoid(z), y), 6),
        "nll_after": round(binary_nll(calibration.probabilities(z), y), 6),
    }
    return calibration


@dataclass
class IntentThresholds:
    """One threshold per intent (in ``classes`` order): an intent is answered when its calibrated probability
    reaches its threshold."""

    classes: list[str]
    thresholds: np.ndarray
    global_threshold: float
    floor: float
    fit: dict[str, Any] = field(default_factory=dict)

    def answered(self, probs: np.ndarray) -> np.ndarray:
        """``(n, k)`` bool: which intents each row is answered with."""
        return np.asarray(probs) >= self.thresholds[None, :]

    def answers(self, probs: np.ndarray) -> list[list[int]]:
        """Each row's answered intents, as column indices, the most probable first (empty: out of scope)."""
        chosen = self.answered(probs)
        return [sorted(np.flatnonzero(row).tolist(), key=lambda i, p=p: -p[i]) for row, p in zip(chosen, probs)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "per_intent_f1",
            "global": self.global_threshold,
            "floor": self.floor,
            "per_intent": {c: round(float(t), 6) for c, t in zip(self.classes, self.thresholds)},
            "fit": self.fit,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any], classes: Sequence[str]) -> IntentThresholds:
        per_intent = raw.get("per_intent") or {}
        values = np.array([float(per_intent.get(c, raw["global"])) for c in classes], dtype=np.float64)
        return cls(
            list(classes), values, float(raw["global"]), float(raw.get("floor", 0.0)), dict(raw.get("fit") or {})
        )

    @classmethod
    def fixed(cls, classes: Sequence[str], threshold: float) -> IntentThresholds:
        """The same threshold for every intent (``oos.threshold``)."""
        return cls(list(classes), np.full(len(classes), threshold), threshold, threshold, {"fixed": True})


def _f1_by_threshold(probs: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """F1 of each column at each grid threshold, ``(len(GRID), k)``; also the micro-F1 as the last column."""
    positive = targets > 0.5
    out = np.zeros((len(GRID), probs.shape[1] + 1))
    for g, t in enumerate(GRID):
        chosen = probs >= t
        tp = (chosen & positive).sum(0)
        fp = (chosen & ~positive).sum(0)
        fn = (~chosen & positive).sum(0)
        out[g, :-1] = np.where(2 * tp + fp + fn > 0, 2 * tp / np.maximum(2 * tp + fp + fn, 1), 0.0)
        total = 2 * tp.sum() + fp.sum() + fn.sum()
        out[g, -1] = 2 * tp.sum() / total if total else 0.0
    return out


def _middle_of_best(scores: np.ndarray, allowed: np.ndarray) -> float:
    """The middle of the grid thresholds whose score is the best (ties over a plateau: its middle, not its edge)."""
    masked = np.where(allowed, scores, -np.inf)
    best = np.flatnonzero(masked >= masked.max() - 1e-12)
    return float(GRID[best[len(best) // 2]])


def fit_intent_thresholds(
    probs: np.ndarray,
    targets: np.ndarray,
    classes: Sequence[str],
    *,
    floor: float = 0.25,
    prior_rows: float = 10.0,
) -> IntentThresholds:
    """Fit the global and the per-intent thresholds on calibrated validation probabilities (see the module
    docstring).

    Args:
        probs: ``(n, k)`` calibrated probabilities.
        targets: ``(n, k)`` 0/1 true intents (all zeros for an out-of-scope row).
        classes: the intents, in column order.
        floor: no threshold is lower.
        prior_rows: how many validation examples of an intent it takes for its own best threshold to weigh as much
            as the global one.
    """
    probs = np.asarray(probs, dtype=np.float64)
    targets = np.asarray(targets, dtype=np.float64)
    allowed = floor - 1e-12 <= GRID
    if not allowed.any():
        allowed = GRID.max() == GRID
    f1 = _f1_by_threshold(probs, targets)
    global_threshold = _middle_of_best(f1[:, -1], allowed) if len(probs) else max(0.5, floor)
    positives = targets.sum(0)
    values, best = np.full(len(classes), global_threshold), {}
    for j, intent in enumerate(classes):
        if positives[j] == 0:
            continue  # nothing to fit on: the global threshold
        own = _middle_of_best(f1[:, j], allowed)
        weight = positives[j] / (positives[j] + prior_rows)
        values[j] = max(floor, weight * own + (1 - weight) * global_threshold)
        best[intent] = own
    chosen = probs >= values[None, :]
    positive = targets > 0.5
    tp, fp, fn = (chosen & positive).sum(), (chosen & ~positive).sum(), (~chosen & positive).sum()
    fit = {
        "rows": len(probs),
        "prior_rows": prior_rows,
        "validation_micro_f1": round(float(2 * tp / max(2 * tp + fp + fn, 1)), 6),
        "validation_subset_accuracy": round(float((chosen == positive).all(1).mean()), 6) if len(probs) else None,
        "intents_without_validation_rows": [c for c, n in zip(classes, positives) if n == 0],
    }
    return IntentThresholds(list(classes), np.round(values, 6), round(global_threshold, 6), floor, fit)
