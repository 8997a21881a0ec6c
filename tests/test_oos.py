"""Out-of-scope thresholds: fitted values worked out by hand, per-intent thresholds that earn their place, the
metrics, and the classifier answering the out-of-scope label (tiny backbone)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from intentune import DataError, IntentClassifier, evaluate_classifier
from intentune.evaluate.oos import Thresholds, apply_rejection, coverage_curve, oos_metrics
from intentune.evaluate.thresholds import KEEP_MARGIN, allowed_rejections, fit_thresholds

from conftest import tiny_config, toy_data

CLASSES = ["a", "b"]


def probs_for(intents: list[str], confidences: list[float]) -> np.ndarray:
    """Two-class probabilities whose arg-max is ``intents`` with the given top probability."""
    out = np.zeros((len(intents), 2))
    for row, (intent, c) in enumerate(zip(intents, confidences)):
        out[row, CLASSES.index(intent)] = c
        out[row, 1 - CLASSES.index(intent)] = 1 - c
    return out


def test_global_threshold_is_the_highest_within_the_accuracy_budget() -> None:
    # 10 in-scope rows, 9 right (confidences 0.55 ... 0.95), 1 wrong at 0.99; 2 out-of-scope rows. Judged on the
    # validation rows alone (budget_confidence 0), as test_rejection_budget.py judges the bound.
    conf = [0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 0.99, 0.62, 0.9]
    intents = ["a"] * 9 + ["b", "a", "b"]
    true = ["a"] * 10 + ["oos", "oos"]
    fitted = fit_thresholds(
        probs_for(intents, conf), true, CLASSES, max_accuracy_drop=0.2, budget_confidence=0.0, per_intent="off"
    )
    # Budget: floor(0.2 * 10) = 2 right answers may be rejected -> reject 0.55 and 0.6, keep 0.65.
    assert fitted.global_threshold == pytest.approx(0.65 - KEEP_MARGIN)  # a hair below the kept answer
    assert fitted.per_intent == {}
    fit = fitted.fit
    assert fit["without_rejection"] == {
        "in_scope_accuracy": 0.9,
        "oos_precision": 0.0,
        "oos_recall": 0.0,
        "oos_f1": 0.0,
    }
    # With rejection: 7/10 in-scope right; out-of-scope answered for 0.55, 0.6 (in-scope) and 0.62 (oos).
    assert fit["candidates"]["global"] == {
        "in_scope_accuracy": 0.7, "oos_precision": pytest.approx(1 / 3, abs=1e-6), "oos_recall": 0.5,
        "oos_f1": pytest.approx(0.4, abs=1e-6),
    }  # fmt: skip
    assert fit["in_scope_rows"] == 10 and fit["oos_rows"] == 2 and fit["chosen"] == "global"
    assert fit["budget"] == {
        "rows": 10, "max_accuracy_drop": 0.2, "confidence": 0.0, "allowed_rejections": 2, "met": True,
        "expected_cost": 0.272727,
    }  # fmt: skip


def test_zero_budget_keeps_every_right_answer() -> None:
    fitted = fit_thresholds(probs_for(["a", "a", "b"], [0.6, 0.8, 0.7]), ["a", "a", "a"], CLASSES, max_accuracy_drop=0)
    assert fitted.global_threshold == pytest.approx(0.6 - KEEP_MARGIN)  # the least confident right answer is kept
    assert fit_thresholds(probs_for(["a"], [0.9]), ["a"], CLASSES).global_threshold == pytest.approx(0.9 - KEEP_MARGIN)


def test_per_intent_thresholds_win_when_one_intent_is_less_sure() -> None:
    """Intent a is answered with 0.85-1.0, intent b with 0.5-0.7; out-of-scope messages land on a at 0.72. One
    global threshold inside a 2-point budget cannot reach 0.72 without rejecting many b answers; per-intent
    thresholds can."""
    rng = np.random.default_rng(0)
    conf = [*rng.uniform(0.85, 1.0, 100), *rng.uniform(0.5, 0.7, 100), *[0.72] * 20]
    intents = ["a"] * 100 + ["b"] * 100 + ["a"] * 20
    true = ["a"] * 100 + ["b"] * 100 + ["oos"] * 20
    probs = probs_for(intents, conf)
    fitted = fit_thresholds(probs, true, CLASSES, max_accuracy_drop=0.02, per_intent="auto")
    assert fitted.fit["candidates"]["global"]["oos_recall"] == 0.0
    assert fitted.fit["candidates"]["per_intent"]["oos_recall"] == 1.0
    assert fitted.fit["chosen"] == "per_intent"
    assert fitted.per_intent["a"] > 0.72 > fitted.per_intent["b"]
    answers, _, _ = apply_rejection(CLASSES, probs, fitted, "oos")
    assert oos_metrics(true, answers, "oos")["in_scope_accuracy"] >= 0.98  # the budget holds on these rows
    off = fit_thresholds(probs, true, CLASSES, max_accuracy_drop=0.02, per_intent="off")
    assert off.per_intent == {} and off.fit["chosen"] == "global"


def test_auto_stays_global_without_out_of_scope_rows() -> None:
    conf = [0.9, 0.95, 0.6, 0.65] * 10
    fitted = fit_thresholds(probs_for(["a", "a", "b", "b"] * 10, conf), ["a", "a", "b", "b"] * 10, CLASSES)
    assert fitted.fit["chosen"] == "global" and fitted.per_intent == {}


def test_no_in_scope_rows_is_a_clear_error() -> None:
    with pytest.raises(DataError, match="no in-scope rows"):
        fit_thresholds(probs_for(["a"], [0.9]), ["oos"], CLASSES)


def test_apply_rejection_and_explicit_oos_intent() -> None:
    classes = ["a", "oos"]
    probs = np.array([[0.9, 0.1], [0.3, 0.7], [0.55, 0.45]])
    answers, conf, out = apply_rejection(classes, probs, Thresholds("oos", 0.6), "oos")
    assert answers == ["a", "oos", "oos"]  # kept; the out-of-scope intent won; rejected (0.55 < 0.6)
    np.testing.assert_allclose(conf, [0.9, 0.7, 0.55])
    assert out.tolist() == [False, True, True]
    assert apply_rejection(classes, probs, None, "oos")[0] == ["a", "oos", "a"]


def test_thresholds_round_trip_and_per_intent_lookup() -> None:
    t = Thresholds("none_of_these", 0.4, {"b": 0.7}, {"chosen": "per_intent"})
    assert Thresholds.from_dict(t.to_dict()) == t
    assert t.reject(["a", "b"], np.array([0.5, 0.5])).tolist() == [False, True]


def test_oos_metrics_and_coverage_curve() -> None:
    m = oos_metrics(["a", "b", "oos", "oos"], ["a", "oos", "oos", "b"], "oos")
    assert m == {"in_scope_accuracy": 0.5, "oos_precision": 0.5, "oos_recall": 0.5, "oos_f1": 0.5}
    curve = coverage_curve(np.array([0.2, 0.6, 0.9]), np.array([False, True, True]), points=11)
    assert curve[0] == {"threshold": 0.0, "coverage": 1.0, "accuracy": pytest.approx(2 / 3, abs=1e-6)}
    assert curve[5] == {"threshold": 0.5, "coverage": pytest.approx(2 / 3, abs=1e-6), "accuracy": 1.0}
    assert curve[10]["coverage"] == 0.0
    # On the distance: answered when at most the threshold, thresholds from the smallest to the largest distance.
    by_distance = coverage_curve(np.array([0.5, 1.0, 2.5]), np.array([True, True, False]), points=5, score="distance")
    assert [p["threshold"] for p in by_distance] == [0.5, 1.0, 1.5, 2.0, 2.5]
    assert [p["coverage"] for p in by_distance] == [
        pytest.approx(1 / 3, abs=1e-6),
        *[pytest.approx(2 / 3, abs=1e-6)] * 3,
        1.0,
    ]
    assert [p["accuracy"] for p in by_distance] == [1.0, 1.0, 1.0, 1.0, pytest.approx(2 / 3, abs=1e-6)]


def test_classifier_answers_out_of_scope_and_keeps_thresholds(tiny_encoder: Path, tmp_path: Path) -> None:
    """Validation carries out-of-scope rows the model never trains on; a fixed high threshold rejects all."""
    texts, labels = toy_data()
    val = (texts[:8] + ["what is the meaning of life", "tell me a joke"], labels[:8] + ["oos", "oos"])
    config = tiny_config(tiny_encoder, epochs=3)
    clf = IntentClassifier(config).fit(texts, labels, validation=val)
    assert clf.thresholds is not None and clf.thresholds.label == "oos"
    assert clf.temperature_ > 0.0 and "calibration" in clf.train_summary_ and "oos" in clf.train_summary_
    assert clf.train_summary_["oos"]["oos_rows"] == 2
    folder = clf.save(tmp_path / "model")
    loaded = IntentClassifier.load(folder)
    assert loaded.thresholds == clf.thresholds and loaded.temperature_ == clf.temperature_
    details = loaded.predict_details(["where is my parcel"], top_k=2)
    assert set(details[0]) == {"intent", "confidence", "is_out_of_scope", "intents", "top"}
    assert len(details[0]["top"]) == 2
    loaded.thresholds_ = Thresholds("oos", 1.0)
    assert loaded.predict(texts[:3]) == ["oos"] * 3
    report = evaluate_classifier(loaded, val[0], val[1])
    assert report.labels[-1] == "oos" and report.oos is not None
    assert report.oos["oos_recall"] == 1.0 and report.oos["oos_support"] == 2
    assert report.oos["in_scope_accuracy"] == 0.0 and report.calibration is not None


def test_fixed_threshold_and_no_rejection(tiny_encoder: Path) -> None:
    texts, labels = toy_data()
    config = tiny_config(tiny_encoder, epochs=2)
    config.oos.threshold = 0.3
    assert IntentClassifier(config).fit(texts, labels).thresholds.global_threshold == 0.3
    config.oos.reject = False
    clf = IntentClassifier(config).fit(texts, labels, validation=(texts, labels))
    assert clf.thresholds is None
    assert all(not d["is_out_of_scope"] for d in clf.predict_details(texts))


def test_report_has_no_empty_out_of_scope_row() -> None:
    """Rejection possible but never used, and no out-of-scope rows: the report keeps the model's intents only."""
    from intentune.evaluate import evaluate_logits

    logits = np.array([[4.0, 0.0], [0.0, 4.0]])
    report = evaluate_logits(logits, ["a", "b"], CLASSES, thresholds=Thresholds("oos", 0.5))
    assert report.labels == CLASSES and report.oos is None
    assert report.report["macro avg"]["f1-score"] == 1.0
    rejected = evaluate_logits(logits, ["a", "b"], CLASSES, thresholds=Thresholds("oos", 0.99))
    assert rejected.labels == [*CLASSES, "oos"] and rejected.oos["in_scope_accuracy"] == 0.0


