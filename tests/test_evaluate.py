"""Metrics pinned on fixed predictions (values worked out by hand in the comments), and the report files."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import numpy as np
import pytest

from intentune import DataError, evaluate_predictions
from intentune.evaluate import confusion_order, render_html

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
    assert "| `c` | `a` | 1 |" in md
    assert "## Calibration" not in md and "## Out of scope" not in md


def test_save_writes_every_file(report, tmp_path: Path) -> None:
    paths = report.save(tmp_path, extra={"evaluated_on": "test"})
    metrics = json.loads(paths["metrics"].read_text())
    assert metrics["accuracy"] == pytest.approx(4 / 6) and metrics["evaluated_on"] == "test"
    assert metrics["report"]["macro avg"]["support"] == 6
    assert len(paths["errors"].read_text().splitlines()) == 2
    assert paths["report"].read_text().startswith("# Evaluation report")
    png = paths["confusion_matrix"].read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    assert paths["html"].read_text().startswith("<!DOCTYPE html>")
    assert "calibration" not in metrics and "oos" not in metrics
    assert set(paths) == {"metrics", "report", "html", "errors", "confusion_matrix"}  # no data for the other pictures


def test_mismatched_lengths_are_refused() -> None:
    with pytest.raises(DataError, match="3 true labels but 2 predictions"):
        evaluate_predictions(["a", "b", "a"], ["a", "b"], ["a", "b"])


# Four intents, no out-of-scope rows; rejection (confidence below 0.5) turns one right answer for a into oos.
# Logits 8 vs 0 give confidence ~0.999; [0.1, 0, 0, 0] gives a with confidence ~0.27, which is rejected.
OOS_CLASSES, OOS_TRUE = list("abcd"), list("aaabbccdd")
OOS_LOGITS = np.array([[0.1, 0, 0, 0]] + [[8.0 if c == y else 0.0 for c in "abcd"] for y in OOS_TRUE[1:]])


def test_rejection_without_oos_rows_keeps_the_oos_row_out_of_the_averages() -> None:
    from intentune.evaluate import evaluate_logits
    from intentune.evaluate.oos import Thresholds

    report = evaluate_logits(OOS_LOGITS, OOS_TRUE, OOS_CLASSES, thresholds=Thresholds("oos", 0.5))
    r = report.report
    # a: 2 of 3 answered right, none wrong -> precision 1, recall 2/3, F1 0.8; b, c, d: F1 1.
    assert report.labels == [*OOS_CLASSES, "oos"] and r["oos"] == {"precision": 0.0, "recall": 0.0,
                                                                    "f1-score": 0.0, "support": 0}  # fmt: skip
    assert r["a"]["recall"] == pytest.approx(2 / 3, abs=1e-6) and r["a"]["f1-score"] == pytest.approx(0.8)
    assert r["macro avg"]["f1-score"] == pytest.approx((0.8 + 3) / 4, abs=1e-6)  # not (0.8 + 3) / 5 = 0.76
    assert r["macro avg"]["recall"] == pytest.approx((2 / 3 + 3) / 4, abs=1e-6)
    assert r["weighted avg"]["f1-score"] == pytest.approx((3 * 0.8 + 6) / 9, abs=1e-6)
    assert r["macro avg"]["support"] == r["weighted avg"]["support"] == 9
    assert report.accuracy == pytest.approx(8 / 9) and report.averages_leave_out == ["oos"]
    assert [(e["true"], e["predicted"]) for e in report.errors] == [("a", "oos")]  # the rejection is an error
    assert report.oos is not None and report.oos["oos_support"] == 0 and report.warnings == []
    assert "(macro and weighted averages leave out oos)" in report.to_text()
    assert report.to_dict()["averages_leave_out"] == ["oos"]


def test_oos_rows_in_the_data_put_the_oos_label_in_the_averages() -> None:
    # The same answers with the first row's true label oos: the rejection is now right, F1 of oos is 1.
    true, answers = ["oos", *OOS_TRUE[1:]], ["oos", *OOS_TRUE[1:]]
    report = evaluate_predictions(true, answers, OOS_CLASSES, oos_label="oos")
    assert report.labels == [*OOS_CLASSES, "oos"] and report.averages_leave_out == []
    assert report.report["macro avg"]["f1-score"] == 1.0 and report.accuracy == 1.0


def test_explicit_oos_intent_without_oos_rows_stays_out_of_the_averages() -> None:
    # The model has oos as one of its intents, the data has none, and one answer is oos.
    report = evaluate_predictions(list("aabb"), list("aobb"), ["a", "b", "o"], oos_label="o")
    assert report.labels == ["a", "b", "o"] and report.averages_leave_out == ["o"]
    assert report.report["macro avg"]["f1-score"] == pytest.approx((2 / 3 + 1) / 2, abs=1e-6)


UNKNOWN_WARNING = (
    "2 intents in the evaluation data are not among the model's intents: y, z (3 rows); they count as errors "
    "(add training examples for them, or drop those rows)"
)


@pytest.fixture
def unknown_report():
    """true a a z z y b / predicted a b a b a b: z and y are intents the model was not trained on."""
    true, pred = list("aazzyb"), list("ababab")
    return evaluate_predictions(
        true, pred, ["a", "b"], texts=[f"t{i}" for i in range(6)], confidences=[0.9, 0.8, 0.7, 0.6, 0.5, 0.4]
    )


def test_unknown_intents_are_reported_as_errors(unknown_report) -> None:
    r = unknown_report.report
    assert unknown_report.labels == ["a", "b", "y", "z"]
    assert unknown_report.unknown_intents == {"y": 1, "z": 2} and unknown_report.warnings == [UNKNOWN_WARNING]
    assert unknown_report.accuracy == pytest.approx(2 / 6)
    assert r["z"] == {"precision": 0.0, "recall": 0.0, "f1-score": 0.0, "support": 2}
    assert r["y"] == {"precision": 0.0, "recall": 0.0, "f1-score": 0.0, "support": 1}
    # a: 1 of 3 answers right -> precision 1/3, recall 1/2, F1 0.4; b: 1 of 3 answers right -> 1/3, 1, 0.5.
    # The averages are over the model's intents a and b; the unknown rows lower a's and b's precision.
    assert r["macro avg"]["f1-score"] == pytest.approx((0.4 + 0.5) / 2, abs=1e-6)
    assert r["macro avg"]["support"] == 3 and unknown_report.averages_leave_out == ["y", "z"]
    np.testing.assert_array_equal(unknown_report.confusion, [[1, 1, 0, 0], [0, 1, 0, 0], [1, 0, 0, 0], [1, 1, 0, 0]])
    assert [(e["index"], e["true"], e["predicted"]) for e in unknown_report.errors] == [
        (1, "a", "b"), (2, "z", "a"), (3, "z", "b"), (4, "y", "a"),
    ]  # fmt: skip


def test_unknown_intents_show_in_every_rendering(unknown_report, tmp_path: Path) -> None:
    text = unknown_report.to_text()
    assert text.startswith(f"warning: {UNKNOWN_WARNING}\n\n")
    assert "    accuracy                            0.333          6" in text  # all rows, not the averages' 3
    assert "           z      0.000      0.000      0.000          2" in text
    md = unknown_report.to_markdown()
    assert md.startswith(f"> **Warning:** {UNKNOWN_WARNING}\n\n**Accuracy: 0.333** (6 examples)")
    assert "| `z` | 0.000 | 0.000 | 0.000 | 2 |" in md
    page = render_html(unknown_report)
    assert html.escape(UNKNOWN_WARNING) in page
    assert page.index(html.escape(UNKNOWN_WARNING)) < page.index('<div class="cards">')
    assert '<div class="v">6</div><div class="k">examples</div>' in page
    data = json.loads(json.dumps(unknown_report.to_dict()))
    assert data["unknown_intents"] == {"y": 1, "z": 2} and data["warnings"] == [UNKNOWN_WARNING]
    paths = unknown_report.save(tmp_path)
    metrics = json.loads(paths["metrics"].read_text())
    assert metrics["unknown_intents"] == {"y": 1, "z": 2} and metrics["num_errors"] == 4
    assert {json.loads(line)["true"] for line in paths["errors"].read_text().splitlines()} == {"a", "y", "z"}
    assert UNKNOWN_WARNING in paths["report"].read_text()


def test_unknown_intents_through_logits() -> None:
    from intentune.evaluate import evaluate_logits

    logits = np.array([[8.0, 0.0], [0.0, 8.0], [8.0, 0.0]])
    report = evaluate_logits(logits, ["a", "b", "q"], ["a", "b"])
    assert report.unknown_intents == {"q": 1} and report.labels == ["a", "b", "q"]
    assert report.warnings == [
        "1 intent in the evaluation data is not among the model's intents: q (1 row); it counts as errors "
        "(add training examples for it, or drop those rows)"
    ]
    assert report.correct.tolist() == [True, True, False] and report.accuracy == pytest.approx(2 / 3)
    assert report.calibration is not None and report.oos is None  # calibration on the rows the model knows


def test_ordinary_data_has_no_new_keys(report) -> None:
    assert report.warnings == [] and report.unknown_intents == {} and report.averages_leave_out == []
    assert set(report.to_dict()) == {"accuracy", "report", "labels", "confusion_matrix", "num_errors"}


# Calibration and out-of-scope results as evaluate_classifier fills them (numpy scalars included, as they come).
CALIBRATION = {
    "temperature": np.float64(1.8),
    "bins": 10,
    "ece_before": 0.2134,
    "ece_after": 0.0431,
    "reliability_before": [
        {"lower": 0.3, "upper": 0.4, "count": np.int64(1), "confidence": 0.4, "accuracy": 0.0},
        {"lower": 0.6, "upper": 0.7, "count": 2, "confidence": 0.65, "accuracy": 0.5},
        {"lower": 0.8, "upper": 0.9, "count": 2, "confidence": 0.85, "accuracy": 0.5},
        {"lower": 0.9, "upper": 1.0, "count": 1, "confidence": 0.9, "accuracy": 1.0},
    ],
    "reliability_after": [
        {"lower": 0.3, "upper": 0.4, "count": 2, "confidence": 0.35, "accuracy": 0.5},
        {"lower": 0.6, "upper": 0.7, "count": 4, "confidence": 0.68, "accuracy": 0.75},
    ],
}
OOS = {
    "label": "oos",
    "threshold": {"global": 0.55, "per_intent": {"a": 0.6, "b": 0.5}},
    "in_scope_support": 5,
    "oos_support": 1,
    "in_scope_accuracy": 0.8,
    "oos_precision": 0.5,
    "oos_recall": 1.0,
    "oos_f1": 0.666667,
    "without_rejection": {"in_scope_accuracy": 0.8, "oos_precision": 0.0, "oos_recall": 0.0, "oos_f1": 0.0},
    "coverage_curve": [
        {"threshold": t / 10, "coverage": round(1 - t / 12, 6), "accuracy": round(0.8 + t / 60, 6)} for t in range(11)
    ],
}

EXPECTED_SUMMARY = """
calibration: temperature 1.800, ECE 0.213 -> 0.043 (raw -> calibrated, 10 bins)
out of scope (oos): in-scope accuracy 0.800, OOS precision 0.500, recall 1.000, F1 0.667
  without rejection: in-scope accuracy 0.800, OOS precision 0.000, recall 0.000, F1 0.000
  rejection thresholds: confidence below 0.550, per-intent for 2 intents"""

EXPECTED_MARKDOWN_SECTIONS = """
## Calibration

