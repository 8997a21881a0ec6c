"""The benchmark suite's worker (``benchmarks.peers``) on the toy set with a tiny random encoder: every method it
runs in CI's environment (TF-IDF, intentune, the Hugging Face Trainer; SetFit needs ``.venv-bench``) returns the
same, consistent fields."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from conftest import DEVICE

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
peers = pytest.importorskip("benchmarks.peers")


def job(method: str, toy_files: Path, backbone: str = "", **options: object) -> object:
    """A job on the shared toy set's ``train.csv`` (all 24 rows) as training, validation and test data."""
    train = str(toy_files / "train.csv")
    return peers.Job(method, train, train, train, backbone=backbone, device=DEVICE, options=dict(options))


def check_common(result: dict, rows: int = 24) -> None:
    assert result["sizes"] == {"train": rows, "validation": rows, "test": rows}
    assert 0.0 <= result["metrics"]["accuracy"] <= 1.0 and result["metrics"]["oos_recall"] is None
    assert result["train_seconds"] > 0 and result["train_examples_per_s"] > 0
    assert 0 < result["time_to_final_val_accuracy_s"] <= result["train_seconds"] + 1e-6
    assert result["latency_ms"]["p50"] > 0 and result["latency_ms"]["p95"] >= result["latency_ms"]["p50"]


def test_tfidf_fits_the_toy_set_with_c_chosen_on_validation(toy_files: Path) -> None:
    result = peers.run_job(job("tfidf", toy_files))
    check_common(result)
    assert result["metrics"]["accuracy"] == 1.0  # its own training texts
    assert result["curve"] == []
    settings = result["settings"]
    by_c = settings["validation_accuracy_by_C"]
    assert settings["C_grid"] == [1.0, 10.0, 100.0] and set(by_c) == {"1.0", "10.0", "100.0"}
    # The best validation accuracy wins, a tie goes to the smaller C (the stronger regularization).
    best = max(by_c.values())
    assert settings["C"] == min(c for c in settings["C_grid"] if by_c[str(c)] == best)
    # The model kept is the chosen candidate: its validation accuracy, measured again afterwards, is the same.
    assert result["validation_accuracy"] == by_c[str(settings["C"])]
    assert settings["fitted_on"] == "train" and result["examples_processed"] == 3 * 24


def test_tfidf_features_join_word_and_character_grams() -> None:
    features = peers.tfidf_features().fit(["transfer money to my account", "card arrived broken"])
    analyzers = {name: (v.analyzer, v.ngram_range, v.sublinear_tf) for name, v in features.transformer_list}
    assert analyzers == {"word": ("word", (1, 2), True), "char": ("char_wb", (2, 5), True)}
    words = len(features.transformer_list[0][1].vocabulary_)
    # A misspelling no word gram knows still shares character grams with the training texts.
    row = features.transform(["tranfser mony"]).toarray()[0]
    assert not row[:words].any() and row[words:].any()


def test_intentune_records_its_curve_and_the_answer_with_rejection(toy_files: Path, tiny_encoder: Path) -> None:
    settings = ["train.epochs=4", "train.learning_rate=0.003", "train.head_learning_rate=0.03", "train.batch_size=8",
                "train.early_stopping_patience=0", "model.dropout=0"]  # fmt: skip
    result = peers.run_job(job("intentune", toy_files, str(tiny_encoder), set=settings))
    check_common(result)
    assert [p["epoch"] for p in result["curve"]] == [0.0, 1.0, 2.0, 3.0, 4.0]  # 0: the prototype head (few-shot)
    assert result["metrics"]["accuracy"] >= 0.75
    assert result["settings"]["epochs_run"] == 4 and result["settings"]["few_shot"]  # 6 rows per intent: few-shot
    rejected = result["settings"]["with_rejection"]  # answers with the fitted rejection can only lose accuracy
    assert rejected["accuracy"] <= result["metrics"]["accuracy"]
    assert result["examples_processed"] == 24 * 4 + 24 * 3  # 4 epochs + the 3 contrastive passes (the default)


def test_trainer_pads_to_max_length_and_evaluates_every_epoch(toy_files: Path, tiny_encoder: Path) -> None:
    options = {"epochs": 3, "learning_rate": 3e-3, "batch_size": 8, "max_length": 16}
    result = peers.run_job(job("trainer", toy_files, str(tiny_encoder), **options))
    check_common(result)
    assert [p["epoch"] for p in result["curve"]] == [1.0, 2.0, 3.0]
    assert result["settings"]["max_length"] == 16 and result["examples_processed"] == 72
    # The seed is set before the model (and its random classification layer) is made: a second run repeats it.
    again = peers.run_job(job("trainer", toy_files, str(tiny_encoder), **options))
    assert [(p["val_accuracy"], p["val_loss"]) for p in again["curve"]] == [
        (p["val_accuracy"], p["val_loss"]) for p in result["curve"]
    ]