def test_least_confident_right_answer_is_kept_after_fit(tiny_encoder: Path) -> None:
    """With no accuracy budget the fitted threshold equals the least confident right validation answer; predicting
    the validation texts again must keep that answer (probabilities in the same precision as the fit)."""
    texts, labels = toy_data()
    config = tiny_config(tiny_encoder, epochs=4)
    config.oos.max_accuracy_drop = 0.0
    clf = IntentClassifier(config).fit(texts, labels, validation=(texts, labels))
    plain = [clf.classes_[i] for i in clf.predict_proba(texts).argmax(axis=1)]
    right = sum(p == y for p, y in zip(plain, labels))
    assert sum(p == y for p, y in zip(clf.predict(texts), labels)) == right


def test_per_intent_thresholds_that_overspend_on_held_out_rows_are_not_chosen() -> None:
    """40 intents with 8 validation rows each, all answered right with the same spread of confidences, and 40
    out-of-scope rows answered at random intents with confidences in the same range. Per-intent thresholds fitted
    on 8 rows each catch more out-of-scope rows on the rows they were fitted on, within the budget there; judged
    on held-out rows (5-fold cross-fitting) they spend more of the budget than the global threshold does, so
    ``auto`` keeps the global one. With ``on`` they are used anyway."""
    rng = np.random.default_rng(5)
    classes = [f"i{k}" for k in range(40)]
    intents = [c for c in classes for _ in range(8)]
    conf = list(rng.uniform(0.3, 1.0, len(intents)))
    oos_intents = list(rng.choice(classes, 40))
    probs = np.zeros((len(intents) + 40, len(classes)))
    for row, (intent, c) in enumerate(zip(intents + oos_intents, conf + list(rng.uniform(0.3, 0.8, 40)))):
        probs[row] = (1 - c) / (len(classes) - 1)
        probs[row, classes.index(intent)] = c
    true = intents + ["oos"] * 40
    fitted = fit_thresholds(probs, true, classes, max_accuracy_drop=0.05, per_intent="auto")
    fit = fitted.fit
    # On the rows they were fitted on, both keep the budget and per-intent catches more...
    assert fit["candidates"]["per_intent"]["in_scope_accuracy"] >= 0.95
    assert fit["candidates"]["per_intent"]["oos_recall"] > fit["candidates"]["global"]["oos_recall"]
    # ...but on held-out rows per-intent costs more than the budget and more than the global threshold.
    held = fit["held_out"]
    assert held["folds"] == 5
    assert held["per_intent"]["cost"] > max(0.05, held["global"]["cost"])
    assert fit["chosen"] == "global" and fitted.per_intent == {}
    forced = fit_thresholds(probs, true, classes, max_accuracy_drop=0.05, per_intent="on")
    assert forced.fit["chosen"] == "per_intent" and forced.per_intent


