"""Cross-validation and learning curves: fold wiring with a stand-in classifier (fast), then the real thing on a
tiny backbone through the CLI."""

from __future__ import annotations

import csv
import json
import zlib
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import confusion_matrix
from typer.testing import CliRunner

from intentune import Config, ConfigError, DataError, Examples, write_examples
from intentune.cli import app
from intentune.crossval import assign_folds, cross_validate, min_rows_for_folds
from intentune.learning_curves import check_fractions, learning_curve, stratified_subset

from conftest import tiny_sets, toy_data

runner = CliRunner()

TINY_TRAIN = tiny_sets(epochs=4)


def toy_examples() -> Examples:
    texts, labels = toy_data()
    return Examples(texts, labels, list(range(2, len(texts) + 2)), "toy.csv")


class FakeClassifier:
    """Stands in for IntentClassifier: records what each fit saw; predicts from a hash of the text."""

    fits: list[dict[str, list[str]]] = []

    def __init__(self, config: Config) -> None:
        self.config = config

    def fit(self, texts, labels, *, validation=None, callbacks=()) -> FakeClassifier:
        FakeClassifier.fits.append({"train": list(texts), "validation": list(validation[0]), "predicted": []})
        self.classes_ = sorted(set(labels))
        return self

    def predict_proba(self, texts) -> np.ndarray:
        FakeClassifier.fits[-1]["predicted"] += list(texts)
        probs = np.full((len(texts), len(self.classes_)), 0.1, dtype=np.float32)
        for i, text in enumerate(texts):
            probs[i, zlib.crc32(text.encode()) % len(self.classes_)] = 1.0
        return probs / probs.sum(axis=1, keepdims=True)


@pytest.fixture
def fake_classifier(monkeypatch: pytest.MonkeyPatch) -> type[FakeClassifier]:
    FakeClassifier.fits = []
    monkeypatch.setattr("intentune.model.IntentClassifier", FakeClassifier)
    return FakeClassifier


