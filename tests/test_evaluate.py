"""Metrics pinned on fixed predictions (values worked out by hand in the comments), and the report files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from intentune import DataError, evaluate_predictions

# true a a a b b c / predicted a a b b b a; the model also knows d, which the test data lacks.
TRUE, PRED, LABELS = list("aaabbc"), list("aabbba"), list("abcd")

EXPECTED_TEXT = """\
              precision     recall   f1-score    support

           a      0.667      0.667      0.667          3
           b      0.667      1.000      0.800          2
           c      0.000      0.000      0.000          1
           d      0.000      0.000      0.000          0

    accuracy                            0.667          6
   macro avg      0.333      0.417      0.367          6
weighted avg      0.556      0.667      0.600          6

most confused (true -> predicted: count):
  a -> b: 1
  c -> a: 1"""


@pytest.fixture
def report():
    return evaluate_predictions(
        TRUE, PRED, LABELS, texts=[f"t{i}" for i in range(6)], confidences=[0.9, 0.8, 0.7, 0.6, 0.5, 0.4]
    )


def test_metric_values(report) -> None:
    r = report.report
    assert report.accuracy == pytest.approx(4 / 6)
    assert r["a"] == {
        "precision": pytest.approx(2 / 3, abs=1e-6),
        "recall": pytest.approx(2 / 3, abs=1e-6),
        "f1-score": pytest.approx(2 / 3, abs=1e-6),
        "support": 3,
    }
    assert r["b"]["precision"] == pytest.approx(2 / 3, abs=1e-6) and r["b"]["recall"] == 1.0
    assert r["b"]["f1-score"] == pytest.approx(0.8)
    assert r["d"] == {"precision": 0.0, "recall": 0.0, "f1-score": 0.0, "support": 0}  # unseen intent keeps its row
    assert r["macro avg"]["f1-score"] == pytest.approx((2 / 3 + 0.8) / 4, abs=1e-6)
    assert r["weighted avg"]["f1-score"] == pytest.approx((3 * 2 / 3 + 2 * 0.8) / 6, abs=1e-6)
    np.testing.assert_array_equal(report.confusion, [[2, 1, 0, 0], [0, 2, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]])


def test_report_text_is_pinned(report) -> None:
    assert report.to_text() == EXPECTED_TEXT


def test_errors_list_misclassified_examples_most_confident_first(report) -> None:
    assert report.errors == [
        {"index": 2, "text": "t2", "true": "a", "predicted": "b", "confidence": 0.7},
        {"index": 5, "text": "t5", "true": "c", "predicted": "a", "confidence": 0.4},
    ]


def test_markdown_has_tables(report) -> None:
    md = report.to_markdown()
    assert "| `b` | 0.667 | 1.000 | 0.800 | 2 |" in md
    assert "| `a` | 2 | 1 | 0 | 0 |" in md
    assert "- `c` predicted as `a`: 1" in md


def test_save_writes_every_file(report, tmp_path: Path) -> None:
    paths = report.save(tmp_path, extra={"evaluated_on": "test"})
    metrics = json.loads(paths["metrics"].read_text())
    assert metrics["accuracy"] == pytest.approx(4 / 6) and metrics["evaluated_on"] == "test"
    assert metrics["report"]["macro avg"]["support"] == 6
    assert len(paths["errors"].read_text().splitlines()) == 2
    assert paths["report"].read_text().startswith("# Evaluation report")
    png = paths["confusion_matrix"].read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000


def test_unknown_true_intents_are_refused() -> None:
    with pytest.raises(DataError, match="intents the model was not trained on: z; remove those rows or retrain"):
        evaluate_predictions(["z"], ["a"], ["a", "b"])