def test_held_out_numbers_are_cross_fitted_by_hand() -> None:
    """The held-out cost and recall of the global threshold equal a by-hand 5-fold computation."""
    from intentune.evaluate.thresholds import HELD_OUT_FOLDS, stratified_folds

    rng = np.random.default_rng(7)
    conf = np.array([*rng.uniform(0.5, 1.0, 60), *rng.uniform(0.5, 0.8, 15)])  # >= 0.5: the arg-max stays
    intents = ["a", "b"] * 30 + ["a"] * 15
    true = np.array(["a", "b"] * 30 + ["oos"] * 15, dtype=object)
    fit = fit_thresholds(probs_for(intents, list(conf)), list(true), CLASSES, max_accuracy_drop=0.1).fit
    folds = stratified_folds(true, HELD_OUT_FOLDS)
    assert sorted(np.bincount(folds).tolist()) == [15] * 5  # 30 a, 30 b, 15 oos dealt evenly
    lost = caught = 0
    for k in range(HELD_OUT_FOLDS):
        train, test = folds != k, folds == k
        right = conf[train][true[train] != "oos"]
        t = np.sort(right)[allowed_rejections(len(right), 0.1)[0]]  # 48 rows: 1 may go, P(Bin(48, 0.1) <= 1) < 0.1
        lost += int(((conf < t) & test & (true != "oos")).sum())
        caught += int(((conf < t) & test & (true == "oos")).sum())
    assert fit["held_out"]["global"] == {"cost": round(lost / 60, 6), "oos_recall": round(caught / 15, 6)}
