"""Multi-label models: `model.multi_label` off for single-intent data (training and scores exactly as before), a
sigmoid per intent that finds both intents of a planted two-intent message, per-intent calibration and
thresholds, the folder format, the ONNX runtime, the server's `intents`, the CLI, and validation intents that
training lacks."""

from __future__ import annotations

import itertools
import json
import logging
import random
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from intentune import Examples, IntentClassifier, ServeConfig, create_app, write_examples
from intentune.cli import app
from intentune.evaluate import evaluate_classifier
from intentune.evaluate.intent_thresholds import (
    IntentCalibration,
    fit_intent_calibration,
    fit_intent_thresholds,
    sigmoid,
)
from intentune.evaluate.multilabel_report import MultiLabelReport
from intentune.evaluate.report import EvalReport
from intentune.labels import intent_sets, join_intents, split_intents, wants_multi_label

from conftest import TOY, tiny_config, tiny_sets, toy_data

runner = CliRunner()


def planted() -> tuple[list[str], list[str]]:
    """The toy intents alone, plus three messages for each pair of intents that carry both ("a and b")."""
    texts, labels = toy_data()
    rng = random.Random(0)
    for a, b in itertools.combinations(TOY, 2):
        for _ in range(3):
            texts.append(f"{rng.choice(TOY[a])} and {rng.choice(TOY[b])}")
            labels.append(f"{b}+{a}")  # either order names the same combination
    return texts, labels


@pytest.fixture(scope="module")
def multi(tiny_encoder: Path) -> IntentClassifier:
    texts, labels = planted()
    return IntentClassifier(tiny_config(tiny_encoder)).fit(texts, labels, validation=(texts, labels))


# ------------------------------------------------------------------------------------------------ labels
def test_labels_split_into_sorted_intents_without_repeats_or_the_oos_label() -> None:
    assert split_intents("refund + cancel_order", "+") == ("cancel_order", "refund")
    assert split_intents("a+a+b", "+") == ("a", "b") and split_intents("c++", "+") == ("c",)
    assert split_intents("oos", "+", "oos") == () and split_intents("a+b", "") == ("a+b",)
    assert join_intents(["b", "a"], "+", "oos") == "a+b" and join_intents([], "+", "oos") == "oos"
    assert intent_sets(["a", "b+a", "oos"], "+", "oos") == [("a",), ("a", "b"), ()]
    assert wants_multi_label("auto", ["a", "b+a"], "+") and not wants_multi_label("auto", ["a", "c++"], "+")
    assert wants_multi_label(True, ["a", "b"], "+") and not wants_multi_label(False, ["a+b"], "+")


# ------------------------------------------------------------------------------------------ single-label
def test_single_intent_data_trains_and_scores_exactly_as_a_softmax_model(tiny_encoder: Path) -> None:
    texts, labels = toy_data()
    auto = IntentClassifier(tiny_config(tiny_encoder)).fit(texts, labels, validation=(texts, labels))
    config = tiny_config(tiny_encoder)
    config.model.multi_label = False
    off = IntentClassifier(config).fit(texts, labels, validation=(texts, labels))
    assert auto.is_multi_label is False and auto.metadata()["format_version"] == 2
    np.testing.assert_array_equal(auto.predict_proba(texts), off.predict_proba(texts))
    assert np.allclose(auto.predict_proba(texts).sum(1), 1.0)  # a softmax
    report = evaluate_classifier(auto, texts, labels)
    assert isinstance(report, EvalReport) and report.accuracy == 1.0
    details = auto.predict_details(texts[:2])
    assert [d["intents"] for d in details] == [
        [{"intent": d["intent"], "confidence": d["confidence"]}] for d in details
    ]


# ------------------------------------------------------------------------------------------ multi-label
def test_a_planted_two_intent_message_gets_both_intents(multi: IntentClassifier) -> None:
    assert multi.is_multi_label and multi.classes_ == sorted(TOY)
    new = ["hello there and where is my order", "price of the shoes and see you later", "bye now"]
    assert multi.predict(new) == ["greeting+order_status", "goodbye+product_info", "goodbye"]
    (details,) = multi.predict_details(new[:1], top_k=2)
    assert {i["intent"] for i in details["intents"]} == {"greeting", "order_status"}
    assert details["intent"] == details["intents"][0]["intent"] and not details["is_out_of_scope"]
    probs = multi.predict_proba(new)
    assert probs.shape == (3, 4) and probs[0].sum() > 1.5  # a sigmoid per intent, not a softmax


