"""The multi-label evaluation report: its numbers against scikit-learn's multi-label metrics on indicator matrices
built here, the out-of-scope and unanswerable rows, the multi-intent split, co-occurring errors worked out by hand,
the report files and the comparison of two reports."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, hamming_loss, precision_recall_fscore_support
from sklearn.preprocessing import MultiLabelBinarizer

from intentune import DataError
from intentune.evaluate import MultiLabelReport, evaluate_multilabel
from intentune.evaluate.compare import compare_metrics

CLASSES = ["cancel_order", "refund", "track_order", "greet"]
# Several multi-intent rows (one written in another order, one with a repeat), single-intent and out-of-scope rows.
TRUE = [
    "cancel_order+refund",
    "refund+cancel_order",
    "track_order",
    "greet+track_order",
    "oos",
    "refund",
    "cancel_order+refund+track_order",
    "greet",
    "oos",
    "track_order+track_order",
    "cancel_order",
    "greet+refund",
]
PRED = [
    ["cancel_order", "refund"],
    ["cancel_order"],
    ["track_order"],
    ["greet", "track_order", "refund"],
    [],
    ["refund", "cancel_order"],
    ["cancel_order", "refund", "track_order"],
    [],
    ["greet"],
    ["track_order"],
    ["cancel_order"],
    ["refund"],
]


def sets(labels: list[str]) -> list[set[str]]:
    """The true intents, split here without the package's helpers."""
    return [set() if y == "oos" else set(y.split("+")) for y in labels]


