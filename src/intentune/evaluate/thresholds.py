"""Fitting the out-of-scope rejection thresholds on validation data (:func:`fit_thresholds`).

The threshold is not a magic number: it is the strictest one whose cost, the share of in-scope rows it turns from
a right answer into a rejection, stays within ``max_accuracy_drop`` on unseen rows, not only on the validation
rows it was fitted on. A threshold fitted on validation rows is their order statistic, so the cost it has on fresh
rows from the same distribution follows a Beta distribution whatever the scores look like (:func:`allowed_rejections`):
the fit picks the strictest threshold whose cost stays within the budget with probability ``budget_confidence``.
Since every stricter threshold rejects at least as many out-of-scope messages, that is the threshold with the best
out-of-scope recall the budget allows.

Per-intent thresholds reject the same share of each intent's right answers (an intent whose answers are all less
confident gets a lower threshold), shrunk towards the global one for intents with few validation rows; they are
used when validation out-of-scope rows, held out of their fit, show they catch more. The score (``oos.score``) is
chosen the same way: the distance when held-out validation out-of-scope rows show it catches more within the same
budget, else the confidence.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import DataError
from .oos import Thresholds, apply_rejection, oos_metrics

PER_INTENT_PRIOR = 20.0  # validation rows' worth of weight the global threshold gets in each per-intent one
SCORES = ("confidence", "distance")
HELD_OUT_FOLDS = 5  # cross-fitting folds that judge per-intent thresholds and the score on unseen validation rows
KEEP_MARGIN = 1e-6  # how far below the lowest kept score a threshold lies (float noise between batches)
BUDGET_CONFIDENCE = 0.9  # default probability that a fitted threshold's cost on unseen rows stays within the budget


def allowed_rejections(rows: int, max_accuracy_drop: float, confidence: float = BUDGET_CONFIDENCE) -> tuple[int, bool]:
    """How many right answers among ``rows`` in-scope validation rows the global threshold may reject.

    A threshold that rejects ``k`` of them keeps the ``(k+1)``-th lowest-scored right answer. Counting a wrong
    answer as scored infinitely high (rejecting it costs nothing), that threshold is the ``(k+1)``-th order
    statistic of ``rows`` draws, so its cost on unseen rows of the same distribution (the share of them right and
    rejected) is distributed as Beta(k+1, rows-k), whatever the distribution of the scores: it exceeds the budget
    ``B`` with probability ``P(Binomial(rows, B) <= k)``. ``k`` is the largest count whose probability is at
    most ``1 - confidence``, in other words whose one-sided Clopper-Pearson upper bound on the cost at level
    ``confidence`` is within the budget, and never more than ``floor(B * rows)`` (the budget on the validation
    rows themselves). ``confidence = 0`` gives ``floor(B * rows)``: the threshold judged on the validation rows alone.

    Returns:
        ``(k, met)``: ``met`` is False when not even ``k = 0`` keeps the bound (too few rows for this budget and
        confidence); ``k`` is then 0, the threshold at the least confident right answer.
    """
    cap = math.floor(max_accuracy_drop * rows + 1e-9)
    if confidence <= 0.0:
        return cap, True
    from scipy.stats import binom

    tail = binom.cdf(np.arange(cap + 1), rows, max_accuracy_drop)  # P(cost > budget) for k = 0 ... cap
    within = np.flatnonzero(tail <= 1.0 - confidence + 1e-12)
    return (int(within[-1]), True) if len(within) else (0, False)


def budget_summary(rows: int, max_accuracy_drop: float, confidence: float) -> dict[str, Any]:
    """What the fit promises about its global threshold's cost on unseen rows (JSON-ready): the in-scope rows and
    the budget it was fitted with, the right answers it may reject, whether the bound holds, the expected cost
    ``(k+1)/(rows+1)``, for ``confidence > 0`` the cost's upper bound at that confidence and, when the bound does
    not hold, ``rows_needed``: the fewest in-scope rows for which it would."""
    from scipy.stats import beta

    k, met = allowed_rejections(rows, max_accuracy_drop, confidence)
    out: dict[str, Any] = {
        "rows": rows,
        "max_accuracy_drop": max_accuracy_drop,
        "confidence": confidence,
        "allowed_rejections": k,
        "met": met,
        "expected_cost": round((k + 1) / (rows + 1), 6),
    }
    if not met and max_accuracy_drop > 0.0:  # the fewest rows for which the least confident right answer keeps it
        out["rows_needed"] = math.ceil(math.log(1.0 - confidence) / math.log(1.0 - max_accuracy_drop))
    if confidence > 0.0:
        out["cost_bound"] = round(float(beta.ppf(confidence, k + 1, rows - k)), 6)
    return out


def fit_thresholds(
    probs: np.ndarray,
    true: Sequence[str],
    classes: Sequence[str],
    *,
    oos_label: str = "oos",
    max_accuracy_drop: float = 0.01,
    budget_confidence: float = BUDGET_CONFIDENCE,
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
        budget_confidence: the probability with which the cost on unseen rows stays within ``max_accuracy_drop``
            (:func:`allowed_rejections`); 0 = the cost on the validation rows alone.
        per_intent: ``off`` (global only), ``on``, or ``auto``: per-intent thresholds when, fitted on part of the
            validation rows and judged on the rest (:data:`HELD_OUT_FOLDS`-fold cross-fitting), they catch more
            out-of-scope rows than the global threshold and lose no more right answers there than the budget's
            bound lets the global threshold reject (:func:`allowed_rejections`), so their cross-fitted cost passes
            the same bound. Per-intent thresholds rest on few rows each, so judged on the rows they were fitted on
            they always look within budget.
        distances: ``(n,)`` distance scores of the validation rows (:meth:`DistanceModel.distances`).
        score: ``confidence``, ``distance`` (needs ``distances``), or ``auto``: the distance when validation
            out-of-scope rows show it catches more than the confidence within the same budget (held-out rows too).

    The thresholds returned are fitted on all the validation rows; ``fit["candidates"]`` scores each candidate on
    those rows, ``fit["held_out"]`` on held-out rows (when a choice was made from out-of-scope rows), and
    ``fit["budget"]`` says what the global threshold's cost on unseen rows is expected to be (:func:`budget_summary`).

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
    allowed, _ = allowed_rejections(int(in_scope.sum()), max_accuracy_drop, budget_confidence)
    has_oos = bool((~in_scope).any())
    # Each score as a value that rejection keeps when high: the confidence, and the distance negated.
    values = {"confidence": confidences}
    if distances is not None and score != "confidence":
        values["distance"] = -np.asarray(distances, dtype=np.float64)
    if score == "distance":
        del values["confidence"]
    kinds = ("global",) if per_intent == "off" else ("global", "per_intent")
    candidates: dict[str, Thresholds] = {}
    scores: dict[str, dict[str, float | None]] = {}
    for name, value in values.items():
        for key, t in _candidates(intents, value, correct, allowed, oos_label, kinds, name).items():
            candidates[key] = t
            scores[key] = _score(t, intents, value, true, in_scope, explicit, oos_label)
    # Choices that out-of-scope rows decide are judged on rows the thresholds were not fitted on.
    choosing = has_oos and (per_intent == "auto" or len(values) == 2)
    budget = (max_accuracy_drop, budget_confidence)
    held_out = (
        _held_out(intents, values, correct, true, in_scope, explicit, budget, oos_label, kinds) if choosing else {}
    )
    chosen_of: dict[str, str] = {}
    for name in values:
        prefix = _prefix(name)
        chosen_of[name] = prefix + "global"
        if per_intent == "on":
            chosen_of[name] = prefix + "per_intent"
        elif per_intent == "auto" and has_oos:
            glob, per = held_out[prefix + "global"], held_out[prefix + "per_intent"]
            # Their cross-fitted cost passes the same binomial bound: no more right answers lost on held-out rows
            # than the bound lets the global threshold reject on the validation rows.
            affordable = round(per["cost"] * int(in_scope.sum())) <= allowed
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
    result.fit = {
        "rows": len(true),
        "in_scope_rows": int(in_scope.sum()),
        "oos_rows": int((~in_scope).sum()),
        "max_accuracy_drop": max_accuracy_drop,
        "budget": budget_summary(int(in_scope.sum()), max_accuracy_drop, budget_confidence),
        "score": used,
        "chosen": chosen,
        "without_rejection": _score(None, intents, confidences, true, in_scope, explicit, oos_label),
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
    budget: tuple[float, float],
    oos_label: str,
    kinds: Sequence[str],
) -> dict[str, dict[str, float]]:
    """Cross-fitting: every candidate fitted on all folds but one and applied to that one, over
    :data:`HELD_OUT_FOLDS` folds stratified by label (a fixed draw, so the fit is deterministic). Per candidate:
    ``cost``, the share of in-scope rows answered right without rejection and rejected on held-out rows, and
    ``oos_recall``, the share of out-of-scope rows rejected or answered out-of-scope on held-out rows.
    ``budget`` is ``(max_accuracy_drop, budget_confidence)``, applied to each fold's fitting rows."""
    folds = stratified_folds(true, HELD_OUT_FOLDS)
    lost = dict.fromkeys((_prefix(name) + kind for name in values for kind in kinds), 0)
    caught = dict(lost)
    names = np.asarray(intents, dtype=object)
    for fold in range(HELD_OUT_FOLDS):
        test, train = folds == fold, folds != fold
        if not train.any() or not test.any() or not in_scope[train].any():
            continue
        part = [i for i, keep in zip(intents, train) if keep]
        allowed, _ = allowed_rejections(int(in_scope[train].sum()), *budget)
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


