"""benchmarks/discovery.py and benchmarks/active_learning.py: how a discovery run is scored against the held-out
intents, and the random arm's draws."""

from __future__ import annotations

from collections import Counter

import pytest

discovery = pytest.importorskip("benchmarks.discovery")
active_learning = pytest.importorskip("benchmarks.active_learning")


def test_a_held_out_intent_is_found_by_its_purest_majority_cluster() -> None:
    rows = (
        [{"cluster": 0, "intents": Counter({"new_a": 1})}] * 6  # cluster 0: 6 of new_a, 2 oos -> purity 0.75
        + [{"cluster": 0, "intents": Counter({"oos": 1})}] * 2
        + [{"cluster": 1, "intents": Counter({"new_b": 2})}]  # a text asked twice counts twice
        + [{"cluster": 1, "intents": Counter({"known": 1})}] * 3  # cluster 1: mostly a known intent
        + [{"cluster": -1, "intents": Counter({"new_b": 1})}]  # noise: selected, in no cluster
    )
    test_counts = Counter({"new_a": 10, "new_b": 5, "known": 40, "oos": 20})
    result = discovery.score(rows, ["new_a", "new_b"], test_counts)
    assert result["found_intents"] == ["new_a"] and result["found"] == 1
    a, b = result["per_intent"]["new_a"], result["per_intent"]["new_b"]
    assert (a["purity"], a["recall"], a["selected"]) == (0.75, 0.6, 6)
    assert (b["best_cluster"], b["recall"], b["selected"]) == (None, 0.0, 3)
    assert result["clusters_by_majority"] == {"held_out": 1, "known": 1}
    assert (result["selected_rows"], result["noise_rows"], result["held_out_selected"]) == (14, 1, 9)
    assert result["mean_recall_held_out"] == 0.3


def test_the_random_arm_draws_seeded_distinct_unlabelled_texts() -> None:
    pool = [f"text {i}" for i in range(30)] + ["text 0"]  # a repeated text is one candidate
    labelled = {f"text {i}" for i in range(10)}
    first = active_learning.pick_random(pool, labelled, 8, seed=3)
    assert first == active_learning.pick_random(list(reversed(pool)), labelled, 8, seed=3)
    assert first != active_learning.pick_random(pool, labelled, 8, seed=4)
    assert len(set(first)) == 8 and not set(first) & labelled
    assert sorted(active_learning.pick_random(pool, labelled, 100, seed=3)) == sorted(set(pool) - labelled)
