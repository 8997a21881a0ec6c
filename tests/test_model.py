"""The classifier's golden tests: overfit, save -> load, padding and batching invariance, bad folders."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from intentune import DataError, IntentClassifier, ModelError
from intentune.net import pool_hidden

from conftest import DEVICE, tiny_config, toy_data


@pytest.mark.parametrize("fixture", ["fitted_decoder", "fitted_encoder"])
def test_overfits_toy_set_to_accuracy_one(fixture: str, request: pytest.FixtureRequest) -> None:
    clf = request.getfixturevalue(fixture)
    texts, labels = toy_data()
    assert clf.predict(texts) == labels
    assert clf.classes_ == sorted(set(labels))
    probs = clf.predict_proba(texts)
    assert probs.shape == (len(texts), 4)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("fixture", ["fitted_decoder", "fitted_encoder"])
def test_save_load_gives_identical_probabilities(fixture: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    clf = request.getfixturevalue(fixture)
    texts, _ = toy_data()
    folder = clf.save(tmp_path / "model")
    loaded = IntentClassifier.load(folder, device=DEVICE)
    if DEVICE == "cpu":
        np.testing.assert_array_equal(loaded.predict_proba(texts), clf.predict_proba(texts))
    else:  # GPU kernels may pick other reduction orders between two model instances (seen: 3e-10)
        np.testing.assert_allclose(loaded.predict_proba(texts), clf.predict_proba(texts), atol=1e-7, rtol=1e-5)
    assert loaded.classes_ == clf.classes_
    meta = json.loads((folder / "intentune.json").read_text())
    assert meta["format_version"] == 2
    assert meta["labels"] == clf.classes_
    assert meta["kind"] == clf.kind_
    hf_config = json.loads((folder / "config.json").read_text())
    assert hf_config["id2label"] == {str(i): label for i, label in enumerate(clf.classes_)}
    # config.json names intentune, so transformers' Auto classes refuse the folder; the real type is in intentune.json
    assert "IntentClassifier.load" in hf_config["model_type"]
    assert meta["backbone_model_type"] == ("llama" if clf.kind_ == "decoder" else "bert")
    assert not list(tmp_path.glob(".model*")), "temporary folders must not be left behind"
    assert not list(folder.glob("*.bin")) and not list(folder.glob("*.pkl")), "no pickles"


def test_decoder_left_and_right_padding_agree(fitted_decoder: IntentClassifier) -> None:
    texts = ["hi", "where is my order please tell me now", "price of the red jacket"]
    right = fitted_decoder.predict_proba(texts)
    fitted_decoder.tokenizer_.padding_side = "left"
    try:
        left = fitted_decoder.predict_proba(texts)
    finally:
        fitted_decoder.tokenizer_.padding_side = "right"
    np.testing.assert_allclose(left, right, atol=1e-5)


@pytest.mark.parametrize("fixture", ["fitted_decoder", "fitted_encoder"])
def test_batch_and_single_predictions_agree(fixture: str, request: pytest.FixtureRequest) -> None:
    clf = request.getfixturevalue(fixture)
    texts = ["hi", "where is my order please tell me now", "price of the red jacket", "bye"]
    batched = clf.predict_proba(texts)
    single = np.vstack([clf.predict_proba([t]) for t in texts])
    np.testing.assert_allclose(batched, single, atol=1e-5)


def test_pool_last_token_finds_last_real_token_on_either_side() -> None:
    import torch

    hidden = torch.arange(2 * 4 * 1, dtype=torch.float32).reshape(2, 4, 1)
    right = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])
    left = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1]])
    assert pool_hidden(hidden, right, "last").flatten().tolist() == [1.0, 7.0]
    assert pool_hidden(hidden, left, "last").flatten().tolist() == [3.0, 7.0]
    assert pool_hidden(hidden, right, "mean").flatten().tolist() == [0.5, 5.5]


def test_training_logs_evaluations_and_restores_best(tiny_encoder: Path) -> None:
    texts, labels = toy_data()
    config = tiny_config(tiny_encoder, epochs=6, eval_every_steps=2, early_stopping_patience=2, few_shot="on")
    clf = IntentClassifier(config)
    clf.fit(texts, labels, validation=(texts, labels))
    steps = [h["step"] for h in clf.history_]
    assert steps[:4] == [0, 2, 4, 6]  # 0: few-shot mode's prototype head (the toy set has 6 examples per intent)
    best = min(clf.history_, key=lambda h: h["val_loss"])
    assert clf.train_summary_["best_step"] == best["step"]
    # The restored weights are the best evaluation's: their validation accuracy is reproduced (the log rounds to
    # 5 decimals; one example is 1/24 of the accuracy).
    accuracy = np.mean(np.array(clf.predict(texts)) == np.array(labels))
    assert accuracy == pytest.approx(best["val_accuracy"], abs=1e-4)


def test_early_stopping_stops_before_the_last_epoch(tiny_encoder: Path) -> None:
    texts, labels = toy_data()
    config = tiny_config(
        tiny_encoder, epochs=40, early_stopping_patience=1, learning_rate=1e-9, head_learning_rate=1e-9
    )
    clf = IntentClassifier(config).fit(texts, labels, validation=(texts, labels))
    assert clf.train_summary_["stopped_early"] is True
    assert clf.train_summary_["steps"] < 40 * 3


def test_fit_rejects_a_single_intent(tiny_encoder: Path) -> None:
    with pytest.raises(DataError, match=r"only one intent \('greeting'\) in 3 rows"):
        IntentClassifier(tiny_config(tiny_encoder)).fit(["hi", "hello", "hey"], ["greeting"] * 3)


def test_fit_warns_of_validation_intents_unknown_to_training_and_leaves_them_out(
    tiny_encoder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    texts, labels = toy_data()
    with caplog.at_level("WARNING", logger="intentune.model"):
        clf = IntentClassifier(tiny_config(tiny_encoder, epochs=2)).fit(
            texts, labels, validation=(["money back"], ["refund"])
        )
    assert any("validation data has intents not in the training data: refund" in r.getMessage() for r in caplog.records)
    assert clf.history_ == [] and "refund" not in clf.classes_  # no validation row left for early stopping


def test_predict_before_fit_says_what_to_do() -> None:
    with pytest.raises(ModelError, match=r"not fitted yet; call fit\(...\) or IntentClassifier.load"):
        IntentClassifier().predict(["hi"])


def test_load_rejects_folder_that_is_not_a_model(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="is not an intentune model folder \\(no intentune.json\\)"):
        IntentClassifier.load(tmp_path)
    with pytest.raises(ModelError, match="does not exist; train one with `intentune train`"):
        IntentClassifier.load(tmp_path / "missing", device=DEVICE)


def test_load_rejects_damaged_and_newer_metadata(fitted_encoder: IntentClassifier, tmp_path: Path) -> None:
    folder = fitted_encoder.save(tmp_path / "m")
    meta_path = folder / "intentune.json"
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({**meta, "format_version": 99}))
    with pytest.raises(ModelError, match="model format 99 is newer than this intentune reads"):
        IntentClassifier.load(folder, device=DEVICE)
    meta_path.write_text("{not json")
    with pytest.raises(ModelError, match="not valid JSON"):
        IntentClassifier.load(folder, device=DEVICE)


def test_interrupted_save_keeps_the_previous_model(
    fitted_encoder: IntentClassifier, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = fitted_encoder.save(tmp_path / "m")
    before = IntentClassifier.load(folder, device=DEVICE).predict_proba(["hi"])

    def broken_save(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("safetensors.torch.save_file", broken_save)
    with pytest.raises(OSError, match="disk full"):
        fitted_encoder.save(folder)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"], "no temporary folder is left behind"
    np.testing.assert_array_equal(IntentClassifier.load(folder, device=DEVICE).predict_proba(["hi"]), before)


def test_preprocessing_switches_are_saved_and_applied(tiny_encoder: Path, tmp_path: Path) -> None:
    texts, labels = toy_data()
    config = tiny_config(tiny_encoder, epochs=2)
    config.data.lowercase = True
    config.data.remove_special_chars = True
    clf = IntentClassifier(config).fit(texts, labels)
    loaded = IntentClassifier.load(clf.save(tmp_path / "m"), device=DEVICE)
    assert loaded.config.data.lowercase and loaded.config.data.remove_special_chars
    np.testing.assert_allclose(loaded.predict_proba(["HELLO!!! there?"]), loaded.predict_proba(["hello there"]))


def test_same_seed_gives_identical_models_and_another_seed_does_not(tiny_encoder: Path) -> None:
    texts, labels = toy_data()
    first = IntentClassifier(tiny_config(tiny_encoder, epochs=2)).fit(texts, labels)
    again = IntentClassifier(tiny_config(tiny_encoder, epochs=2)).fit(texts, labels)
    other = IntentClassifier(tiny_config(tiny_encoder, epochs=2, seed=7)).fit(texts, labels)
    np.testing.assert_array_equal(first.predict_proba(texts), again.predict_proba(texts))
    assert not np.allclose(first.predict_proba(texts), other.predict_proba(texts))


@pytest.mark.parametrize("fixture", ["tiny_decoder", "tiny_encoder"])
def test_num_layers_keeps_the_lower_layers(
    fixture: str, request: pytest.FixtureRequest, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    import torch

    from intentune.backbones import load_backbone

    backbone = request.getfixturevalue(fixture)
    full, _, _ = load_backbone(str(backbone))
    capfd.readouterr()  # the tiny encoder's own load report (a masked-LM head, no pooler) is not this test's
    short, _, _ = load_backbone(str(backbone), num_layers=1)
    assert "UNEXPECTED" not in "".join(capfd.readouterr()), "leaving layers out on purpose prints no load report"
    assert (full.config.num_hidden_layers, short.config.num_hidden_layers) == (2, 1)
    full_state, short_state = full.state_dict(), short.state_dict()
    assert set(short_state) < set(full_state), "the shorter model's weights are a subset of the full model's"
    assert any(".1." in key for key in set(full_state) - set(short_state)), "only the upper layer is left out"
    for key, value in short_state.items():
        if not key.startswith("pooler."):  # BERT's pooler is not in the tiny checkpoint: random in both loads
            torch.testing.assert_close(value, full_state[key], rtol=0, atol=0)

    config = tiny_config(backbone, epochs=15)
    config.model.num_layers = 1
    texts, labels = toy_data()
    clf = IntentClassifier(config).fit(texts, labels)
    assert clf.predict(texts) == labels, "one layer still learns the toy set"
    folder = clf.save(tmp_path / "model")
    assert json.loads((folder / "config.json").read_text())["num_hidden_layers"] == 1
    loaded = IntentClassifier.load(folder, device=DEVICE)
    np.testing.assert_allclose(loaded.predict_proba(texts), clf.predict_proba(texts), atol=1e-6)


def test_num_layers_beyond_the_backbone_names_the_limit(tiny_encoder: Path) -> None:
    from intentune import BackboneError

    config = tiny_config(tiny_encoder)
    config.model.num_layers = 3
    with pytest.raises(BackboneError, match=r"num_layers = 3, but backbone .* has only 2 layers; set it to 2 or less"):
        IntentClassifier(config).fit(*toy_data())
