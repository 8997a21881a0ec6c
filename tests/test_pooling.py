"""Pooling: the prompt wrap (template ids kept whole under truncation, special tokens outside it), padding side,
save -> load and ONNX parity of a prompt-pooled model, old folders without the key, config errors, and mean
pooling for a decoder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from intentune import Config, ConfigError, IntentClassifier, IntentuneError, ModelError
from intentune.backbones import load_backbone, load_tokenizer
from intentune.doctor import embed_texts
from intentune.net import IntentNet, embed
from intentune.preprocess import encode_texts, pad_batch, prompt_wrap, tokenize

from conftest import DEVICE, tiny_config, toy_data

TEMPLATE = Config().model.prompt_template
LONG = " ".join(["where is my parcel"] * 40)  # far past any max_length here
TEXTS = ["hi", "where is my order, it was due last week", "price", LONG, *toy_data()[0][::3]]


def _plain(tokenizer: object, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


@pytest.fixture(scope="module")
def prompt_decoder(tiny_decoder: Path) -> IntentClassifier:
    """The tiny decoder fine-tuned on the toy set with ``model.pooling = prompt``, few-shot phase included."""
    config = tiny_config(tiny_decoder, few_shot="on", few_shot_epochs=1)
    config.model.pooling = "prompt"
    texts, labels = toy_data()
    return IntentClassifier(config).fit(texts, labels, validation=(texts[::2], labels[::2]))


def test_auto_pooling_is_prompt_for_decoders_and_mean_for_encoders() -> None:
    from intentune.net import resolve_pooling

    assert Config().model.pooling == "auto"
    assert resolve_pooling("auto", "decoder") == "prompt" and resolve_pooling("auto", "encoder") == "mean"
    assert resolve_pooling("last", "decoder") == "last"


def test_a_default_config_fits_a_decoder_with_the_prompt_wrap(tiny_decoder: Path) -> None:
    config = tiny_config(tiny_decoder, max_steps=1)
    config.model.pooling = Config().model.pooling
    clf = IntentClassifier(config).fit(*toy_data())
    assert clf.net_.pooling == "prompt" and clf.prompt_template_ == TEMPLATE


@pytest.mark.parametrize("side", ["right", "left"])
def test_wrapped_ids_start_with_the_prefix_and_end_with_the_suffix(tiny_decoder: Path, side: str) -> None:
    tokenizer = load_tokenizer(str(tiny_decoder))
    tokenizer.truncation_side = side
    before, after = TEMPLATE.split("{text}")
    prefix, suffix = _plain(tokenizer, before), _plain(tokenizer, after)
    short, long = encode_texts(tokenizer, ["track my parcel", LONG], 40, TEMPLATE)
    assert short == prefix + _plain(tokenizer, "track my parcel") + suffix  # this tokenizer adds no special tokens
    assert len(long) == 40
    assert long[: len(prefix)] == prefix and long[-len(suffix) :] == suffix
    text_ids = _plain(tokenizer, LONG)
    kept = 40 - len(prefix) - len(suffix)
    expected = text_ids[:kept] if side == "right" else text_ids[-kept:]  # the text is cut on the tokenizer's side
    assert long[len(prefix) : -len(suffix)] == expected


def test_special_tokens_stay_outside_the_template(tiny_encoder: Path) -> None:
    """A tokenizer that adds special tokens (here BERT's CLS and SEP) keeps them first and last, around the wrap."""
    tokenizer = load_tokenizer(str(tiny_encoder))
    wrap = prompt_wrap(tokenizer, TEMPLATE, 24)
    assert wrap.head == [tokenizer.cls_token_id] and wrap.tail == [tokenizer.sep_token_id]
    (ids,) = encode_texts(tokenizer, [LONG], 24, TEMPLATE)
    assert len(ids) == 24
    assert ids == wrap.head + wrap.prefix + ids[1 + len(wrap.prefix) : -1 - len(wrap.suffix)] + wrap.suffix + wrap.tail
    assert wrap.budget == 24 - 2 - len(wrap.prefix) - len(wrap.suffix)
    # Without a template: the plain truncated ids, as before.
    assert encode_texts(tokenizer, [LONG], 24) == tokenize(tokenizer, [LONG], 24)


def test_a_template_that_leaves_no_room_is_a_config_error(tiny_decoder: Path) -> None:
    tokenizer = load_tokenizer(str(tiny_decoder))
    taken = sum(len(_plain(tokenizer, part)) for part in TEMPLATE.split("{text}"))  # no special tokens here
    with pytest.raises(ConfigError, match=r"no room for the text in model.max_length = \d+"):
        encode_texts(tokenizer, ["hi"], taken, TEMPLATE)
    assert len(encode_texts(tokenizer, [LONG], taken + 1, TEMPLATE)[0]) == taken + 1  # one token of text fits


@pytest.mark.parametrize("template", ["Classify this message.", "{text} and again {text}"])
def test_a_template_without_text_once_is_a_config_error(template: str) -> None:
    with pytest.raises(ConfigError, match=r"model.prompt_template must contain \{text\} exactly once"):
        Config().override([f"model.prompt_template={template}"])
    with pytest.raises(ConfigError, match="exactly once"):
        Config.from_dict({"model": {"pooling": "prompt", "prompt_template": template}})


def test_prompt_pooling_is_refused_for_encoders(tiny_encoder: Path) -> None:
    config = tiny_config(tiny_encoder)
    config.model.pooling = "prompt"
    with pytest.raises(ConfigError, match="model.pooling = prompt needs a decoder backbone"):
        IntentClassifier(config).fit(*toy_data())
    with pytest.raises(ConfigError, match="needs a decoder backbone"):
        embed_texts(["hi"], str(tiny_encoder), pooling="prompt", prompt_template=TEMPLATE)


@pytest.mark.parametrize("pooling", ["prompt", "mean", "last"])
def test_left_and_right_padding_give_the_same_pooled_vector(tiny_decoder: Path, pooling: str) -> None:
    torch.manual_seed(0)
    backbone, tokenizer, kind = load_backbone(str(tiny_decoder))
    net = IntentNet(backbone, 3, kind=kind, pooling=pooling, dropout=0.0).eval()
    ids = encode_texts(tokenizer, TEXTS, 48, TEMPLATE if pooling == "prompt" else None)
    assert len({len(seq) for seq in ids}) > 2, "the batch needs padding"
    pooled = {}
    for side in ("right", "left"):
        batch = pad_batch(ids, int(tokenizer.pad_token_id), side=side)
        with torch.inference_mode():
            pooled[side] = net(batch["input_ids"], batch["attention_mask"], return_pooled=True)[1]
    torch.testing.assert_close(pooled["left"], pooled["right"], atol=1e-5, rtol=0)
    alone = pad_batch(ids[:1], int(tokenizer.pad_token_id))
    with torch.inference_mode():
        single = embed(backbone, alone["input_ids"], alone["attention_mask"], kind=kind, pooling=pooling)
    torch.testing.assert_close(pooled["right"][:1], single, atol=1e-5, rtol=0)  # the network's pooling is embed's


def test_prompt_model_learns_and_predicts_alike_with_either_padding(prompt_decoder: IntentClassifier) -> None:
    texts, labels = toy_data()
    assert prompt_decoder.net_.pooling == "prompt" and prompt_decoder.prompt_template_ == TEMPLATE
    assert "few_shot" in prompt_decoder.train_summary_, "the few-shot phase ran on the wrapped ids"
    best = prompt_decoder.predict_proba(texts).argmax(axis=1)  # the best intent, before any out-of-scope rejection
    assert [prompt_decoder.classes_[i] for i in best] == labels
    ids = prompt_decoder.token_ids(["Where is my order?"])[0]
    assert ids[-3:] == prompt_decoder.token_ids(["hi"])[0][-3:], "every text ends with the template's suffix"
    with pytest.raises(IntentuneError, match="text at position 1 is empty after preprocessing"):
        prompt_decoder.token_ids(["hi", ""])  # the wrap alone is not a text
    right = prompt_decoder.predict_proba(TEXTS, batch_size=3)
    prompt_decoder.tokenizer_.padding_side = "left"
    try:
        left = prompt_decoder.predict_proba(TEXTS, batch_size=3)
    finally:
        prompt_decoder.tokenizer_.padding_side = "right"
    np.testing.assert_allclose(left, right, atol=1e-5)


def test_fit_save_load_predict_gives_identical_probabilities(prompt_decoder: IntentClassifier, tmp_path: Path) -> None:
    folder = prompt_decoder.save(tmp_path / "model")
    meta = json.loads((folder / "intentune.json").read_text())
    assert meta["pooling"] == "prompt" and meta["prompt_template"] == TEMPLATE
    loaded = IntentClassifier.load(folder, device=DEVICE)
    assert loaded.prompt_template_ == TEMPLATE and loaded.net_.pooling == "prompt"
    assert loaded.token_ids(TEXTS) == prompt_decoder.token_ids(TEXTS)
    if DEVICE == "cpu":
        np.testing.assert_array_equal(loaded.predict_proba(TEXTS), prompt_decoder.predict_proba(TEXTS))
    else:  # GPU kernels may pick other reduction orders between two model instances
        np.testing.assert_allclose(loaded.predict_proba(TEXTS), prompt_decoder.predict_proba(TEXTS), atol=1e-6)
    assert loaded.predict_details(TEXTS) == prompt_decoder.predict_details(TEXTS)


def test_onnx_export_of_a_prompt_model_matches_torch(prompt_decoder: IntentClassifier, tmp_path: Path) -> None:
    from intentune.export import export_model
    from intentune.inference import OnnxPredictor

    folder = prompt_decoder.save(tmp_path / "model")
    export_model(folder)
    onnx = OnnxPredictor.load(folder)
    assert onnx.prompt_template_ == TEMPLATE
    assert onnx.token_ids(TEXTS) == prompt_decoder.token_ids(TEXTS)
    expected = IntentClassifier.load(folder).predict_proba(TEXTS, batch_size=3)
    np.testing.assert_allclose(onnx.predict_proba(TEXTS, batch_size=3), expected, atol=1e-4, rtol=0)
    assert onnx.predict(TEXTS) == prompt_decoder.predict(TEXTS)


def test_a_folder_saved_without_the_key_loads_with_last(fitted_decoder: IntentClassifier, tmp_path: Path) -> None:
    folder = fitted_decoder.save(tmp_path / "model")
    meta_path = folder / "intentune.json"
    meta = json.loads(meta_path.read_text())
    assert meta["pooling"] == "last" and meta["prompt_template"] is None
    del meta["prompt_template"]  # as written before the prompt pooling existed
    meta["config"]["model"].pop("prompt_template")
    meta_path.write_text(json.dumps(meta))
    loaded = IntentClassifier.load(folder, device=DEVICE)
    assert loaded.net_.pooling == "last" and loaded.prompt_template_ is None
    assert loaded.token_ids(TEXTS) == tokenize(loaded.tokenizer_, TEXTS, loaded.config.model.max_length)
    np.testing.assert_allclose(loaded.predict_proba(TEXTS), fitted_decoder.predict_proba(TEXTS), atol=1e-6)


def test_pooling_and_template_that_do_not_fit_are_a_model_error(
    prompt_decoder: IntentClassifier, tmp_path: Path
) -> None:
    folder = prompt_decoder.save(tmp_path / "model")
    meta_path = folder / "intentune.json"
    meta = json.loads(meta_path.read_text())
    for damaged in ({**meta, "prompt_template": None}, {**meta, "pooling": "last"}):
        copy = Path(shutil.copytree(folder, tmp_path / f"copy-{damaged['pooling']}"))
        (copy / "intentune.json").write_text(json.dumps(damaged))
        with pytest.raises(ModelError, match="does not fit prompt_template.*damaged"):
            IntentClassifier.load(copy)


def test_mean_pooling_for_a_decoder(tiny_decoder: Path, tmp_path: Path) -> None:
    config = tiny_config(tiny_decoder)
    config.model.pooling = "mean"
    texts, labels = toy_data()
    clf = IntentClassifier(config).fit(texts, labels)
    assert clf.net_.pooling == "mean" and clf.prompt_template_ is None
    assert clf.predict(texts) == labels
    loaded = IntentClassifier.load(clf.save(tmp_path / "model"), device=DEVICE)
    assert loaded.net_.pooling == "mean"
    np.testing.assert_allclose(loaded.predict_proba(TEXTS), clf.predict_proba(TEXTS), atol=1e-6)


def test_doctor_embeddings_wrap_like_the_classifier(tiny_decoder: Path) -> None:
    texts = ["hi", "where is my order, it is very late now", "bye bye"]
    prompt = embed_texts(texts, str(tiny_decoder), pooling="prompt", prompt_template=TEMPLATE)
    one_by_one = embed_texts(texts, str(tiny_decoder), pooling="prompt", prompt_template=TEMPLATE, batch_size=1)
    np.testing.assert_allclose(prompt, one_by_one, atol=1e-5)
    last = embed_texts(texts, str(tiny_decoder))
    assert not np.allclose(prompt, last, atol=1e-3), "the wrap changes what the last token has read"
