"""A trained model's confidence, fitted on validation data: calibration and the out-of-scope answer.

- a softmax model (:func:`fit_softmax_confidence`): one temperature (``train.calibrate``), then out-of-scope
  thresholds (:func:`intentune.evaluate.thresholds.fit_thresholds`) on the calibrated confidence, or on the distance
  to the training rows (:class:`intentune.evaluate.oos.DistanceModel`) when that score is chosen;
- a multi-label model (:func:`fit_intent_confidence`): a Platt scaling per intent and one threshold per intent
  (:mod:`intentune.evaluate.intent_thresholds`); no intent above its threshold is the out-of-scope answer.

When the validation data has no out-of-scope row, the bundled stand-in sentences (``oos.outlier_exposure``) join
the threshold fit as out-of-scope rows, never the calibration.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from .config import Config
from .evaluate.intent_thresholds import IntentCalibration, IntentThresholds
from .evaluate.oos import DistanceModel, Thresholds

Texts = tuple[Sequence[str], Sequence[str]]


class Scorer(Protocol):
    """What the fitting needs of a trained model (:class:`intentune.model.IntentClassifier` has it)."""

    classes_: list[str]

    def forward(self, texts: Sequence[str], *, pooled: bool = False) -> tuple[np.ndarray, np.ndarray | None]: ...

    def label_ids(self, labels: Sequence[str]) -> list[int]: ...

    def targets(self, labels: Sequence[str]) -> list[int] | list[list[float]]: ...

    def knows(self, label: str) -> bool: ...


@dataclass
class SoftmaxConfidence:
    """A softmax model's fitted confidence.

    Attributes:
        temperature: the calibration temperature (1.0 when not calibrated).
        thresholds: the out-of-scope thresholds, or None (no rejection).
        distance: the distance model when the thresholds are on the distance score, else None.
        summary: the ``calibration`` and ``oos`` entries of the training summary.
    """

    temperature: float = 1.0
    thresholds: Thresholds | None = None
    distance: DistanceModel | None = None
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass
class IntentConfidence:
    """A multi-label model's fitted confidence: per-intent calibration and thresholds, and the ``calibration``
    and ``oos`` entries of the training summary."""

    calibration: IntentCalibration
    thresholds: IntentThresholds
    summary: dict[str, Any] = field(default_factory=dict)


def fit_softmax_confidence(
    model: Scorer, config: Config, validation: Texts | None, training: Texts | None = None
) -> SoftmaxConfidence:
    """Temperature scaling and out-of-scope thresholds, fitted on the validation data (``train.calibrate``,
    ``[oos]``); without validation data, temperature 1 and only a fixed ``oos.threshold`` if one is set. The
    distance score (``oos.score``) is fitted on the training rows when it can be chosen: always for ``distance``,
    for ``auto`` only when validation has out-of-scope rows to choose with, its own or the bundled stand-ins."""
    from .evaluate.calibration import calibration_summary, fit_temperature, softmax
    from .evaluate.oos import outlier_texts
    from .evaluate.thresholds import fit_thresholds

    ocfg = config.oos
    fitted = SoftmaxConfidence()
    if ocfg.reject and ocfg.threshold is not None:
        fitted.thresholds = Thresholds(ocfg.label, ocfg.threshold, fit={"fixed": True})
    if validation is None or not validation[0]:
        return _with_oos_summary(fitted)
    fitting = ocfg.reject and ocfg.threshold is None
    has_oos = ocfg.label in set(validation[1])
    exposure = fitting and (ocfg.outlier_exposure == "on" or (ocfg.outlier_exposure == "auto" and not has_oos))
    matching = [*validation[0], *(training[0] if training is not None else [])]  # stand-ins must not repeat
    stand_ins, dropped = outlier_texts(matching) if exposure else ([], 0)
    with_distance = (
        fitting
        and training is not None
        and (ocfg.score == "distance" or (ocfg.score == "auto" and (has_oos or bool(stand_ins))))
    )
    logits, pooled = model.forward(validation[0], pooled=with_distance)
    known = [i for i, y in enumerate(validation[1]) if y in model.classes_]
    known_ids = model.label_ids([validation[1][i] for i in known])
    if config.train.calibrate:
        fitted.temperature = fit_temperature(logits[known], known_ids)
    summary = calibration_summary(logits[known], known_ids, fitted.temperature)
    fitted.summary["calibration"] = {k: summary[k] for k in ("temperature", "ece_before", "ece_after")}
    if fitting:
        distance, distances = None, None
        # The stand-ins get passes of their own, so the validation rows' numbers do not depend on them.
        extra_logits, extra_pooled = model.forward(stand_ins, pooled=with_distance) if stand_ins else (None, None)
        if with_distance:
            assert training is not None and pooled is not None
            distance = DistanceModel.fit(model.forward(training[0], pooled=True)[1], training[1], ocfg.label)
            distances = distance.distances(pooled)
            if extra_pooled is not None:
                distances = np.concatenate([distances, distance.distances(extra_pooled)])
        if extra_logits is not None:
            logits = np.concatenate([logits, extra_logits])
        fitted.thresholds = fit_thresholds(
            softmax(logits, fitted.temperature), [*validation[1], *[ocfg.label] * len(stand_ins)], model.classes_,
            oos_label=ocfg.label, max_accuracy_drop=ocfg.max_accuracy_drop,
            budget_confidence=ocfg.budget_confidence, per_intent=ocfg.per_intent, distances=distances,
            score=ocfg.score if with_distance else "confidence",
        )  # fmt: skip
        if exposure:
            fitted.thresholds.fit["outlier_exposure"] = {"rows": len(stand_ins), "dropped_matching": dropped}
        if fitted.thresholds.score == "distance":
            fitted.distance = distance
    return _with_oos_summary(fitted)


def _with_oos_summary(fitted: SoftmaxConfidence) -> SoftmaxConfidence:
    if fitted.thresholds is not None:
        fitted.summary["oos"] = {
            "global_threshold": fitted.thresholds.global_threshold,
            "per_intent_thresholds": len(fitted.thresholds.per_intent),
            "score": fitted.thresholds.score,
            **fitted.thresholds.fit,
        }
    return fitted


def fit_intent_confidence(
    model: Scorer, config: Config, validation: Texts | None, training: Texts | None = None
) -> IntentConfidence:
    """A multi-label model's calibration and per-intent thresholds, fitted on the validation rows whose intents
    it knows; without validation data, the plain sigmoid and ``oos.threshold`` (0.5 when unset) for every intent.
    When the validation data has no out-of-scope row, a sample of the bundled stand-ins, one for every ten
    validation rows (drawn with ``train.seed``), joins the threshold fit as rows with no intent."""
    from .evaluate.intent_thresholds import fit_intent_calibration, fit_intent_thresholds
    from .evaluate.oos import outlier_texts

    ocfg = config.oos
    fixed = ocfg.threshold if ocfg.threshold is not None else 0.5
    fitted = IntentConfidence(
        IntentCalibration.identity(len(model.classes_)), IntentThresholds.fixed(model.classes_, fixed)
    )
    rows = [(t, y) for t, y in zip(*validation) if model.knows(y)] if validation is not None else []
    if rows:
        logits = model.forward([t for t, _ in rows])[0]
        targets = np.asarray(model.targets([y for _, y in rows]), dtype=np.float64)
        if config.train.calibrate:
            fitted.calibration = fit_intent_calibration(logits, targets)
        fitted.summary["calibration"] = {
            "method": "platt_per_intent", "temperature": fitted.calibration.temperature, **fitted.calibration.fit,
        }  # fmt: skip
        if ocfg.threshold is None:
            probs = fitted.calibration.probabilities(logits)
            has_oos = bool((targets.sum(1) == 0).any())
            exposure = ocfg.outlier_exposure == "on" or (ocfg.outlier_exposure == "auto" and not has_oos)
            matching = [t for t, _ in rows] + (list(training[0]) if training is not None else [])
            stand_ins, dropped = outlier_texts(matching) if exposure else ([], 0)
            # Stand-ins as one message in ten: F1 over many more of them than real rows would trade every intent's
            # recall for rejecting them.
            share = max(1, len(rows) // 10)
            if len(stand_ins) > share:
                picked = np.random.default_rng(config.train.seed).choice(len(stand_ins), share, replace=False)
                stand_ins = [stand_ins[i] for i in sorted(picked)]
            if stand_ins:
                extra = fitted.calibration.probabilities(model.forward(stand_ins)[0])
                probs = np.concatenate([probs, extra])
                targets = np.concatenate([targets, np.zeros_like(extra)])
            fitted.thresholds = fit_intent_thresholds(probs, targets, model.classes_, floor=ocfg.multi_label_floor)
            if stand_ins:
                fitted.thresholds.fit["outlier_exposure"] = {"rows": len(stand_ins), "dropped_matching": dropped}
    fitted.summary["oos"] = {"score": "per_intent_probability", **fitted.thresholds.to_dict()}
    return fitted
