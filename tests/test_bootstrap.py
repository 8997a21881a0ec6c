"""evaluate/bootstrap.py: paired bootstrap intervals for the difference between two models on the same rows."""

from __future__ import annotations

import numpy as np
import pytest

from intentune import DataError
from intentune.errors import IntentuneError
from intentune.evaluate.bootstrap import Interval, paired_bootstrap

LABELS = ["greet", "leave", "order"]


def rows(n_per_label: int) -> list[str]:
    return [label for label in LABELS for _ in range(n_per_label)]


def test_identical_predictions_give_a_zero_interval_within_noise() -> None:
    y_true = rows(10)
    pred = ["greet"] * 5 + y_true[5:]  # some mistakes, the same for both models
    result = paired_bootstrap(y_true, pred, list(pred), LABELS)
    for interval in [result.accuracy, result.macro_f1, *result.per_intent_f1.values()]:
        assert (interval.difference, interval.low, interval.high) == (0.0, 0.0, 0.0)
        assert interval.within_noise
    assert list(result.per_intent_f1) == LABELS


def test_a_clearly_better_model_has_an_interval_above_zero() -> None:
    y_true = rows(40)
    worse = ["greet" if i % 2 else label for i, label in enumerate(y_true)]  # about half wrong
    result = paired_bootstrap(y_true, worse, list(y_true), LABELS)
    assert result.accuracy.low > 0 and not result.accuracy.within_noise
    assert result.macro_f1.low > 0 and not result.macro_f1.within_noise
    assert result.accuracy.low <= result.accuracy.difference <= result.accuracy.high


def test_a_big_swing_on_a_tiny_intent_is_within_noise() -> None:
    # 9 rows of "order" among 300: A gets rows 0-2 right; B gets rows 3-8 right but misses rows 0-1.
    y_true = ["greet"] * 150 + ["leave"] * 141 + ["order"] * 9
    pred_a = y_true[:291] + ["order"] * 3 + ["greet"] * 6
    pred_b = y_true[:291] + ["greet"] * 2 + ["order"] * 6 + ["leave"]
    result = paired_bootstrap(y_true, pred_a, pred_b, LABELS)
    order = result.per_intent_f1["order"]
    assert order.difference == pytest.approx(0.3)  # F1 0.5 -> 0.8
    assert order.low < 0 < order.high and order.within_noise
    assert result.accuracy.within_noise


def test_point_differences_match_scikit_learn() -> None:
    from sklearn.metrics import accuracy_score, f1_score

    rng = np.random.default_rng(0)
    y_true = [LABELS[i] for i in rng.integers(0, 3, 200)]
    pred_a = [t if rng.random() < 0.7 else "oos" for t in y_true]  # "oos" is not in LABELS: counts as wrong
    pred_b = [t if rng.random() < 0.8 else LABELS[0] for t in y_true]
    result = paired_bootstrap(y_true, pred_a, pred_b, LABELS, resamples=50)

    def macro(pred: list[str]) -> float:
        return f1_score(y_true, pred, labels=LABELS, average="macro", zero_division=0)

    assert result.accuracy.difference == pytest.approx(accuracy_score(y_true, pred_b) - accuracy_score(y_true, pred_a))
    assert result.macro_f1.difference == pytest.approx(macro(pred_b) - macro(pred_a), abs=1e-6)
    per_label = f1_score(y_true, pred_b, labels=LABELS, average=None, zero_division=0) - f1_score(
        y_true, pred_a, labels=LABELS, average=None, zero_division=0
    )
    assert [result.per_intent_f1[label].difference for label in LABELS] == pytest.approx(per_label, abs=1e-6)


def test_the_seed_fixes_the_intervals() -> None:
    y_true = rows(20)
    pred_a = ["greet"] * 10 + y_true[10:]
    pred_b = y_true[:50] + ["leave"] * 10
    first, again, other = (paired_bootstrap(y_true, pred_a, pred_b, LABELS, seed=s) for s in (1, 1, 2))
    assert first == again and first.accuracy != other.accuracy
    assert (first.resamples, first.confidence, first.seed) == (1000, 0.95, 1)


def test_chunked_resampling_gives_the_same_intervals(monkeypatch: pytest.MonkeyPatch) -> None:
    import intentune.evaluate.bootstrap as bootstrap

    y_true = rows(20)
    pred_a = ["greet"] * 10 + y_true[10:]
    whole = paired_bootstrap(y_true, pred_a, list(y_true), LABELS, resamples=100)
    monkeypatch.setattr(bootstrap, "_CELLS_PER_CHUNK", 7 * len(y_true))  # seven resamples at a time
    assert paired_bootstrap(y_true, pred_a, list(y_true), LABELS, resamples=100) == whole


def test_within_noise_is_whether_the_interval_contains_zero() -> None:
    assert Interval(0.1, -0.02, 0.2).within_noise and Interval(0.0, 0.0, 0.0).within_noise
    assert not Interval(0.1, 0.01, 0.2).within_noise and not Interval(-0.1, -0.2, -0.01).within_noise


def test_bad_input_is_refused() -> None:
    with pytest.raises(DataError, match="one answer per row: 2 true labels, 1 and 2"):
        paired_bootstrap(["a", "b"], ["a"], ["a", "b"], ["a", "b"])
    with pytest.raises(DataError, match="at least one evaluation row and one label"):
        paired_bootstrap([], [], [], ["a"])
    with pytest.raises(IntentuneError, match="confidence in"):
        paired_bootstrap(["a"], ["a"], ["a"], ["a"], confidence=1.5)
