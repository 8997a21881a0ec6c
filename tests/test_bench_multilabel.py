"""The multi-label benchmark's tables: one record's, and several records' rows side by side, each naming its
record, machine and commit."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
multilabel = pytest.importorskip("benchmarks.multilabel")


def result(model: str, subset: float, pairs: float) -> dict:
    return {
        "model": model, "subset_accuracy": subset, "micro_f1": 0.9, "macro_f1": 0.89,
        "by_row_kind": {"single_intent": {"subset_accuracy": 0.93}, "multi_intent": {"subset_accuracy": pairs,
                                                                                    "micro_f1": 0.84}},
        "oos": {"recall": 0.79, "in_scope_rejected": 175},
    }  # fmt: skip


def test_records_render_side_by_side_with_their_machine_and_commit(tmp_path: Path) -> None:
    first = {"machine": {"cpu": "AMD EPYC", "commit": "5c4d0e8"}, "results": [result("softmax", 0.7179, 0.0)]}
    second = {"machine": {"cpu": "Intel(R) Xeon(R) Processor", "commit": "98dfed1"},
              "results": [result("sigmoid-pairs", 0.8270, 0.5527)]}  # fmt: skip
    paths = []
    for name, record in (("a.json", first), ("b.json", second)):
        (tmp_path / name).write_text(json.dumps(record))
        paths.append(str(tmp_path / name))
    lines = multilabel.render_records(paths).splitlines()
    assert lines[0].startswith("| model | record | subset acc. (all) |") and lines[1].startswith("|---|---|---:|")
    assert lines[2].startswith("| softmax | `a.json` (AMD EPYC, 5c4d0e8) | 0.7179 |")
    assert lines[3].startswith("| sigmoid-pairs | `b.json` (Intel Xeon, 98dfed1) | 0.8270 |")
    assert lines[3].endswith("| 0.5527 | 0.8400 | 0.7900 | 175 |")
    assert multilabel.markdown([result("softmax", 0.7179, 0.0)]).splitlines()[2].startswith("| softmax | 0.7179 |")
    only = multilabel.render_records(paths, ["sigmoid-pairs"]).splitlines()
    assert len(only) == 3 and only[2] == lines[3]  # the header, and the one model asked for
