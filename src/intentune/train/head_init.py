"""Starting values of the dense head: from the training rows' pooled vectors, for a fresh few-shot run
(:func:`init_head_from_prototypes`); a multi-label head's offsets at the intents' base rates
(:func:`init_head_bias_from_rates`); and from an old model's head plus the new intents' vectors, for a run that
adds intents to a trained model (:func:`expand_head`)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


@torch.no_grad()
def init_head_from_prototypes(head: nn.Linear, embeddings: torch.Tensor, labels: torch.Tensor) -> None:
    """Set each intent's row of ``head`` to its normalised mean embedding, scaled so a typical embedding gives
    logits of about ``10 x cosine`` (a confident but not saturated start); biases 0.

    Args:
        head: the dense layer, ``(num_labels, hidden)`` weights.
        embeddings: ``(n, hidden)`` pooled training embeddings.
        labels: ``(n,)`` their intent ids.
    """
    embeddings = embeddings.float()
    scale = 10.0 / embeddings.norm(dim=1).mean().clamp(min=1e-6)
    sums = torch.zeros(head.out_features, embeddings.shape[1], device=embeddings.device)
    sums.index_add_(0, labels.to(embeddings.device), embeddings)
    prototypes = nn.functional.normalize(sums, dim=1)  # intents without examples stay 0
    head.weight.copy_((prototypes * scale).to(head.weight.device, head.weight.dtype))
    head.bias.zero_()


@torch.no_grad()
def init_head_bias_from_rates(head: nn.Linear, targets: Sequence[Sequence[float]]) -> None:
    """Set each intent's bias to the log-odds of its share of the training rows (``targets``: multi-hot rows),
    smoothed by half a row so no share is 0 or 1.

    A multi-label head's sigmoids then start at each intent's base rate instead of 0.5: the first steps no longer
    go into pushing every intent's answer down, the error that dominates at 0.5 when a row has one or two intents
    of many."""
    rows = torch.as_tensor(targets, dtype=torch.float32)
    share = (rows.sum(dim=0) + 0.5) / (rows.shape[0] + 1.0)
    head.bias.copy_(torch.log(share / (1.0 - share)).to(head.bias.device, head.bias.dtype))


@torch.no_grad()
def expand_head(
    head: nn.Linear,
    previous: nn.Linear,
    previous_classes: Sequence[str],
    classes: Sequence[str],
    embeddings: torch.Tensor,
    label_ids: torch.Tensor,
) -> list[str]:
    """Set ``head``'s rows: the old row (weight and bias) for each intent ``previous`` has, a new one for the others.

    A new intent's weight row is the direction from the mean pooled vector of all training rows to the mean of its
    own rows, scaled to the mean norm of the old rows; its bias is the mean old bias. The old rows' norms set the
    logit scale the old model's softmax was trained at, so a new row of that norm gives its own examples logits of
    the size the old rows give theirs: the new intent neither swamps the old ones nor starts unheard, and the mean
    bias starts it at an average prior. The direction is taken from the overall mean rather than from the origin
    because fine-tuned pooled vectors share a large common component: an uncentred mean would point the new row at
    what every text has in common, and give every text a high logit for the new intent.

    Args:
        head: the new dense layer, ``(len(classes), hidden)``.
        previous: the old model's dense layer, one row per intent of ``previous_classes``.
        previous_classes: the old intents, in row order.
        classes: the new model's intents, in row order.
        embeddings: ``(n, hidden)`` pooled vectors of the training rows.
        label_ids: ``(n,)`` their rows in ``classes``.

    Returns:
        The intents of ``classes`` that ``previous`` lacks.
    """
    old_rows = {c: i for i, c in enumerate(previous_classes)}
    old_weight, old_bias = previous.weight.detach().float().cpu(), previous.bias.detach().float().cpu()
    embeddings, label_ids = embeddings.detach().float().cpu(), label_ids.cpu()
    sums = torch.zeros(len(classes), embeddings.shape[1]).index_add_(0, label_ids, embeddings)
    counts = torch.bincount(label_ids, minlength=len(classes)).clamp(min=1).unsqueeze(1)
    directions = nn.functional.normalize(sums / counts - embeddings.mean(dim=0), dim=1)  # (classes, hidden)
    weight = directions * old_weight.norm(dim=1).mean()
    bias = torch.full((len(classes),), float(old_bias.mean()))
    added = []
    for row, intent in enumerate(classes):
        if intent in old_rows:
            weight[row], bias[row] = old_weight[old_rows[intent]], old_bias[old_rows[intent]]
        else:
            added.append(intent)
    head.weight.copy_(weight.to(head.weight.device, head.weight.dtype))
    head.bias.copy_(bias.to(head.bias.device, head.bias.dtype))
    return added


__all__ = ["expand_head", "init_head_from_prototypes"]
