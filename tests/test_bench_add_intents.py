"""benchmarks/add_intents.py: the held-out intents are a seeded draw, the quick slice keeps every intent, and the
per-group accuracy counts each intent's right answers; benchmarks/add_intents_replicates.py joins a seed's records and
refuses records that disagree."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
add_intents = pytest.importorskip("benchmarks.add_intents")
replicates = pytest.importorskip("benchmarks.add_intents_replicates")


def test_held_out_intents_are_a_seeded_draw() -> None:
    intents = [f"intent_{i:02d}" for i in range(77)] * 2
    first = add_intents.hold_out(intents, 10, seed=0)
    assert len(first) == 10 and first == sorted(set(first)) and set(first) <= set(intents)
    assert first == add_intents.hold_out(list(reversed(intents)), 10, seed=0)  # the order of the rows does not matter
    assert first != add_intents.hold_out(intents, 10, seed=1)


def test_quick_slice_keeps_the_first_rows_of_every_intent() -> None:
    rows = [(f"{intent} {i}", intent) for i in range(5) for intent in ("a", "b")]
    assert add_intents.first_per_intent(rows, 2) == [("a 0", "a"), ("b 0", "b"), ("a 1", "a"), ("b 1", "b")]


def test_group_accuracy_weighs_each_intent_by_its_rows() -> None:
    report = {
        "a": {"recall": 1.0, "support": 3},
        "b": {"recall": 0.5, "support": 2},
        "c": {"recall": 0.0, "support": 0},
        "accuracy": 0.8,
    }
    assert add_intents.group_accuracy(report, ["a", "b"]) == pytest.approx(0.8)
    assert add_intents.group_accuracy(report, ["b"]) == 0.5
    assert add_intents.group_accuracy(report, ["c", "missing"]) is None


def test_the_table_has_a_row_per_run_with_its_own_test_rows() -> None:
    run = {"train_rows": 2292, "steps": 720, "train_seconds": 219.1, "wall_s": 260.0, "accuracy": 0.9208,
           "accuracy_old": 0.9187, "accuracy_new": None}  # fmt: skip
    record = {"rows": {"old_test": 2680, "test": 3080}, "results": {"v1": run, "extend": run}}
    lines = add_intents.markdown(record).splitlines()
    assert len(lines) == 4 and lines[2].startswith("| v1 | 2,292 | 2,680 | 720 | 219 | 260 | 0.9208 | 0.9187 | - |")
    assert lines[3].startswith("| extend | 2,292 | 3,080 |")


def _record(tmp: Path, name: str, seed: int, results: dict[str, float]) -> None:
    runs = {run: {"accuracy": value} for run, value in results.items()}
    (tmp / name).write_text(json.dumps({"train_seed": seed, "results": runs}))


def test_replicates_join_each_seeds_runs_and_compare_extend_with_full(tmp_path: Path) -> None:
    _record(tmp_path, "seed1-previous.json", 1, {"v1": 0.94, "extend": 0.90, "full": 0.93})
    _record(tmp_path, "seed1-current.json", 1, {"v1": 0.94, "extend": 0.92})
    _record(tmp_path, "seed2-current.json", 2, {"extend": 0.96, "full": 0.93})
    table, labels = replicates.collect(tmp_path)
    assert labels == ["previous", "current"]
    assert table == {1: {"v1": 0.94, "extend previous": 0.90, "full": 0.93, "extend current": 0.92},
                     2: {"extend current": 0.96, "full": 0.93}}  # fmt: skip
    lines = replicates.markdown(table, labels).splitlines()
    assert lines[2] == "| 1 | 0.9400 | 0.9300 | 0.9000 | 0.9200 |"
    assert lines[3] == "| 2 | - | 0.9300 | - | 0.9600 |"
    assert lines[4] == "| mean (seeds) | 0.9400 (1) | 0.9300 (2) | 0.9000 (1) | 0.9400 (2) |"
    assert lines[6] == "| extend − full, mean (seeds) |  |  | -0.0300 (1) | +0.0100 (2) |"


def test_replicates_refuse_a_seed_whose_records_disagree(tmp_path: Path) -> None:
    _record(tmp_path, "seed1-previous.json", 1, {"full": 0.93})
    _record(tmp_path, "seed1-current.json", 1, {"full": 0.92})
    with pytest.raises(SystemExit, match="another record says"):
        replicates.collect(tmp_path)
    _record(tmp_path, "seed1-current.json", 3, {"full": 0.93})
    with pytest.raises(SystemExit, match="its name says 1"):
        replicates.collect(tmp_path)


def test_replicates_before_rejection_read_their_own_metric_and_skip_runs_without_it(tmp_path: Path) -> None:
    runs = {"v1": {"accuracy": 0.94}, "extend": {"accuracy": 0.92, "accuracy_without_rejection": 0.93},
            "full": {"accuracy": 0.93, "accuracy_without_rejection": 0.935}}  # fmt: skip
    (tmp_path / "seed1-current.json").write_text(json.dumps({"train_seed": 1, "results": runs}))
    table, labels = replicates.collect(tmp_path, "accuracy_without_rejection")
    assert table == {1: {"extend current": 0.93, "full": 0.935}}
    assert replicates.markdown(table, labels).splitlines()[-1] == "| extend − full, mean (seeds) |  |  | -0.0050 (1) |"