Temperature scaling with T = 1.800. Expected calibration error (ECE, 10 equal-width confidence bins) on this data:

| probabilities | ECE |
|---|---:|
| raw (T = 1) | 0.213 |
| calibrated (T = 1.800) | 0.043 |

## Out of scope

Out-of-scope label `oos`: 5 in-scope and 1 out-of-scope examples.

| | in-scope accuracy | OOS precision | OOS recall | OOS F1 |
|---|---:|---:|---:|---:|
| with rejection | 0.800 | 0.500 | 1.000 | 0.667 |
| without rejection | 0.800 | 0.000 | 0.000 | 0.000 |

Rejection thresholds: confidence below 0.550, per-intent for 2 intents."""

SCRIPT = "<script>alert('pwned')</script> & more"


@pytest.fixture
def full_report():
    texts = ["t0", "t1", SCRIPT, "t3", "t4", "t5"]
    confidences = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4]
    report = evaluate_predictions(TRUE, PRED, LABELS, texts=texts, confidences=confidences)
    report.confidences = np.array(confidences)
    report.correct = np.array(TRUE) == np.array(PRED)
    report.calibration, report.oos = CALIBRATION, OOS
    return report


def test_text_adds_calibration_and_oos_lines(full_report) -> None:
    expected = EXPECTED_TEXT.replace("\n\nmost confused", "\n" + EXPECTED_SUMMARY + "\n\nmost confused")
    assert full_report.to_text() == expected


def test_markdown_adds_calibration_and_oos_sections(full_report) -> None:
    assert full_report.to_markdown().endswith(EXPECTED_MARKDOWN_SECTIONS)


def test_markdown_without_a_global_threshold(full_report) -> None:
    full_report.oos = {**OOS, "threshold": {"global": None, "per_intent": {}}}
    assert full_report.to_markdown().endswith("Rejection thresholds: no global one, per-intent for 0 intents.")


def test_dict_has_calibration_and_oos_as_plain_json(full_report) -> None:
    data = json.loads(json.dumps(full_report.to_dict()))  # numpy scalars would not serialise
    assert data["calibration"]["temperature"] == 1.8 and data["calibration"]["reliability_before"][0]["count"] == 1
    assert data["oos"]["threshold"] == {"global": 0.55, "per_intent": {"a": 0.6, "b": 0.5}}
    assert data["oos"]["coverage_curve"][10] == {"threshold": 1.0, "coverage": 0.166667, "accuracy": 0.966667}


def test_html_is_self_contained_and_escaped(full_report) -> None:
    page = render_html(full_report, title="Shop <assistant>", extra={"model": "runs/x", "sizes": {"test": 6}})
    for number in ("0.667", "0.367", "0.600", "0.043", "1.800", "0.550", "per-intent for 2 intents"):
        assert number in page
    assert re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page) is None
    assert "url(" not in page and "@import" not in page
    assert SCRIPT not in page and html.escape(SCRIPT) in page
    assert "<title>Shop &lt;assistant&gt;</title>" in page
    assert page.count('src="data:image/png;base64,') == 4  # confusion, confidence, reliability, coverage


def test_html_caps_the_errors_table() -> None:
    true, pred = ["a"] * 1005, ["b"] * 1005
    page = render_html(evaluate_predictions(true, pred, ["a", "b"], texts=[f"u{i}" for i in range(1005)]))
    assert "The 1,000 most confident of 1,005 errors; errors.jsonl has all of them." in page
    assert ">u999<" in page and ">u1000<" not in page


def test_save_writes_every_picture_and_the_html(full_report, tmp_path: Path) -> None:
    paths = full_report.save(tmp_path)
    names = ("confusion_matrix", "confidence_histogram", "reliability", "coverage")
    assert set(paths) == {"metrics", "report", "html", "errors", *names}
    for name in names:
        assert paths[name] == tmp_path / f"{name}.png" and paths[name].read_bytes()[:4] == b"\x89PNG"
    metrics = json.loads(paths["metrics"].read_text())
    assert metrics["calibration"]["ece_after"] == 0.0431 and metrics["oos"]["oos_recall"] == 1.0
    assert "## Out of scope" in paths["report"].read_text()
    assert html.escape(SCRIPT) in paths["html"].read_text()


def _many_intents() -> tuple[list[str], list[str], list[str]]:
    """40 intents, each right 5 times; i05 and i30 are mutually confused (3 + 2), i10 -> i20 and i20 -> i35 once."""
    labels = [f"i{k:02d}" for k in range(40)]
    true = [x for x in labels for _ in range(5)]
    pred = list(true)
    for t, p in [("i05", "i30")] * 3 + [("i30", "i05")] * 2 + [("i10", "i20"), ("i20", "i35")]:
        true.append(t)
        pred.append(p)
    return true, pred, labels


def test_confusion_order_keeps_only_confused_intents_and_puts_pairs_together() -> None:
    true, pred, labels = _many_intents()
    report = evaluate_predictions(true, pred, labels)
    order = [labels[i] for i in confusion_order(report.confusion)]
    assert sorted(order) == ["i05", "i10", "i20", "i30", "i35"]
    assert abs(order.index("i05") - order.index("i30")) == 1
    assert confusion_order(np.eye(3, dtype=int)) == []


def test_many_intents_plot_a_png_and_no_markdown_matrix(tmp_path: Path) -> None:
    true, pred, labels = _many_intents()
    report = evaluate_predictions(true, pred, labels)
    paths = report.save(tmp_path)
    assert paths["confusion_matrix"].read_bytes()[:4] == b"\x89PNG"
    md = report.to_markdown()
    assert "| true \\ predicted |" not in md
    assert "40 intents are too many for a table; `confusion_matrix.png` shows the 5 intents involved" in md
    assert "| `i05` | `i30` | 3 |" in md
