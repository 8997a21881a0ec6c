"""benchmarks/oos_scores.py: the score comparison on rows where only the distance finds the out-of-scope ones."""

from __future__ import annotations

import numpy as np
from benchmarks.oos_scores import ceiling, compare_scores, markdown

from test_oos import CLASSES, probs_for


def rows(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """50 right in-scope answers (confidence 0.6-1.0, distance 0.5-1.5) and 10 out-of-scope rows answered
    with confidence 0.95 but far away (distance 3-4)."""
    conf = [*rng.uniform(0.6, 1.0, 50), *[0.95] * 10]
    probs = probs_for(["a", "b"] * 25 + ["a"] * 10, conf)
    distances = np.array([*rng.uniform(0.5, 1.5, 50), *rng.uniform(3.0, 4.0, 10)])
    return probs, distances, ["a", "b"] * 25 + ["oos"] * 10


def test_distance_wins_on_auroc_fit_and_ceiling() -> None:
    rng = np.random.default_rng(3)
    results = compare_scores(rows(rng), rows(rng), CLASSES, max_accuracy_drop=0.04, per_intent="off", floor=0.96)
    assert results["without_rejection"]["oos_recall"] == 0.0
    assert results["distance"]["auroc"] == 1.0 and results["confidence"]["auroc"] < 0.9
    assert (
        results["distance"]["fitted"]["oos_recall"] == 1.0
        and results["distance"]["fitted"]["chosen"] == "distance_global"
    )
    assert results["confidence"]["fitted"]["oos_recall"] == 0.0  # 0.95 is above every threshold the budget allows
    assert results["distance"]["ceiling"]["oos_recall"] == 1.0
    assert results["distance"]["ceiling"]["in_scope_accuracy"] == 1.0
    fitted = results["distance"]["fitted"]
    assert fitted["in_scope_accuracy"] >= 0.96  # within the 4-point budget on these rows too
    table = markdown(results, 0.96)
    row = f"| distance | 1.0000 | {fitted['in_scope_accuracy']:.4f} / 1.0000 / {fitted['oos_precision']:.4f} "
    assert row + "(distance_global) | 1.0000 |" in table.splitlines()
    auto = results["auto"]  # the model's own choice: the distance, judged on held-out rows too
    assert auto["chosen"] == "distance_global" and auto["test"]["oos_recall"] == 1.0
    assert auto["held_out"]["distance_global"]["oos_recall"] > auto["held_out"]["global"]["oos_recall"]
    assert any(line.startswith("| distance_global (chosen) |") for line in table.splitlines())


def test_ceiling_keeps_the_floor() -> None:
    # Signal: two right in-scope rows (0.1, 0.5), two oos rows (0.3, 0.9). Rejecting above 0.3 catches one oos
    # row and keeps both in-scope rows; rejecting above 0.1 would catch both but lose an in-scope row.
    true = np.array(["a", "a", "oos", "oos"], dtype=object)
    got = ceiling(np.array([0.1, 0.5, 0.3, 0.9]), ["a", "a", "a", "a"], true, "oos", floor=0.9)
    assert got["oos_recall"] == 0.5 and got["in_scope_accuracy"] == 1.0
    assert ceiling(np.array([0.1, 0.5, 0.3, 0.9]), ["a"] * 4, true, "oos", floor=0.4)["oos_recall"] == 1.0
