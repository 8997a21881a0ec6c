"""The real bundled backbones: inspect them and fine-tune each briefly on the example data.

Marked ``bundled`` (slower: the decoder has 135M parameters); CI runs them. Deselect with ``-m "not bundled"``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from intentune import Config, IntentClassifier, evaluate_classifier, load_examples
from intentune.describe import describe_backbone

from conftest import EXAMPLES

pytestmark = pytest.mark.bundled


def test_inspect_decoder() -> None:
    info = describe_backbone("smollm2-135m")
    assert (info.kind, info.model_type, info.layers, info.hidden_size) == ("decoder", "llama", 30, 576)
    assert (info.attention_heads, info.key_value_heads, info.vocab_size) == (9, 3, 49152)
    assert 134_000_000 < info.parameters < 135_000_000
    assert "<|im_end|>" in info.pad_token and "right" in info.pad_token


def test_inspect_encoder() -> None:
    info = describe_backbone("minilm-l6")
    assert (info.kind, info.model_type, info.layers, info.hidden_size, info.vocab_size) == (
        "encoder",
        "bert",
        6,
        384,
        30522,
    )


def test_mpnet_reassembles_loads_and_embeds_paraphrases_close() -> None:
    """The five packages join into the cached folder once; the encoder's mean-pooled vectors put a paraphrase
    nearer than an unrelated question."""
    import torch

    from intentune.backbones import load_backbone, resolve_backbone
    from intentune.net import embed

    model, tokenizer, kind = load_backbone("mpnet-base")
    config = model.config
    assert (kind, config.model_type, config.num_hidden_layers, config.hidden_size, config.vocab_size) == (
        "encoder",
        "mpnet",
        12,
        768,
        30527,
    )
    assert 109_000_000 < sum(p.numel() for p in model.parameters()) < 110_000_000
    assert tokenizer.pad_token == "<pad>" and tokenizer.pad_token_id == config.pad_token_id == 1
    assert "apache-2.0" in (Path(resolve_backbone("mpnet-base")) / "README.md").read_text(encoding="utf-8")
    batch = tokenizer(["where is my parcel", "track my package", "how much are the red shoes"], padding=True,
                      return_tensors="pt")  # fmt: skip
    with torch.no_grad():
        vectors = embed(model.eval(), batch["input_ids"], batch["attention_mask"], kind=kind, pooling="mean")
    similarity = torch.nn.functional.cosine_similarity(vectors[0:1], vectors[1:])
    assert similarity[0] > similarity[1] + 0.2, similarity


def _fit(backbone: str, epochs: int, *overrides: str) -> tuple[IntentClassifier, float]:
    train = load_examples(EXAMPLES / "train.csv")
    validation = load_examples(EXAMPLES / "validation.csv")
    test = load_examples(EXAMPLES / "test.csv")
    config = Config().override([f"model.backbone={backbone}", f"train.epochs={epochs}", "train.device=cpu", *overrides])
    clf = IntentClassifier(config).fit(train.texts, train.labels, validation=(validation.texts, validation.labels))
    return clf, evaluate_classifier(clf, test.texts, test.labels).accuracy


def test_fine_tune_decoder_briefly(tmp_path: Path) -> None:
    # One epoch, and no stand-in sentences in the threshold fit (the tiny-backbone tests cover them): their pass
    # through the 135M-parameter decoder would cost as much as the epoch.
    clf, accuracy = _fit("smollm2-135m", 1, "oos.outlier_exposure=off")
    assert clf.kind_ == "decoder"
    assert accuracy >= 0.75, accuracy  # chance is 0.25; one epoch of the full run (which reaches >= 0.9)
    texts = ["hiya", "is the AeroBrew dishwasher safe?", "where's order 4411"]
    loaded = IntentClassifier.load(clf.save(tmp_path / "model"))
    np.testing.assert_allclose(loaded.predict_proba(texts), clf.predict_proba(texts), atol=1e-6)


def test_fine_tune_encoder_briefly() -> None:
    clf, accuracy = _fit("minilm-l6", epochs=4)
    assert clf.kind_ == "encoder"
    assert accuracy >= 0.85, accuracy


def test_real_decoder_paraphrases_are_distinct_non_empty_and_not_copies(tmp_path: Path) -> None:
    from intentune import Examples
    from intentune.preprocess import normalize_for_matching
    from intentune.synth import LocalParaphraser, generate_paraphrases

    seeds = Examples(
        ["where is my order #4411?", "do you have the TrailRunner 3 in size 44"], ["order_status", "product_info"]
    )
    config = Config().generate
    config.per_example = 4
    rows = generate_paraphrases(seeds, LocalParaphraser(config), config, tmp_path / "generated.csv")
    assert len(rows) >= 2, rows.texts  # 8 candidates; the filters keep the well-formed, new ones
    keys = [normalize_for_matching(t) for t in rows.texts]
    assert all(keys) and len(set(keys)) == len(keys)
    assert not set(keys) & {normalize_for_matching(t) for t in seeds.texts}
    assert set(rows.labels) <= {"order_status", "product_info"} and set(rows.sources) == {"generated"}