@pytest.fixture(scope="module")
def small_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The toy set with only two rows of 'goodbye' (lines 20 and 21): too few for 3 folds."""
    small = toy_examples().subset([i for i, label in enumerate(toy_examples().labels) if label != "goodbye"])
    path = tmp_path_factory.mktemp("small") / "small.csv"
    write_examples(small.extend(Examples(["bye now", "see you"], ["goodbye", "goodbye"])), path)
    return path


# ------------------------------------------------------------------ folds
def test_min_rows_for_folds() -> None:
    assert min_rows_for_folds(5) == 5
    assert min_rows_for_folds(5, train_rows=2) == 5
    assert min_rows_for_folds(2, train_rows=2) == 4  # 3 rows in 2 folds may leave only 1 to train on


def test_folds_are_stratified_and_cover_every_row() -> None:
    examples = toy_examples()
    folds = assign_folds(examples, 3, seed=1)
    assert sorted(set(folds.tolist())) == [1, 2, 3]
    for k in (1, 2, 3):
        held_out = Counter(label for label, f in zip(examples.labels, folds) if f == k)
        assert held_out == {intent: 2 for intent in examples.counts()}  # 6 rows per intent, 3 folds
    assert (assign_folds(examples, 3, seed=1) == folds).all()
    assert not (assign_folds(examples, 3, seed=2) == folds).all()


def test_intents_too_small_for_the_folds_are_named() -> None:
    examples = Examples(["a", "b", "c", "d", "e", "f", "g"], ["x", "x", "x", "x", "y", "y", "y"], [2, 3, 4, 5, 6, 7, 8])
    with pytest.raises(DataError, match=r"fewer than 5 examples cannot be spread over 5 folds: 'x' has 4 "
                                        r"\(line 2, 3, 4, 5\); 'y' has 3 \(line 6, 7, 8\)"):  # fmt: skip
        assign_folds(examples, 5)
    with pytest.raises(ConfigError, match="at least 2 folds"):
        assign_folds(examples, 1)


def test_cross_validation_trains_each_fold_without_its_held_out_rows(fake_classifier) -> None:
    examples = toy_examples()
    seen = []
    result = cross_validate(examples, Config(), folds=3, seed=5, on_fold=lambda k, acc: seen.append((k, acc)))
    assert result.probabilities.shape == (24, 4) and result.classes == sorted(examples.counts())
    np.testing.assert_allclose(result.probabilities.sum(axis=1), 1.0, rtol=1e-6)
    assert len(fake_classifier.fits) == 3 and [k for k, _ in seen] == [1, 2, 3]
    predicted_rows = []
    for k, fit in enumerate(fake_classifier.fits, start=1):
        held_out = {examples.texts[i] for i in np.flatnonzero(result.folds == k)}
        assert set(fit["predicted"]) == held_out
        assert held_out.isdisjoint(fit["train"]) and held_out.isdisjoint(fit["validation"])
        assert sorted(fit["train"] + fit["validation"]) == sorted(set(examples.texts) - held_out)
        assert len(fit["validation"]) == 4  # the validation split: 10% of each intent's 4 training rows, at least 1
        predicted_rows += fit["predicted"]
    assert sorted(predicted_rows) == sorted(examples.texts)  # every row predicted exactly once


def test_multi_intent_data_is_refused_unless_combinations_count_as_intents(fake_classifier) -> None:
    examples = toy_examples()
    examples.labels[0] = "greeting+order_status"
    with pytest.raises(ConfigError, match="set model.multi_label=false to count each combination"):
        cross_validate(examples, Config(), folds=3, seed=5)
    assert not fake_classifier.fits  # refused before any fine-tune
    config = Config()
    config.model.multi_label = False
    examples.labels[1:3] = ["greeting+order_status"] * 2  # three rows: enough for three folds
    assert "greeting+order_status" in cross_validate(examples, config, folds=3, seed=5).classes


def test_out_of_fold_report_is_the_sum_of_the_folds(fake_classifier) -> None:
    examples = toy_examples()
    result = cross_validate(examples, Config(), folds=3, seed=5)
    summed = np.zeros((4, 4), dtype=int)
    for k in (1, 2, 3):
        rows = np.flatnonzero(result.folds == k)
        fold = confusion_matrix([examples.labels[i] for i in rows], [result.predicted[i] for i in rows],
                                labels=result.classes)  # fmt: skip
        assert result.fold_accuracy[k - 1] == pytest.approx(np.trace(fold) / len(rows))
        summed += fold
    assert (result.report.confusion == summed).all()
    assert result.report.accuracy == pytest.approx(np.trace(summed) / 24)
    assert result.mean_accuracy == pytest.approx(result.report.accuracy)  # equal fold sizes
    assert 0.0 < result.report.accuracy < 1.0  # the hash predictions are neither all right nor all wrong


# ----------------------------------------------------------- learning curve
def test_subsets_are_stratified_nested_and_keep_every_intent() -> None:
    examples = toy_examples()
    small, half = stratified_subset(examples, 0.1, min_per_intent=2), stratified_subset(examples, 0.5)
    assert small.counts() == {intent: 2 for intent in examples.counts()}
    assert half.counts() == {intent: 3 for intent in examples.counts()}
    assert set(small.texts) <= set(half.texts)
    assert len(stratified_subset(examples, 1.0)) == 24


def test_fractions_are_checked() -> None:
    assert check_fractions([1, 0.5, 0.5]) == [0.5, 1.0]
    with pytest.raises(ConfigError, match=r"above 0 and at most 1 .* found \[1.5, 0.0\]"):
        check_fractions([0.5, 1.5, 0.0])


def test_learning_curve_trains_once_per_fraction(fake_classifier) -> None:
    examples = toy_examples()
    curve = learning_curve(examples, examples.subset(list(range(0, 24, 2))), Config(), fractions=[0.5, 0.25, 1])
    assert [p.fraction for p in curve.points] == [0.25, 0.5, 1.0]
    assert [p.rows for p in curve.points] == [8, 12, 24]
    assert [len(f["train"]) + len(f["validation"]) for f in fake_classifier.fits] == [8, 12, 24]
    assert all(len(f["predicted"]) == 12 for f in fake_classifier.fits)
    assert all(0.0 <= p.accuracy <= 1.0 and 0.0 <= p.macro_f1 <= 1.0 for p in curve.points)


def test_learning_curve_refuses_unknown_evaluation_intents() -> None:
    examples = toy_examples()
    with pytest.raises(DataError, match="intents not in the training data: refund"):
        learning_curve(examples, Examples(["money back"], ["refund"], source="eval.csv"), Config())


# ------------------------------------------------------- real, tiny backbone
def test_cv_command_writes_the_report_and_out_of_fold_predictions(
    toy_files: Path, tiny_encoder: Path, tmp_path: Path
) -> None:
    out = tmp_path / "cv"
    args = ["cv", str(toy_files / "train.csv"), "--folds", "3", "-o", str(out), "--backbone", str(tiny_encoder)]
    result = runner.invoke(app, [*args, "--quiet", *TINY_TRAIN])
    assert result.exit_code == 0, result.output
    assert "fold 3: accuracy" in result.output and "mean accuracy" in result.output and "macro avg" in result.output
    for name in ("metrics.json", "report.md", "errors.jsonl", "confusion_matrix.png", "oof_predictions.csv",
                 "config.toml"):  # fmt: skip
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    cv = metrics["cross_validation"]
    assert len(cv["fold_accuracy"]) == 3 and cv["mean_accuracy"] == pytest.approx(np.mean(cv["fold_accuracy"]))
    assert np.array(metrics["confusion_matrix"]).sum() == 24
    rows = list(csv.DictReader((out / "oof_predictions.csv").open(encoding="utf-8")))
    assert len(rows) == 24 and Counter(r["fold"] for r in rows) == {"1": 8, "2": 8, "3": 8}
    assert {r["text"] for r in rows} == set(toy_data()[0])
    correct = sum(r["intent"] == r["predicted"] for r in rows) / 24
    assert correct == pytest.approx(metrics["accuracy"])


def test_cv_command_names_intents_too_small_for_the_folds(small_file: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["cv", str(small_file), "--folds", "3", "-o", str(tmp_path)])
    assert result.exit_code == 1
    assert "error:" in result.output and "'goodbye' has 2 (line 20, 21)" in result.output


def test_learning_curve_command_writes_json_and_plot(toy_files: Path, tiny_encoder: Path, tmp_path: Path) -> None:
    out = tmp_path / "curve"
    args = ["learning-curve", str(toy_files / "train.csv"), "--eval", str(toy_files / "validation.csv"), "-o", str(out)]
    result = runner.invoke(app, [*args, "--fractions", "0.5,1", "--backbone", str(tiny_encoder), "--quiet",
                                 *TINY_TRAIN])  # fmt: skip
    assert result.exit_code == 0, result.output
    points = json.loads((out / "learning_curve.json").read_text())["points"]
    assert [(p["fraction"], p["rows"]) for p in points] == [(0.5, 12), (1.0, 24)]
    assert (out / "learning_curve.png").read_bytes()[:4] == b"\x89PNG"
    assert "macro-F1" in result.output


@pytest.mark.parametrize(
    ("fractions", "code", "message"),
    [("a,b", 2, "expected numbers separated by commas"), ("0.5,2", 1, "at most 1")],
)
def test_learning_curve_command_rejects_bad_fractions(
    toy_files: Path, tmp_path: Path, fractions: str, code: int, message: str
) -> None:
    train, validation = str(toy_files / "train.csv"), str(toy_files / "validation.csv")
    args = ["learning-curve", train, "--eval", validation, "-o", str(tmp_path)]
    result = runner.invoke(app, [*args, "--fractions", fractions])
    assert result.exit_code == code
    assert message in result.output
