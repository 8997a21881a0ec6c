"""The regression gate: per-intent F1 differences between two evaluations, and the exit code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from intentune import DataError
from intentune.cli import app
from intentune.evaluate import evaluate_predictions
from intentune.evaluate.compare import compare_metrics, compare_runs


def metrics(pred: str) -> dict:
    """metrics.json of predictions against true labels 'aaabbbccc'."""
    return evaluate_predictions(list("aaabbbccc"), list(pred), list("abc")).to_dict()


BASE, SAME, WORSE_B = metrics("aaabbbccc"), metrics("aaabbbccc"), metrics("aaabbaccc")


def test_differences_by_hand() -> None:
    result = compare_metrics(BASE, WORSE_B, max_drop=0.1)
    # b: recall 2/3, precision 1 -> F1 0.8 (drop 0.2); a: precision 3/4, recall 1 -> F1 6/7 (drop 1/7).
    assert result.per_intent["b"] == {"a": 1.0, "b": pytest.approx(0.8), "difference": pytest.approx(-0.2)}
    assert result.per_intent["a"]["difference"] == pytest.approx(6 / 7 - 1, abs=1e-6)
    assert result.per_intent["c"]["difference"] == 0.0
    assert result.regressions == ["a", "b"]
    assert result.summary["accuracy"]["difference"] == pytest.approx(-1 / 9, abs=1e-6)
    assert compare_metrics(BASE, WORSE_B, max_drop=0.15).regressions == ["b"]
    assert compare_metrics(BASE, SAME).regressions == []


def test_text_names_regressions_and_missing_intents() -> None:
    other = evaluate_predictions(list("aaadd"), list("aaadd"), list("ad")).to_dict()
    text = compare_metrics(BASE, other, max_drop=0.05).to_text()
    assert "intents only in A: b, c" in text and "intents only in B: d" in text
    assert text.endswith("OK: no intent dropped more than 0.050 F1")
    text = compare_metrics(BASE, WORSE_B).to_text()
    assert "REGRESSION" in text and "FAIL: 2 intent(s) dropped more than 0.050 F1: a, b" in text


def with_rejection(old: bool) -> dict:
    """metrics.json where rejection turned one right answer for a into oos, on data without oos rows; ``old``: as
    intentune wrote it before the averages left the empty oos row out (it was one of the labels then)."""
    true, pred = list("aaabbbccc"), ["oos", *"aabbbccc"]
    if old:
        data = evaluate_predictions(true, pred, [*"abc", "oos"]).to_dict()
    else:
        data = evaluate_predictions(true, pred, list("abc"), oos_label="oos").to_dict()
    return {**data, "oos": {"label": "oos", "in_scope_accuracy": 8 / 9, "oos_recall": 0.0}}


def test_empty_oos_row_does_not_skew_the_comparison() -> None:
    # a: precision 1, recall 2/3 -> F1 0.8; b, c: 1. Macro F1 over a, b, c: 2.8 / 3; with the empty oos row: 2.8 / 4.
    old, new = with_rejection(old=True), with_rejection(old=False)
    assert old["report"]["macro avg"]["f1-score"] == pytest.approx(0.7)  # as an older intentune wrote it
    assert new["report"]["macro avg"]["f1-score"] == pytest.approx(2.8 / 3, abs=1e-6)
    for candidate in (old, new):
        result = compare_metrics(BASE, candidate, max_drop=0.1)
        assert result.summary["macro_f1"]["b"] == pytest.approx(2.8 / 3, abs=1e-6)
        assert result.summary["macro_f1"]["difference"] == pytest.approx(2.8 / 3 - 1, abs=1e-6)
        assert "oos" not in result.per_intent and result.regressions == ["a"]
        assert not any("only in B" in note for note in result.notes)
    assert compare_metrics(old, new).summary["macro_f1"]["difference"] == 0.0
    assert any("recomputed without the empty out-of-scope row 'oos'" in n for n in compare_metrics(BASE, old).notes)
    assert not any("recomputed" in n for n in compare_metrics(BASE, new).notes)


def test_warnings_of_either_run_become_notes() -> None:
    unknown = evaluate_predictions(list("aaabbbcccz"), list("aaabbbccca"), list("abc")).to_dict()
    result = compare_metrics(BASE, unknown)
    assert result.notes[0].startswith("B: 1 intent in the evaluation data is not among the model's intents: z (1 row)")
    assert result.per_intent["z"] == {"a": None, "b": 0.0, "difference": None}


def write_run(folder: Path, data: dict) -> Path:
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps(data))
    return folder


def test_cli_exit_codes(tmp_path: Path) -> None:
    a, b, c = write_run(tmp_path / "a", BASE), write_run(tmp_path / "b", SAME), write_run(tmp_path / "c", WORSE_B)
    runner = CliRunner()
    ok = runner.invoke(app, ["compare", str(a), str(b)])
    assert ok.exit_code == 0 and "OK: no intent dropped" in ok.output
    bad = runner.invoke(app, ["compare", str(a), str(c), "--max-drop", "0.15"])
    assert bad.exit_code == 1 and "FAIL: 1 intent(s)" in bad.output
    as_json = runner.invoke(app, ["compare", str(a), str(c / "metrics.json"), "--json"])
    assert json.loads(as_json.output)["regressions"] == ["a", "b"]
    missing = runner.invoke(app, ["compare", str(a), str(tmp_path / "nowhere")])
    assert missing.exit_code == 1 and "no metrics.json" in missing.output


def test_bad_metrics_file(tmp_path: Path) -> None:
    (tmp_path / "metrics.json").write_text("{not json")
    with pytest.raises(DataError, match="not valid JSON"):
        compare_runs(tmp_path, tmp_path)