def test_multi_label_report_scores_the_sets_of_intents(multi: IntentClassifier, tmp_path: Path) -> None:
    texts, labels = planted()
    report = evaluate_classifier(multi, texts, labels)
    assert isinstance(report, MultiLabelReport)
    assert report.accuracy == 1.0 and report.to_dict()["rows"]["multi_intent"] == 18
    wrong = ["hello there and where is my order"]
    assert evaluate_classifier(multi, wrong, ["greeting"]).accuracy == 0.0  # an added intent is an error


def test_saved_multi_label_model_answers_the_same_and_refuses_a_damaged_folder(
    multi: IntentClassifier, tmp_path: Path
) -> None:
    from intentune import ModelError

    folder = multi.save(tmp_path / "model")
    meta = json.loads((folder / "intentune.json").read_text())
    assert meta["format_version"] == 3 and meta["multi_label"] is True
    assert set(meta["intent_thresholds"]["per_intent"]) == set(TOY)
    loaded = IntentClassifier.load(folder)
    texts = planted()[0]
    np.testing.assert_allclose(loaded.predict_proba(texts), multi.predict_proba(texts), atol=1e-6)
    assert loaded.predict(texts) == multi.predict(texts)
    meta.pop("intent_thresholds")
    (folder / "intentune.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="per-intent thresholds"):
        IntentClassifier.load(folder)


def test_onnx_runtime_answers_like_pytorch(multi: IntentClassifier, tmp_path: Path) -> None:
    from intentune.export import export_model
    from intentune.inference import OnnxPredictor

    folder = multi.save(tmp_path / "model")
    export_model(folder)
    onnx = OnnxPredictor.load(folder)
    texts = planted()[0]
    assert onnx.is_multi_label
    np.testing.assert_allclose(onnx.predict_proba(texts), multi.predict_proba(texts), atol=1e-4)
    assert onnx.predict(texts) == multi.predict(texts)


def test_server_returns_every_intent_found(multi: IntentClassifier) -> None:
    with TestClient(create_app(classifier=multi, settings=ServeConfig())) as client:
        body = client.post("/v1/predict", json={"texts": ["hello there and where is my order"], "top_k": 3}).json()
        info = client.get("/v1/model").json()
    (prediction,) = body["predictions"]
    assert {i["intent"] for i in prediction["intents"]} == {"greeting", "order_status"}
    assert set(prediction) == {"text", "intent", "confidence", "is_out_of_scope", "intents", "top"}
    assert len(prediction["top"]) == 3 and info["multi_label"] is True


def test_no_rejection_answers_the_most_probable_intent(tiny_encoder: Path) -> None:
    texts, labels = planted()
    config = tiny_config(tiny_encoder)
    config.oos.reject = False
    config.oos.threshold = 0.999999  # no intent reaches it
    clf = IntentClassifier(config).fit(texts, labels, validation=(texts, labels))
    details = clf.predict_details(["hello there"])
    assert details[0]["is_out_of_scope"] is False and len(details[0]["intents"]) == 1


# ------------------------------------------------------------------------- calibration and thresholds
def test_head_biases_start_at_the_intents_base_rates() -> None:
    import torch

    from intentune.train.head_init import init_head_bias_from_rates

    head = torch.nn.Linear(4, 3)
    rows = [[1, 0, 0]] * 6 + [[1, 1, 0]] * 2 + [[0, 0, 0]] * 2  # 10 rows: 8, 2 and 0 with each intent
    init_head_bias_from_rates(head, rows)
    rates = torch.sigmoid(head.bias).tolist()
    assert rates == pytest.approx([8.5 / 11, 2.5 / 11, 0.5 / 11], rel=1e-5)  # half a row keeps 0 off the ends


def test_only_a_fresh_multi_label_fit_sets_the_head_biases(tiny_encoder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from intentune.train import head_init

    calls: list[list[list[float]]] = []
    original = head_init.init_head_bias_from_rates
    monkeypatch.setattr(
        head_init, "init_head_bias_from_rates", lambda head, rows: calls.append(rows) or original(head, rows)
    )
    texts, labels = planted()
    config = tiny_config(tiny_encoder, epochs=1)
    IntentClassifier(config).fit(texts, labels, validation=(texts, labels))
    assert len(calls) == 1 and len(calls[0]) == len(texts) and {len(row) for row in calls[0]} == {len(TOY)}
    assert sum(map(sum, calls[0])) == len(texts) + sum(label.count("+") for label in labels)  # multi-hot rows
    IntentClassifier(config).fit(*toy_data(), validation=toy_data())
    assert len(calls) == 1  # a softmax head keeps its zero biases


def test_platt_scaling_recovers_a_known_scale_and_shrinks_with_few_rows() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, size=(4000, 2))
    targets = (rng.random((4000, 2)) < sigmoid(0.5 * logits + np.array([1.0, -1.0]))).astype(float)
    fitted = fit_intent_calibration(logits, targets, prior_rows=5)
    np.testing.assert_allclose(fitted.scale, [0.5, 0.5], atol=0.05)
    np.testing.assert_allclose(fitted.bias, [1.0, -1.0], atol=0.15)
    assert fitted.fit["nll_after"] < fitted.fit["nll_before"]
    few = fit_intent_calibration(logits[:6], targets[:6], prior_rows=1000)  # the prior wins: the shared temperature
    np.testing.assert_allclose(few.scale, 1.0 / few.temperature, rtol=0.1)
    assert np.abs(few.bias).max() < 0.05
    again = IntentCalibration.from_dict(json.loads(json.dumps(fitted.to_dict())))
    np.testing.assert_allclose(again.probabilities(logits[:5]), fitted.probabilities(logits[:5]), atol=1e-5)


def test_thresholds_maximise_each_intents_f1_within_the_floor_and_shrink_towards_the_global_one() -> None:
    # Intent a: positives at 0.7-0.9, negatives at 0.1-0.5 -> its best threshold lies in (0.5, 0.7].
    # Intent b: two positives only; its own best is high, the global one pulls it down.
    a_pos, a_neg = np.linspace(0.7, 0.9, 100), np.linspace(0.1, 0.5, 100)
    probs = np.zeros((200, 2))
    targets = np.zeros((200, 2))
    probs[:, 0] = np.concatenate([a_pos, a_neg])
    targets[:100, 0] = 1
    probs[:, 1] = 0.05
    probs[:2, 1], targets[:2, 1] = 0.97, 1
    fitted = fit_intent_thresholds(probs, targets, ["a", "b"], floor=0.3, prior_rows=10)
    assert 0.5 < fitted.thresholds[0] <= 0.7
    own_b = 0.5 + 0.97 / 2  # the middle of b's plateau of perfect F1 is far above the global threshold
    assert fitted.global_threshold < fitted.thresholds[1] < own_b
    assert (fitted.thresholds >= 0.3).all() and fitted.fit["validation_micro_f1"] == 1.0
    low = fit_intent_thresholds(probs * 0.3, targets, ["a", "b"], floor=0.25)  # nothing above the floor helps
    assert (low.thresholds >= 0.25).all()
    assert fitted.answers(np.array([[0.8, 0.99], [0.2, 0.1]])) == [[1, 0], []]


# -------------------------------------------------------------------------------- data the model lacks
def test_validation_intents_training_lacks_are_a_warning_not_an_error(
    tiny_encoder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    texts, labels = toy_data()
    validation = ([*texts[:4], "cancel my subscription"], [*labels[:4], "cancel"])
    with caplog.at_level(logging.WARNING, logger="intentune.model"):
        clf = IntentClassifier(tiny_config(tiny_encoder, epochs=2)).fit(texts, labels, validation=validation)
    assert "cancel" not in clf.classes_
    assert any("not in the training data: cancel (1 rows, at positions 4)" in r.getMessage() for r in caplog.records)


# ---------------------------------------------------------------------------------------------------- CLI
def test_cli_trains_a_multi_label_run_and_predicts_both_intents(tiny_encoder: Path, tmp_path: Path) -> None:
    texts, labels = planted()
    write_examples(Examples(texts, labels), tmp_path / "train.csv")
    write_examples(Examples(texts, labels), tmp_path / "validation.csv")
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", str(tmp_path / "train.csv"), "--validation", str(tmp_path / "validation.csv"),
                                 "--backbone", str(tiny_encoder), "--output", str(out), *tiny_sets()])  # fmt: skip
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["multi_label"] is True and metrics["subset_accuracy"] == 1.0
    assert "subset accuracy" in (out / "report.md").read_text().lower()
    result = runner.invoke(app, ["predict", str(out), "hello there and where is my order"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("greeting+order_status\t")
    write_examples(Examples(["hello there and where is my order"], ["greeting+order_status"]), tmp_path / "in.csv")
    result = runner.invoke(
        app, ["predict", str(out), "--input", str(tmp_path / "in.csv"), "-o", str(tmp_path / "p.jsonl")]
    )
    assert result.exit_code == 0, result.output
    (row,) = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert {i["intent"] for i in row["predicted_intents"]} == {"greeting", "order_status"}
