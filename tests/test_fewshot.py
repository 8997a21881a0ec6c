"""Few-shot mode: when it switches on, what contrastive pre-training does to the backbone, and a full fit with it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from intentune import Config, IntentClassifier
from intentune.errors import ConfigError
from intentune.train.fewshot import (
    _embed,
    _embed_by_length,
    contrastive_pretrain,
    embed_texts,
    embedding_separation,
    supcon_loss,
    use_few_shot,
)
from intentune.train.head_init import init_head_from_prototypes

from conftest import tiny_config, tiny_net, toy_data


def _labels(per_intent: int, intents: int = 4) -> list[str]:
    return [f"intent{i}" for i in range(intents) for _ in range(per_intent)]


@pytest.mark.parametrize(("per_intent", "expected"), [(5, True), (20, True), (21, False), (200, False)])
def test_auto_switches_by_median_examples_per_intent(per_intent: int, expected: bool) -> None:
    assert use_few_shot(_labels(per_intent), Config().train) is expected


def test_auto_uses_the_median_not_the_mean() -> None:
    # Three small intents and one huge one: the mean is large, the median small.
    labels = _labels(10, intents=3) + ["big"] * 1000
    assert use_few_shot(labels, Config().train) is True


def test_config_choice_overrides_auto() -> None:
    config = Config().override(["train.few_shot=off"])
    assert use_few_shot(_labels(5), config.train) is False
    config.override(["train.few_shot=on"])
    assert use_few_shot(_labels(500), config.train) is True
    config.override(["train.few_shot=auto", "train.few_shot_max_per_intent=4"])
    assert use_few_shot(_labels(5), config.train) is False


@pytest.mark.parametrize(
    ("assignment", "match"),
    [
        ("train.few_shot=sometimes", "must be one of auto, on, off"),
        ("train.few_shot_temperature=0", "few_shot_temperature must be positive"),
        ("train.few_shot_examples_per_intent=1", "few_shot_examples_per_intent must be at least 2"),
    ],
)
def test_bad_few_shot_settings_are_rejected(assignment: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        Config().override([assignment])


def test_supcon_loss_prefers_clustered_embeddings() -> None:
    labels = torch.tensor([0, 0, 1, 1])
    clustered = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    mixed = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.9, 0.1], [0.1, 0.9]])
    assert supcon_loss(clustered, labels, 0.1) < supcon_loss(mixed, labels, 0.1)
    # No anchor has a positive: zero loss that still back-propagates.
    lonely = torch.randn(3, 2, requires_grad=True)
    loss = supcon_loss(lonely, torch.tensor([0, 1, 2]), 0.1)
    loss.backward()
    assert loss.item() == 0.0 and lonely.grad is not None


def _dense_separation(embeddings: torch.Tensor, labels: torch.Tensor) -> float:
    """The definition, with the full n x n cosine matrix (what embedding_separation avoids building)."""
    z = torch.nn.functional.normalize(embeddings.double(), dim=-1)
    cosine = z @ z.T
    same = labels[:, None] == labels[None, :]
    same_off = same & ~torch.eye(len(labels), dtype=torch.bool)
    return float(cosine[same_off].mean() - cosine[~same].mean())


def test_separation_equals_the_mean_pairwise_cosines() -> None:
    generator = torch.Generator().manual_seed(3)
    labels = torch.tensor([0] * 7 + [1] * 2 + [2] * 5 + [4] * 3)  # intent 3 has no rows; uneven counts
    embeddings = torch.randn(len(labels), 6, generator=generator) + 2.0 * torch.randn(5, 6, generator=generator)[labels]
    embeddings[3] = 0.0  # a zero vector: cosine 0 with everything, as normalize() leaves it
    expected = _dense_separation(embeddings, labels)
    assert expected > 0.1  # the clusters are visible, so a sign or pairing mistake would show
    assert embedding_separation(embeddings, labels) == pytest.approx(expected, abs=1e-9)
    assert embedding_separation(embeddings.float(), labels) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("labels", [[0, 0, 0, 0], [0, 1, 2, 3]])
def test_separation_is_zero_without_same_or_different_pairs(labels: list[int]) -> None:
    assert embedding_separation(torch.randn(4, 3), torch.tensor(labels)) == 0.0


def test_prototype_init_classifies_the_class_means() -> None:
    embeddings = torch.tensor([[2.0, 0.0], [1.0, 0.2], [0.0, 3.0], [0.2, 1.0]])
    head = torch.nn.Linear(2, 2)
    init_head_from_prototypes(head, embeddings, torch.tensor([0, 0, 1, 1]))
    assert head(embeddings).argmax(dim=1).tolist() == [0, 0, 1, 1]
    assert torch.all(head.bias == 0)


@pytest.mark.parametrize("backbone", ["tiny_encoder", "tiny_decoder"])
def test_pretraining_pulls_same_intent_embeddings_together(backbone: str, request: pytest.FixtureRequest) -> None:
    net, ids, label_ids, pad_id = tiny_net(request.getfixturevalue(backbone))
    labels = torch.tensor(label_ids)
    weights_before = [p.detach().clone() for p in net.backbone.parameters()]
    before = embedding_separation(embed_texts(net, ids, pad_id, "cpu", 64), labels)
    cfg = tiny_config(Path("unused"), few_shot_epochs=15, few_shot_learning_rate=3e-3).train
    cfg.few_shot_batch_intents, cfg.few_shot_examples_per_intent = 4, 3
    summary = contrastive_pretrain(net, ids, label_ids, cfg, pad_id, "cpu")
    after = embedding_separation(embed_texts(net, ids, pad_id, "cpu", 64), labels)
    assert any(not torch.equal(a, b) for a, b in zip(weights_before, net.backbone.parameters()))
    assert after > before + 0.1
    assert summary["separation_before"] == pytest.approx(before, abs=1e-3)
    assert summary["separation_after"] == pytest.approx(after, abs=1e-3)
    assert summary["steps"] == 15 * 2  # 8 groups of 3 per epoch (6 per intent), 4 groups per batch
    # The prototype-initialised head already classifies the training set before any cross-entropy step.
    logits = net.head(embed_texts(net, ids, pad_id, "cpu", 64))
    assert (logits.argmax(dim=1) == labels).float().mean() >= 0.9


@pytest.mark.parametrize("backbone", ["tiny_encoder", "tiny_decoder"])
def test_length_sorted_chunks_give_the_batch_embeddings_in_order(backbone: str, request: pytest.FixtureRequest) -> None:
    net, ids, _, pad_id = tiny_net(request.getfixturevalue(backbone))
    net.eval()
    batch = [ids[i] for i in (5, 0, 17, 3, 11, 20, 8, 1, 14)]  # mixed lengths, not sorted
    assert sorted(map(len, batch)) != list(map(len, batch))
    whole = _embed(net, batch, pad_id, "cpu")
    chunked = _embed_by_length(net, batch, pad_id, "cpu", 4)
    torch.testing.assert_close(chunked, whole, atol=1e-5, rtol=1e-4)
    chunked.sum().backward()  # the loss's gradient reaches the backbone through every chunk
    assert all(p.grad is not None for p in net.backbone.get_input_embeddings().parameters())


@pytest.mark.parametrize("backbone", ["tiny_encoder", "tiny_decoder"])
def test_fit_with_few_shot_records_its_summary_and_is_reproducible(
    backbone: str, request: pytest.FixtureRequest
) -> None:
    texts, labels = toy_data()
    config = tiny_config(request.getfixturevalue(backbone), epochs=5, few_shot="on", few_shot_epochs=3)
    first = IntentClassifier(config).fit(texts, labels)
    summary = first.train_summary_["few_shot"]
    assert summary["method"] == "supcon" and summary["steps"] > 0 and summary["seconds"] > 0
    assert first.predict(texts) == labels
    second = IntentClassifier(config).fit(texts, labels)
    assert second.train_summary_["few_shot"]["loss"] == summary["loss"]
    assert torch.equal(torch.tensor(first.predict_proba(texts)), torch.tensor(second.predict_proba(texts)))


def test_fit_without_few_shot_has_no_summary(tiny_encoder: Path) -> None:
    texts, labels = toy_data()
    clf = IntentClassifier(tiny_config(tiny_encoder, epochs=2, few_shot="off")).fit(texts, labels)
    assert "few_shot" not in clf.train_summary_


def test_the_prototype_head_is_evaluated_first_and_kept_when_fine_tuning_makes_it_worse(tiny_encoder: Path) -> None:
    texts, labels = toy_data()
    # A classifier phase with absurd learning rates wrecks what the contrastive phase built.
    config = tiny_config(tiny_encoder, epochs=2, few_shot="on", few_shot_epochs=15, few_shot_learning_rate=3e-3)
    config.train.few_shot_batch_intents, config.train.few_shot_examples_per_intent = 4, 3
    config.train.learning_rate, config.train.head_learning_rate = 5.0, 50.0
    config.train.early_stopping_metric = "val_accuracy"
    clf = IntentClassifier(config).fit(texts, labels, validation=(texts, labels))
    first, *later = clf.history_
    assert (first["step"], first["epoch"]) == (0, 0.0) and first["elapsed_s"] >= 0
    assert first["val_accuracy"] >= 0.9  # the prototype head already classifies
    assert later and all(h["step"] > 0 and h["val_accuracy"] < first["val_accuracy"] for h in later)
    assert clf.train_summary_["best_step"] == 0
    top = [clf.classes_[i] for i in clf.predict_proba(texts).argmax(axis=1)]  # the kept weights are step 0's
    assert round(sum(p == y for p, y in zip(top, labels)) / len(labels), 5) == first["val_accuracy"]


def test_no_first_evaluation_without_few_shot_or_prototype_head(tiny_encoder: Path) -> None:
    texts, labels = toy_data()
    for settings in ({"few_shot": "off"}, {"few_shot": "on", "few_shot_epochs": 1, "few_shot_prototype_init": False}):
        clf = IntentClassifier(tiny_config(tiny_encoder, epochs=1, **settings)).fit(
            texts, labels, validation=(texts, labels)
        )
        assert [h["step"] for h in clf.history_] == [clf.train_summary_["steps"]], settings
