"""The fine-tuning loop: a plain PyTorch loop driven by HF Accelerate, yielding step info.

:class:`TrainingLoop` is the loop itself (its ``run`` is a generator of :class:`StepInfo`, with an evaluation on
validation data every ``eval_every`` steps); :func:`evaluate_loss` is that evaluation. The loop runs the same in one
process or, under ``accelerate launch`` / ``torchrun``, in several (data-parallel). Callbacks, checkpoints and the
best weights are :func:`intentune.train.driver.train_net`'s; the optimizer, the batch order and the accelerator come
from the package's other modules.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from ..config import TrainConfig
from ..preprocess import Collator
from .checkpoint import (
    get_rng_states,
    set_rng_states,
)
from .losses import Distillation, DistillationLoss, MultiLabelLoss, is_multi_hot
from .optim import WeightAverage, build_optimizer, build_scheduler
from .sampler import EpochRows, LengthGroupedBatches, ShuffledBatches
from .state import Encoded, StepInfo, TrainControl, TrainResult, TrainState


class TrainingLoop:
    """The fine-tuning loop over one network: data loaders, optimizer, schedule and the position in the data.

    :meth:`run` yields a :class:`StepInfo` after every optimizer step. The position (epoch, batch, the shuffling
    generator's state at the start of the epoch) and the optimizer, schedule and random states are what a
    checkpoint saves; :meth:`restore` puts them back, so a resumed run continues with the batches, learning rates
    and dropout masks the uninterrupted run would have used.
    """

    def __init__(
        self,
        net: nn.Module,
        train: Encoded,
        validation: Encoded | None,
        cfg: TrainConfig,
        pad_id: int,
        accelerator: Any,
        *,
        class_weights: Sequence[float] | None = None,
        distillation: Distillation | None = None,
        epoch_rows: EpochRows | None = None,
    ) -> None:
        self.cfg = cfg
        self.accelerator = accelerator
        self.generator = torch.Generator().manual_seed(cfg.seed)
        rows = list(zip(*train))
        sampler: LengthGroupedBatches | ShuffledBatches | None = None
        if cfg.group_by_length:
            sampler = LengthGroupedBatches(
                [len(ids) for ids in train[0]], cfg.batch_size, self.generator, epoch_rows=epoch_rows
            )
            loader = DataLoader(rows, batch_sampler=sampler, collate_fn=Collator(pad_id))
        elif epoch_rows is not None:
            sampler = ShuffledBatches(epoch_rows, cfg.batch_size, self.generator)
            loader = DataLoader(rows, batch_sampler=sampler, collate_fn=Collator(pad_id))
        else:
            loader = DataLoader(
                rows, batch_size=cfg.batch_size, shuffle=True, collate_fn=Collator(pad_id), generator=self.generator
            )
        self.batch_sampler = sampler  # told each epoch's index, which picks the epoch's rows with ``epoch_rows``
        val_loader = None
        if validation is not None:
            # Sorted by length, so a batch is padded only to texts like its own (the metrics do not depend on the
            # order); a validation pass then spends far less time on padding.
            val_rows = sorted(zip(*validation), key=lambda row: len(row[0]))
            val_loader = DataLoader(val_rows, batch_size=cfg.eval_batch_size, collate_fn=Collator(pad_id))
        optimizer = build_optimizer(net, cfg, getattr(net, "kind", "encoder"))
        self.net, self.optimizer, self.loader = accelerator.prepare(net, optimizer, loader)
        self.val_loader = accelerator.prepare(val_loader) if val_loader is not None else None
        # Optimizer steps per epoch in this process (the prepared loader holds this process's share of the batches).
        self.steps_per_epoch = math.ceil(len(self.loader) / cfg.gradient_accumulation_steps)
        self.total_steps = cfg.max_steps or self.steps_per_epoch * cfg.epochs
        # Stepped once per optimizer step by this loop (not by accelerate, which would step it once per process).
        self.scheduler = build_scheduler(self.optimizer.optimizer, cfg, self.total_steps)
        weight = None
        if class_weights is not None:
            weight = torch.tensor(list(class_weights), dtype=torch.float32, device=accelerator.device)
        # Distillation targets are rows of floats too, but the network is single-label (validation: intent ids).
        self.multi_label = is_multi_hot(train[1]) and distillation is None
        self.loss_fn: nn.Module
        if distillation is not None:
            self.loss_fn = DistillationLoss(distillation, weight, cfg.label_smoothing)
        elif self.multi_label:
            self.loss_fn = MultiLabelLoss(weight, cfg.label_smoothing)
        else:
            self.loss_fn = nn.CrossEntropyLoss(weight=weight, label_smoothing=cfg.label_smoothing)
        self.eval_every = cfg.eval_every_steps or self.steps_per_epoch
        self.average = (
            WeightAverage(accelerator.unwrap_model(self.net), cfg.ema_epochs, self.steps_per_epoch)
            if cfg.ema_epochs > 0
            else None
        )
        self.epoch_index = 0
        self.batch_index = 0  # batches of the current epoch already trained on
        self.epoch_start_generator = self.generator.get_state()
        self.seen = 0
        self.smoothed: float | None = None
        # The training losses not yet read back from the device: reading one waits for the GPU to finish, which
        # costs a step of a small model much of its speed, so on a GPU they are read every 16 steps (and before
        # every evaluation and checkpoint); on a CPU every step, where reading costs nothing.
        self._unread_losses: list[torch.Tensor] = []
        self._read_every = 1 if accelerator.device.type == "cpu" else 16
        self._pending_rng: dict[str, Any] | None = None

    def run(self, state: TrainState) -> Iterator[StepInfo]:
        """Train until ``total_steps`` optimizer steps, starting from ``state.step``."""
        cfg, accelerator, net = self.cfg, self.accelerator, self.net
        started = time.perf_counter()
        seen_before = self.seen
        accumulate = cfg.gradient_accumulation_steps
        while state.step < self.total_steps:
            if self.batch_index == 0:
                self.epoch_start_generator = self.generator.get_state()
            else:  # resuming mid-epoch: the epoch's batch order again, without the batches already trained on
                self.generator.set_state(self.epoch_start_generator)
            if self.batch_sampler is not None:
                self.batch_sampler.start_epoch(self.epoch_index)
            batches = iter(self.loader)
            for _ in range(self.batch_index):
                next(batches)
            if self._pending_rng is not None:
                set_rng_states(self._pending_rng)
                self._pending_rng = None
            net.train()
            for batch in batches:
                logits = net(batch["input_ids"], batch["attention_mask"])  # (batch, num_labels)
                loss = self.loss_fn(logits, batch["labels"]) / accumulate
                accelerator.backward(loss)
                self.batch_index += 1
                self.seen += batch["labels"].shape[0]
                self._unread_losses.append(loss.detach())
                if self.batch_index % accumulate and self.batch_index < len(self.loader):
                    continue
                if cfg.max_grad_norm > 0:
                    accelerator.clip_grad_norm_(net.parameters(), cfg.max_grad_norm)
                self.optimizer.step()
                self.scheduler.step()
                self.optimizer.zero_grad(set_to_none=True)
                if self.average is not None:
                    self.average.update(accelerator.unwrap_model(net))
                state.step += 1
                evaluate_now = self.val_loader is not None and (
                    state.step % self.eval_every == 0 or state.step == self.total_steps
                )
                if (
                    evaluate_now
                    or self.smoothed is None
                    or state.step % self._read_every == 0
                    or state.step >= self.total_steps
                ):
                    self._read_losses()
                elapsed = time.perf_counter() - started
                info = StepInfo(
                    step=state.step,
                    epoch=self.epoch_index + self.batch_index / len(self.loader),
                    loss=self.smoothed,
                    learning_rate=self.scheduler.get_last_lr()[0],
                    examples_per_s=(self.seen - seen_before) / max(elapsed, 1e-9),
                )
                if evaluate_now:
                    info.eval = self.evaluate() | {
                        "step": state.step,
                        "epoch": round(info.epoch, 3),
                        "train_loss": round(self.smoothed, 5),
                        "learning_rate": info.learning_rate,
                        "elapsed_s": round(state.elapsed_before + time.perf_counter() - started, 2),
                    }
                    net.train()
                yield info
                if state.step >= self.total_steps:
                    return
            self.epoch_index += 1
            self.batch_index = 0

    def evaluate(self) -> dict[str, float]:
        """Validation loss and accuracy of the weights training would keep (the averaged ones with
        ``train.ema_epochs``)."""
        if self.average is None:
            return evaluate_loss(self.net, self.val_loader, self.accelerator, multi_label=self.multi_label)
        unwrapped = self.accelerator.unwrap_model(self.net)
        self.average.swap(unwrapped)
        try:
            return evaluate_loss(self.net, self.val_loader, self.accelerator, multi_label=self.multi_label)
        finally:
            self.average.swap(unwrapped)

    def kept_weights(self) -> dict[str, torch.Tensor]:
        """The weights to keep or save now: the network's, or their average with ``train.ema_epochs``."""
        unwrapped = self.accelerator.unwrap_model(self.net)
        return unwrapped.state_dict() if self.average is None else self.average.state_dict_for(unwrapped)

    # ------------------------------------------------------------------ checkpoints
    def trainer_state(self) -> dict[str, Any]:
        """Optimizer, schedule and random states, for ``torch.save`` (plain tensors and numbers only)."""
        return {
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "epoch_start_generator": self.epoch_start_generator,
            "rng": get_rng_states(),
            "average": None if self.average is None else {
                "shadow": {k: v.to("cpu") for k, v in self.average.shadow.items()},
                "updates": self.average.updates,
            },
        }  # fmt: skip

    def _read_losses(self) -> None:
        """Fold the unread losses into the smoothed training loss (in the order they were computed)."""
        if self._unread_losses:
            accumulate = self.cfg.gradient_accumulation_steps
            for value in torch.stack(self._unread_losses).tolist():
                value *= accumulate
                self.smoothed = value if self.smoothed is None else 0.9 * self.smoothed + 0.1 * value
            self._unread_losses.clear()

    def position(self) -> dict[str, Any]:
        self._read_losses()
        return {"epoch_index": self.epoch_index, "batch_index": self.batch_index, "seen": self.seen,
                "smoothed_loss": self.smoothed}  # fmt: skip

    def restore(self, trainer_state: dict[str, Any], position: dict[str, Any]) -> None:
        """Put back what :meth:`trainer_state` and :meth:`position` saved (the weights are loaded separately)."""
        self.optimizer.load_state_dict(trainer_state["optimizer"])
        self.scheduler.load_state_dict(trainer_state["scheduler"])
        self.epoch_start_generator = trainer_state["epoch_start_generator"]
        self._pending_rng = trainer_state["rng"]
        saved_average = trainer_state.get("average")
        if self.average is not None and saved_average is not None:
            for name, value in saved_average["shadow"].items():
                self.average.shadow[name].copy_(value)
            self.average.updates = saved_average["updates"]
        self.epoch_index, self.batch_index = position["epoch_index"], position["batch_index"]
        self.seen, self.smoothed = position["seen"], position["smoothed_loss"]


def evaluate_loss(
    net: nn.Module, loader: DataLoader, accelerator: Any, *, multi_label: bool = False
) -> dict[str, float]:
    """Mean cross-entropy and accuracy over a labelled loader, gathered across processes. For a multi-label
    network the loss is the binary cross-entropy per intent (summed over intents, averaged over rows) and the
    accuracy is subset accuracy: every intent on the right side of probability 0.5."""
    net.eval()
    losses, correct, count = [], 0, 0
    with torch.inference_mode():
        for batch in loader:
            logits = net(batch["input_ids"], batch["attention_mask"])
            logits, labels = accelerator.gather_for_metrics((logits, batch["labels"]))
            if multi_label:
                bce = nn.functional.binary_cross_entropy_with_logits(logits.float(), labels.float(), reduction="sum")
                losses.append(bce.item())
                correct += ((logits > 0) == (labels > 0.5)).all(dim=-1).sum().item()
                count += labels.shape[0]
                continue
            losses.append(nn.functional.cross_entropy(logits.float(), labels, reduction="sum").item())
            correct += (logits.argmax(dim=-1) == labels).sum().item()
            count += labels.numel()
    return {"val_loss": round(sum(losses) / max(count, 1), 5), "val_accuracy": round(correct / max(count, 1), 5)}


__all__ = [
    "Encoded",
    "LengthGroupedBatches",
    "StepInfo",
    "TrainControl",
    "TrainResult",
    "TrainState",
    "TrainingLoop",
    "evaluate_loss",
]
