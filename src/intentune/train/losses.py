"""The training losses beside plain cross-entropy: binary cross-entropy per intent for multi-label networks, and
knowledge distillation from a teacher's probabilities (with the targets it trains on)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn


def is_multi_hot(labels: Sequence[Any]) -> bool:
    """Whether training targets are multi-hot rows (a multi-label model) rather than intent ids."""
    return bool(len(labels)) and isinstance(labels[0], (list, tuple))


class MultiLabelLoss(nn.Module):
    """Binary cross-entropy per intent (a sigmoid each), averaged over rows and intents; ``weight`` scales each
    intent's column (``train.class_weight``), and label smoothing moves the targets ``smoothing / 2`` towards 0.5."""

    def __init__(self, weight: torch.Tensor | None, smoothing: float) -> None:
        super().__init__()
        self.weight, self.smoothing = weight, smoothing

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        targets = targets.float() * (1.0 - self.smoothing) + self.smoothing / 2
        return nn.functional.binary_cross_entropy_with_logits(logits.float(), targets, weight=self.weight)


@dataclass(frozen=True)
class Distillation:
    """How a student learns from a teacher: the softening ``temperature``, the soft targets' share ``alpha`` and,
    when the teacher knows only some of the student's intents (``--init-from``: the old model), the student's
    ``columns`` of those intents, in the teacher's order (None: all of them, in the student's order)."""

    temperature: float
    alpha: float
    columns: tuple[int, ...] | None = None


@dataclass
class SoftTargets:
    """A teacher's probabilities for each training text, for :class:`DistillationLoss`.

    ``probabilities`` has one row per text and one column per intent of ``classes`` (the teacher's calibrated
    probabilities, softened at ``settings.temperature``); ``labelled`` says which texts have a true intent (the
    others, unlabelled texts, learn from the teacher alone).
    """

    classes: list[str]
    probabilities: Any  # (n_texts, n_classes) array
    labelled: list[bool]
    settings: Distillation

    def summary(self) -> dict[str, Any]:
        """What the run's training summary records about the distillation."""
        return {"temperature": self.settings.temperature, "alpha": self.settings.alpha,
                "texts": len(self.labelled), "unlabelled_texts": self.labelled.count(False)}  # fmt: skip

    def rows(self, classes: Sequence[str], label_ids: Sequence[int]) -> list[list[float]]:
        """Training targets in ``classes`` order: each text's probabilities, then its intent id (-1 when it has
        none), as :class:`DistillationLoss` reads them."""
        columns = [self.classes.index(c) for c in classes]
        return [
            [float(p) for p in row[columns]] + [float(label if known else -1)]
            for row, label, known in zip(self.probabilities, label_ids, self.labelled, strict=True)
        ]


class DistillationLoss(nn.Module):
    """Knowledge distillation (Hinton et al., 2015): ``alpha`` times the KL divergence from the teacher's softened
    probabilities to the student's at the same temperature (times temperature squared, so the gradients keep their
    size as the temperature changes), plus ``1 - alpha`` times cross-entropy with the true intent on the rows that
    have one. Targets are rows of ``n_intents + 1`` floats (see :meth:`SoftTargets.rows`); ``weight`` and
    ``smoothing`` apply to the cross-entropy, as in plain training. With ``settings.columns``, the soft targets
    cover those intents only (rows of ``len(columns) + 1`` floats), and the student's probabilities they are
    compared with are its softmax over the same intents: Learning without Forgetting (Li and Hoiem, 2016), which
    keeps how an old model ranks its own intents while the new intents are learnt from the true ones."""

    def __init__(self, settings: Distillation, weight: torch.Tensor | None = None, smoothing: float = 0.0) -> None:
        super().__init__()
        self.settings, self.weight, self.smoothing = settings, weight, smoothing

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        logits, targets = logits.float(), targets.float()
        soft, hard = targets[:, :-1], targets[:, -1].long()
        t, alpha = self.settings.temperature, self.settings.alpha
        columns = self.settings.columns
        kept = logits if columns is None else logits[:, list(columns)]
        student = nn.functional.log_softmax(kept / t, dim=-1)
        loss = alpha * nn.functional.kl_div(student, soft, reduction="batchmean") * t * t
        labelled = hard >= 0
        if alpha < 1.0 and bool(labelled.any()):
            ce = nn.functional.cross_entropy(
                logits[labelled], hard[labelled], weight=self.weight, label_smoothing=self.smoothing
            )
            loss = loss + (1.0 - alpha) * ce
        return loss


def soften(probabilities: Any, temperature: float) -> Any:
    """Probabilities softened at ``temperature``: ``p ** (1 / T)``, normalised per row (the softmax of the logits
    divided by ``T`` when ``p`` is a softmax), as :class:`DistillationLoss` compares them."""
    softened = np.power(np.maximum(np.asarray(probabilities, dtype=np.float64), 0.0), 1.0 / temperature)
    return softened / softened.sum(axis=1, keepdims=True)


__all__ = ["Distillation", "DistillationLoss", "MultiLabelLoss", "SoftTargets", "is_multi_hot", "soften"]
