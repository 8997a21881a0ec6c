"""Temperature scaling and ECE on numbers worked out by hand, and on synthetic over-confident logits."""

from __future__ import annotations

import numpy as np
import pytest

from intentune.evaluate.calibration import (
    calibration_summary,
    expected_calibration_error,
    fit_temperature,
    reliability_bins,
    softmax,
)


def test_ece_by_hand() -> None:
    # One bin (0.8667, 0.9333]: two answers at 0.9, one right -> |0.5 - 0.9| = 0.4.
    assert expected_calibration_error(np.array([0.9, 0.9]), np.array([True, False])) == pytest.approx(0.4)
    # Two bins: {0.3: wrong} gap 0.3, {1.0, 1.0: right} gap 0 -> (1 * 0.3 + 2 * 0) / 3 = 0.1.
    conf, right = np.array([0.3, 1.0, 1.0]), np.array([False, True, True])
    assert expected_calibration_error(conf, right) == pytest.approx(0.1)
    assert expected_calibration_error(np.array([]), np.array([])) == 0.0


def test_reliability_bins_edges() -> None:
    table = reliability_bins(np.array([0.0, 0.1, 0.5, 1.0]), np.array([0, 0, 1, 1]), bins=10)
    assert [(b["lower"], b["upper"], b["count"]) for b in table] == [(0.0, 0.1, 2), (0.4, 0.5, 1), (0.9, 1.0, 1)]
    assert table[0]["confidence"] == pytest.approx(0.05) and table[0]["accuracy"] == 0.0


def over_confident(n: int = 4000, k: int = 5, factor: float = 3.0, seed: int = 0):
    """Labels drawn from softmax(z); the 'model' reports factor * z, so the right temperature is factor."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, k)) * 1.5
    p = softmax(z)
    labels = np.array([rng.choice(k, p=row) for row in p])
    return z * factor, labels


def test_fit_temperature_recovers_the_over_confidence() -> None:
    logits, labels = over_confident(factor=3.0)
    t = fit_temperature(logits, labels)
    assert 2.7 < t < 3.3
    assert fit_temperature(logits / 3.0, labels) == pytest.approx(1.0, abs=0.12)
    assert fit_temperature(np.zeros((0, 3)), []) == 1.0


def test_temperature_keeps_predictions_and_lowers_ece() -> None:
    logits, labels = over_confident(factor=3.0)
    t = fit_temperature(logits, labels)
    np.testing.assert_array_equal(softmax(logits, t).argmax(1), softmax(logits).argmax(1))
    summary = calibration_summary(logits, labels, t)
    assert summary["temperature"] == t
    assert summary["ece_before"] > 0.1  # heavily over-confident
    assert summary["ece_after"] < 0.03
    assert sum(b["count"] for b in summary["reliability_after"]) == len(labels)