def matrices(true: list[str], pred: list[list[str]], classes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    binarizer = MultiLabelBinarizer(classes=classes)
    return binarizer.fit_transform(sets(true)), binarizer.transform([set(p) for p in pred])


def test_metrics_equal_scikit_learn() -> None:
    report = evaluate_multilabel(TRUE, PRED, CLASSES)
    y, p = matrices(TRUE, PRED, CLASSES)
    assert report.accuracy == pytest.approx(accuracy_score(y, p), abs=1e-6)
    assert report.accuracy == pytest.approx(6 / 12, abs=1e-6)  # rows 0, 2, 4, 6, 9, 10
    assert report.hamming_loss == pytest.approx(hamming_loss(y, p), abs=1e-6)
    for average in ("micro", "macro", "weighted"):
        precision, recall, f1, _ = precision_recall_fscore_support(y, p, average=average, zero_division=0)
        row = report.report[f"{average} avg"]
        assert (row["precision"], row["recall"], row["f1-score"]) == pytest.approx((precision, recall, f1), abs=1e-6)
        assert row["support"] == y.sum()
    # Samples: an out-of-scope row answered with nothing scores 1, so zero_division=1.
    precision, recall, f1, _ = precision_recall_fscore_support(y, p, average="samples", zero_division=1)
    row = report.report["samples avg"]
    assert (row["precision"], row["recall"], row["f1-score"]) == pytest.approx((precision, recall, f1), abs=1e-6)
    precision, recall, f1, support = precision_recall_fscore_support(y, p, average=None, zero_division=0)
    for i, intent in enumerate(CLASSES):
        row = report.report[intent]
        assert set(row) == {"precision", "recall", "f1-score", "support"}
        assert (row["precision"], row["recall"], row["f1-score"]) == pytest.approx(
            (precision[i], recall[i], f1[i]), abs=1e-6
        )
        assert row["support"] == support[i]
    d = report.to_dict()
    assert d["multi_label"] is True and d["accuracy"] == d["subset_accuracy"] == report.accuracy
    assert d["micro"]["f1"] == pytest.approx(f1_score(y, p, average="micro"), abs=1e-6)
    assert d["macro"]["f1"] == report.report["macro avg"]["f1-score"]
    assert report.support == 12 and d["rows"] == {"single_intent": 5, "multi_intent": 5, "out_of_scope": 2}
    assert json.loads(report.to_json()) == d


def test_multi_intent_rows_are_split_out() -> None:
    report = evaluate_multilabel(TRUE, PRED, CLASSES)
    y, p = matrices(TRUE, PRED, CLASSES)
    sizes = np.array([len(s) for s in sets(TRUE)])
    for kind, rows in (("multi_intent", sizes > 1), ("single_intent", sizes == 1)):
        r = report.by_row_kind[kind]
        assert r is not None and r["rows"] == rows.sum()
        assert r["subset_accuracy"] == pytest.approx(accuracy_score(y[rows], p[rows]), abs=1e-6)
        assert r["micro_f1"] == pytest.approx(f1_score(y[rows], p[rows], average="micro"), abs=1e-6)
    # Multi-intent rows 0, 1, 3, 6, 11: right on 0 and 6 only; single-intent rows 2, 5, 7, 9, 10: right on 2, 9, 10.
    assert report.by_row_kind["multi_intent"]["subset_accuracy"] == pytest.approx(2 / 5)
    assert report.by_row_kind["single_intent"]["subset_accuracy"] == pytest.approx(3 / 5)
    text = report.to_text()
    assert "multi-intent rows: subset accuracy 0.400" in text and "Hamming loss" in text
    only_single = evaluate_multilabel(["a", "b"], [["a"], ["a"]], ["a", "b"])
    assert (
        only_single.by_row_kind["multi_intent"] is None and only_single.to_dict()["by_row_kind"]["multi_intent"] is None
    )


def test_out_of_scope_row_is_right_only_when_nothing_is_predicted() -> None:
    report = evaluate_multilabel(["oos", "oos", "a", "oos"], [[], ["a"], [], ["oos"]], ["a", "b"])
    assert report.accuracy == pytest.approx(2 / 4)  # rows 0 and 3 (the out-of-scope label is no intent)
    assert [e["index"] for e in report.errors] == [1, 2]
    assert report.errors[0]["predicted"] == "a" and report.errors[1]["predicted"] == "oos"
    assert report.oos == {
        "label": "oos",
        "support": 3,
        "answered_empty": 2,
        "recall": pytest.approx(2 / 3, abs=1e-6),
        "precision": pytest.approx(2 / 3, abs=1e-6),
        "in_scope_rejected": 1,
    }
    no_oos = evaluate_multilabel(["a", "b"], [["a"], ["b"]], ["a", "b"])
    assert no_oos.oos["recall"] is None and no_oos.oos["precision"] is None
    assert "cannot be measured" in no_oos.to_text()


def test_unanswerable_intents_are_listed_and_counted_wrong() -> None:
    report = evaluate_multilabel(["a+zz", "zz", "a", "b+yy"], [["a"], [], ["a"], ["b"]], ["a", "b"])
    assert report.accuracy == pytest.approx(1 / 4)  # row 0 has every intent the model knows, and is still wrong
    assert report.unanswerable == {"yy": 1, "zz": 2}
    assert "zz" not in report.report and "yy" not in report.report
    assert report.report["a"]["support"] == 2 and report.report["a"]["recall"] == 1.0
    assert report.errors[0]["missed"] == ["zz"] and report.errors[0]["true"] == "a+zz"
    assert len(report.warnings) == 1 and "yy, zz" in report.warnings[0] and "3 rows" in report.warnings[0]
    assert report.to_text().startswith("warning: 2 intents")
    assert report.to_dict()["unanswerable"] == {"yy": 1, "zz": 2}


def test_co_occurrence_by_hand() -> None:
    true = ["a+b", "a+b+c", "a+b", "c", "a+b", "oos"]
    pred = [["a"], ["a", "c"], ["a", "d"], ["c", "d"], ["a", "b"], ["d"]]
    report = evaluate_multilabel(true, pred, ["a", "b", "c", "d"])
    # b is missed beside a in rows 0, 1 and 2, beside c in row 1; d is added beside a and b (row 2) and c (row 3);
    # row 5's d has no true intent beside it, and the right row 4 adds nothing.
    assert report.co_occurrence["missed"] == [
        {"intent": "b", "alongside": "a", "count": 3},
        {"intent": "b", "alongside": "c", "count": 1},
    ]
    assert report.co_occurrence["added"] == [
        {"intent": "d", "alongside": "a", "count": 1},
        {"intent": "d", "alongside": "b", "count": 1},
        {"intent": "d", "alongside": "c", "count": 1},
    ]
    markdown = report.to_markdown()
    assert "| `b` | `a` | 3 |" in markdown and "| `d` | `c` | 1 |" in markdown
    assert report.errors[2]["missed"] == ["b"] and report.errors[2]["added"] == ["d"]


def test_calibration_over_intent_cells() -> None:
    # Every cell at 0.9, and 3 of the 8 cells true: one bin, ECE |3/8 - 0.9|.
    probs = np.full((4, 2), 0.9)
    report = evaluate_multilabel(["a+b", "a", "oos", "oos"], [["a", "b"], ["a"], [], []], ["a", "b"], probs=probs)
    assert report.calibration is not None and report.calibration["cells"] == 8
    assert report.calibration["ece"] == pytest.approx(0.9 - 3 / 8, abs=1e-6)
    assert [(b["count"], b["accuracy"]) for b in report.calibration["reliability"]] == [(8, pytest.approx(3 / 8))]
    assert "reliability" in report.figures()
    assert evaluate_multilabel(["a"], [["a"]], ["a", "b"]).calibration is None


def test_inputs_that_do_not_fit_raise() -> None:
    with pytest.raises(DataError, match="not among the model's intents: x"):
        evaluate_multilabel(["a"], [["x"]], ["a"])
    with pytest.raises(DataError, match="2 predictions"):
        evaluate_multilabel(["a"], [["a"], []], ["a"])
    with pytest.raises(DataError, match="shape"):
        evaluate_multilabel(["a"], [["a"]], ["a"], probs=np.zeros((1, 2)))


def test_save_writes_the_files_and_escapes_text(tmp_path: Path) -> None:
    texts = [f"message {i}" for i in range(len(TRUE))]
    texts[1] = "<script>alert('x')</script>"  # a wrong row, so it is listed
    probs = np.random.default_rng(0).random((len(TRUE), len(CLASSES)))
    report = evaluate_multilabel(TRUE, PRED, CLASSES, texts=texts, probs=probs, thresholds=[0.5, 0.4, 0.3, 0.6])
    paths = report.save(tmp_path / "eval", extra={"eval_file": "test.csv"})
    assert {p.name for p in paths.values()} == {
        "metrics.json",
        "report.md",
        "report.html",
        "errors.jsonl",
        "reliability.png",
    }
    metrics = json.loads(paths["metrics"].read_text(encoding="utf-8"))
    assert metrics["eval_file"] == "test.csv" and metrics["multi_label"] is True
    assert metrics["thresholds"] == {"cancel_order": 0.5, "refund": 0.4, "track_order": 0.3, "greet": 0.6}
    assert paths["report"].read_text(encoding="utf-8").startswith("# Evaluation report")
    errors = [json.loads(line) for line in paths["errors"].read_text(encoding="utf-8").splitlines()]
    assert len(errors) == metrics["num_errors"] == 6
    assert errors[0]["text"] == texts[1] and errors[0]["missed"] == ["refund"]
    assert len(errors[0]["probabilities"]) == 3
    page = paths["html"].read_text(encoding="utf-8")
    assert "<script>alert" not in page and "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert 'src="data:image/png;base64,' in page and "http://" not in page and "https://" not in page
    assert paths["reliability"].read_bytes().startswith(b"\x89PNG")


def test_compare_metrics_reads_two_reports() -> None:
    a = evaluate_multilabel(TRUE, PRED, CLASSES).to_dict()
    better = [sorted(s) for s in sets(TRUE)]  # every row right
    b = evaluate_multilabel(TRUE, better, CLASSES).to_dict()
    result = compare_metrics(a, b, max_drop=0.05)
    assert set(result.per_intent) == set(CLASSES)  # no average taken for an intent
    for intent in CLASSES:
        row = result.per_intent[intent]
        assert row["b"] == 1.0 and row["difference"] == pytest.approx(1.0 - a["report"][intent]["f1-score"])
    assert result.summary["accuracy"] == {"a": 0.5, "b": 1.0, "difference": 0.5}
    assert result.summary["macro_f1"]["b"] == 1.0
    assert compare_metrics(b, a, max_drop=0.05).regressions == [i for i in CLASSES if a["report"][i]["f1-score"] < 0.95]


def test_report_type() -> None:
    report = evaluate_multilabel(["a"], [["a"]], ["a"])
    assert isinstance(report, MultiLabelReport) and report.accuracy == 1.0 and report.errors == []
