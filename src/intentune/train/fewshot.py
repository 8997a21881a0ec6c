"""Few-shot mode: adapt the backbone to the intents before the classification head is trained.

With 5-20 examples per intent, cross-entropy fine-tuning from a random head wastes most of its steps finding
directions the data barely pins down. Few-shot mode first trains the backbone with a supervised contrastive loss
(SupCon, Khosla et al. 2020; the idea behind SetFit's and CPFT's pair training): each batch holds a few examples of
each of several intents, and the L2-normalised pooled embeddings of the same intent are pulled together and those of
other intents pushed apart. Every pair in a batch counts, so it is far cheaper than SetFit's explicit pairs. Then
the head starts from the normalised class means of the adapted embeddings (prototype init) rather than from noise,
and the ordinary fine-tuning (:func:`intentune.train.driver.train_net`) runs as usual.

:func:`use_few_shot` decides whether the mode applies (``train.few_shot``); :func:`contrastive_pretrain` does it.
It lives in the training package because it is a training phase: it runs before :func:`train_net` on the same
network, and builds its optimizer with :func:`intentune.train.optim.build_optimizer`.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ..config import TrainConfig
from ..net import embed
from ..preprocess import pad_batch
from .head_init import init_head_from_prototypes
from .optim import build_optimizer

# The backbone's rate in the contrastive phase when ``train.few_shot_learning_rate`` is unset, for encoders and
# decoders alike: no higher than the fine-tuning rates of :data:`intentune.train.optim.DEFAULT_LEARNING_RATE`. The
# decoders' rate was chosen on validation with their `prompt` pooling (docs/experiments.md, the decoder's
# contrastive rate).
CONTRASTIVE_LEARNING_RATE = 5e-5


def use_few_shot(labels: Sequence[str], cfg: TrainConfig) -> bool:
    """Whether few-shot mode runs: ``train.few_shot = on`` or ``off`` decides; ``auto`` switches it on when the
    median number of training examples per intent is at most ``train.few_shot_max_per_intent``."""
    if cfg.few_shot != "auto":
        return cfg.few_shot == "on"
    counts = Counter(labels)
    return bool(counts) and statistics.median(counts.values()) <= cfg.few_shot_max_per_intent


def contrastive_pretrain(
    net: nn.Module,
    token_ids: list[list[int]],
    label_ids: list[int],
    cfg: TrainConfig,
    pad_id: int,
    device: str,
) -> dict[str, Any]:
    """Adapt ``net.backbone`` with a supervised contrastive loss, then initialise ``net.head`` from the class means.

    Args:
        net: an :class:`intentune.model.IntentNet` (its ``backbone``, ``kind``, ``pooling`` and ``head`` are used).
        token_ids: token ids per training text (not padded).
        label_ids: the intent id of each text.
        cfg: the ``[train]`` section (``few_shot_*`` keys, ``seed``, ``weight_decay``, ``max_grad_norm``).
        pad_id: the tokenizer's pad token id.
        device: ``cpu`` or ``cuda``.

    Returns:
        A summary: ``seconds``, ``steps``, ``epochs``, ``loss`` (mean of the last epoch), and the mean cosine
        similarity of same-intent minus different-intent embeddings ``separation_before`` and ``separation_after``.
    """
    started = time.perf_counter()
    generator = torch.Generator().manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    net.to(device)
    labels = torch.tensor(label_ids)
    before = embedding_separation(embed_texts(net, token_ids, pad_id, device, cfg.eval_batch_size), labels)
    optimizer = contrastive_optimizer(net.backbone, cfg, getattr(net, "kind", "encoder"))
    steps, epoch_losses = 0, []
    for _ in range(cfg.few_shot_epochs):
        net.backbone.train()
        epoch_losses = []
        for batch in _intent_batches(label_ids, cfg, generator):
            embeddings = _embed_by_length(net, [token_ids[i] for i in batch], pad_id, device, cfg.batch_size)
            loss = supcon_loss(embeddings, labels[batch].to(device), cfg.few_shot_temperature)
            loss.backward()
            if cfg.max_grad_norm > 0:
                nn.utils.clip_grad_norm_(net.backbone.parameters(), cfg.max_grad_norm)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            steps += 1
            epoch_losses.append(loss.detach())  # read back once at the end: a read waits for the GPU
    embeddings = embed_texts(net, token_ids, pad_id, device, cfg.eval_batch_size)  # (n, hidden)
    after = embedding_separation(embeddings, labels)
    if cfg.few_shot_prototype_init:
        init_head_from_prototypes(net.head, embeddings, labels)
    return {
        "method": "supcon",
        "epochs": cfg.few_shot_epochs,
        "steps": steps,
        "loss": round(sum(torch.stack(epoch_losses).tolist()) / len(epoch_losses), 5) if epoch_losses else 0.0,
        "separation_before": round(before, 4),
        "separation_after": round(after, 4),
        "prototype_init": cfg.few_shot_prototype_init,
        "seconds": round(time.perf_counter() - started, 2),
    }


def supcon_loss(embeddings: torch.Tensor, labels: torch.Tensor, temperature: float) -> torch.Tensor:
    """Supervised contrastive loss (Khosla et al. 2020, the "L_out" form) over one batch.

    Args:
        embeddings: ``(batch, hidden)`` pooled embeddings (normalised here).
        labels: ``(batch,)`` intent ids.
        temperature: softmax temperature of the cosine similarities.

    Returns:
        The mean over anchors that have at least one positive (0 if none has).
    """
    z = nn.functional.normalize(embeddings.float(), dim=-1)
    logits = z @ z.T / temperature  # (batch, batch)
    self_mask = torch.eye(len(labels), dtype=torch.bool, device=z.device)
    logits = logits.masked_fill(self_mask, float("-inf"))
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    positives = (labels[:, None] == labels[None, :]) & ~self_mask
    counts = positives.sum(dim=1)
    has_positive = counts > 0
    if not has_positive.any():
        return logits.new_zeros(()) + 0.0 * z.sum()
    mean_log_prob = log_prob.masked_fill(~positives, 0.0).sum(dim=1) / counts.clamp(min=1)
    return -mean_log_prob[has_positive].mean()


@torch.no_grad()
def embed_texts(net: nn.Module, token_ids: list[list[int]], pad_id: int, device: str, batch_size: int) -> torch.Tensor:
    """Pooled embeddings ``(n, hidden)`` of all texts, in eval mode (no dropout)."""
    was_training = net.backbone.training
    net.backbone.eval()
    order = sorted(range(len(token_ids)), key=lambda i: len(token_ids[i]))
    out = torch.zeros(len(token_ids), net.backbone.config.hidden_size, device=device)
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        out[chunk] = _embed(net, [token_ids[i] for i in chunk], pad_id, device).float()
    net.backbone.train(was_training)
    return out


def _embed_by_length(
    net: nn.Module, sequences: list[list[int]], pad_id: int, device: str, chunk_size: int
) -> torch.Tensor:
    """:func:`_embed` of one contrastive batch, in chunks of ``chunk_size`` texts of similar length, returned in
    the batch's order. A contrastive batch mixes intents, so its texts have all lengths, and padded as one it would
    be mostly padding; the loss still sees the whole batch."""
    if chunk_size <= 0 or len(sequences) <= chunk_size:
        return _embed(net, sequences, pad_id, device)
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))
    parts = [
        _embed(net, [sequences[i] for i in order[start : start + chunk_size]], pad_id, device)
        for start in range(0, len(order), chunk_size)
    ]
    inverse = torch.empty(len(order), dtype=torch.long)
    inverse[torch.tensor(order)] = torch.arange(len(order))
    return torch.cat(parts)[inverse.to(parts[0].device)]


def _embed(net: nn.Module, sequences: list[list[int]], pad_id: int, device: str) -> torch.Tensor:
    """Pooled backbone states ``(batch, hidden)``, computed as :class:`intentune.net.IntentNet` does."""
    batch = pad_batch(sequences, pad_id)
    ids, mask = batch["input_ids"].to(device), batch["attention_mask"].to(device)
    return embed(net.backbone, ids, mask, kind=net.kind, pooling=net.pooling)


def _intent_batches(label_ids: list[int], cfg: TrainConfig, generator: torch.Generator) -> list[list[int]]:
    """One epoch of batches, each of ``few_shot_batch_intents`` groups of up to ``few_shot_examples_per_intent``
    examples of one intent: every example once, groups and batches shuffled with ``generator``."""
    by_intent: dict[int, list[int]] = {}
    for index, label in enumerate(label_ids):
        by_intent.setdefault(label, []).append(index)
    k = cfg.few_shot_examples_per_intent
    groups = []
    for indices in by_intent.values():
        shuffled = [indices[i] for i in torch.randperm(len(indices), generator=generator).tolist()]
        groups += [shuffled[i : i + k] for i in range(0, len(shuffled), k)]
    order = torch.randperm(len(groups), generator=generator).tolist()
    p = cfg.few_shot_batch_intents
    return [
        [i for g in order[start : start + p] for i in groups[g]] for start in range(0, len(order), p)
    ]  # fmt: skip


def embedding_separation(embeddings: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean cosine of same-intent pairs (self-pairs excluded) minus mean cosine of different-intent pairs.

    Computed from per-intent sums of the normalised vectors (the dot products of all pairs within a set add up to
    the squared norm of its sum), in ``O(n x hidden)`` memory and time, where the ``n x n`` cosine matrix would
    grow with the square of the rows.
    """
    z = nn.functional.normalize(embeddings.double(), dim=-1)
    labels = labels.to(z.device).long()
    sums = torch.zeros(int(labels.max()) + 1 if len(labels) else 0, z.shape[1], dtype=z.dtype, device=z.device)
    sums.index_add_(0, labels, z)
    counts = torch.bincount(labels, minlength=sums.shape[0]).double()
    squared_norms = torch.zeros_like(counts).index_add_(0, labels, (z * z).sum(dim=1))  # the self-pairs
    within = (sums * sums).sum(dim=1)  # per intent: all ordered pairs, self-pairs included
    same_pairs = float((counts * (counts - 1)).sum())
    different_pairs = float(len(labels) ** 2 - (counts * counts).sum())
    if same_pairs == 0 or different_pairs == 0:
        return 0.0
    same = float((within - squared_norms).sum()) / same_pairs
    different = float(sums.sum(dim=0).square().sum() - within.sum()) / different_pairs
    return same - different


def contrastive_optimizer(backbone: nn.Module, cfg: TrainConfig, kind: str) -> torch.optim.Optimizer:
    """AdamW over the backbone's trainable weights at one rate, ``train.few_shot_learning_rate`` (or
    :data:`CONTRASTIVE_LEARNING_RATE`), whatever ``train.optimizer`` and ``train.layer_lr_decay`` say for fine-tuning;
    ``train.weight_decay`` except on biases and normalisation weights.
    """
    lr = cfg.few_shot_learning_rate or CONTRASTIVE_LEARNING_RATE
    # The few-shot rate is passed in place of the fine-tuning ones (the head's too, should a backbone name a module
    # ``head``); build_optimizer's defaults stay those of fine-tuning.
    settings = dataclasses.replace(cfg, optimizer="adamw", learning_rate=lr, head_learning_rate=lr, layer_lr_decay=1.0)
    return build_optimizer(backbone, settings, kind)


__all__ = [
    "CONTRASTIVE_LEARNING_RATE",
    "contrastive_optimizer",
    "contrastive_pretrain",
    "embed_texts",
    "embedding_separation",
    "supcon_loss",
    "use_few_shot",
]