def stratified_folds(labels: np.ndarray, folds: int, seed: int = 0) -> np.ndarray:
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
    """The highest threshold that rejects at most ``allowed`` of these (correct) answers, a hair
    (:data:`KEEP_MARGIN`, relative above 1) below the score of the lowest one it keeps: the same text scored again
    in a batch of other lengths differs in its last float digits, and must still be kept."""
    ordered = np.sort(correct_confidences)
    if len(ordered) == 0:
        return 0.0
    # Rejection is "value < threshold", so the (allowed+1)-th smallest itself is kept.
    kept = float(ordered[min(allowed, len(ordered) - 1)])
    return kept - KEEP_MARGIN * max(1.0, abs(kept))


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
                shrunk = (len(values) * raw + PER_INTENT_PRIOR * global_t) / (len(values) + PER_INTENT_PRIOR)
                out[c] = math.floor(shrunk * 1e6) / 1e6  # 6 decimals, rounded down: never rejects one more answer
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
) -> dict[str, float | None]:
    """In-scope accuracy and out-of-scope precision/recall/F1 of answers under ``thresholds`` (confidence-style:
    ``values`` below the threshold are rejected)."""
    out = explicit.copy()
    if thresholds is not None:
        out |= thresholds.reject(intents, values)
    answers = np.where(out, oos_label, np.asarray(intents, dtype=object))
    return oos_metrics(true, answers, oos_label)
