"""The fine-tuning loop: a plain PyTorch loop driven by HF Accelerate, yielding step info.

:func:`iter_training` is the loop itself (a generator); :func:`train_net` runs it with callbacks, which
change only a :class:`TrainControl` (``should_stop``, ``should_save``), and restores the best weights.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Sampler

from .config import TrainConfig
from .preprocess import Collator

DEFAULT_LEARNING_RATE = {"decoder": 5e-5, "encoder": 1e-4}

Encoded = tuple[list[list[int]], list[int]]  # token ids per text, label id per text


@dataclass
class StepInfo:
    """What one optimizer step (and the evaluation after it, if any) produced."""

    step: int
    epoch: float
    loss: float
    learning_rate: float
    examples_per_s: float
    eval: dict[str, float] | None = None


@dataclass
class TrainState:
    """Running state seen by callbacks."""

    max_steps: int
    step: int = 0
    epoch: float = 0.0
    loss: float = float("nan")
    examples_per_s: float = 0.0
    best_score: tuple[float, float] | None = None
    best_step: int = 0
    history: list[dict[str, float]] = field(default_factory=list)


@dataclass
class TrainControl:
    """What callbacks may ask of the loop."""

    should_stop: bool = False
    should_save: bool = False


@dataclass
class TrainResult:
    """The outcome of :func:`train_net`."""

    state: TrainState
    seconds: float
    stopped_early: bool

    @property
    def history(self) -> list[dict[str, float]]:
        return self.state.history

    def summary(self) -> dict[str, Any]:
        """Plain numbers for the model folder and metrics.json."""
        best = next((h for h in self.history if h["step"] == self.state.best_step), None)
        return {
            "steps": self.state.step,
            "epochs": round(self.state.epoch, 3),
            "train_seconds": round(self.seconds, 2),
            "stopped_early": self.stopped_early,
            "best_step": self.state.best_step,
            "best_validation": best,
            "final_train_loss": round(self.state.loss, 5),
        }


class Callback:
    """Hooks with Hugging Face's event names; each may change only ``control``."""

    def on_train_begin(self, state: TrainState, control: TrainControl) -> None:
        pass

    def on_step_end(self, state: TrainState, control: TrainControl) -> None:
        pass

    def on_evaluate(self, state: TrainState, control: TrainControl, metrics: dict[str, float]) -> None:
        pass

    def on_train_end(self, state: TrainState, control: TrainControl) -> None:
        pass


class EarlyStopping(Callback):
    """Marks improved evaluations for saving and stops after ``patience`` evaluations without one.

    The score is lower validation loss (``metric="val_loss"``), or higher validation accuracy with ties broken by
    lower loss (``metric="val_accuracy"``). Loss is the default: with one or two validation examples per intent,
    accuracy moves in coarse steps and picks noisy maxima.
    """

    def __init__(self, patience: int, metric: str = "val_loss") -> None:
        self.patience = patience
        self.metric = metric
        self.bad_evaluations = 0

    def on_evaluate(self, state: TrainState, control: TrainControl, metrics: dict[str, float]) -> None:
        loss = -metrics["val_loss"]
        score = (loss, 0.0) if self.metric == "val_loss" else (metrics["val_accuracy"], loss)
        if state.best_score is None or score > state.best_score:
            state.best_score, state.best_step = score, state.step
            control.should_save = True
            self.bad_evaluations = 0
        else:
            self.bad_evaluations += 1
            if self.patience and self.bad_evaluations >= self.patience:
                control.should_stop = True


class JsonlLogger(Callback):
    """Appends every evaluation as one JSON line to ``path``."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def on_train_begin(self, state: TrainState, control: TrainControl) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text("", encoding="utf-8")

    def on_evaluate(self, state: TrainState, control: TrainControl, metrics: dict[str, float]) -> None:
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(metrics) + "\n")


class ProgressBar(Callback):
    """A tqdm bar with the loss, the last validation accuracy and examples/s."""

    def __init__(self, **tqdm_kwargs: Any) -> None:
        self.kwargs = tqdm_kwargs
        self.bar: Any = None
        self.val_accuracy = float("nan")

    def on_train_begin(self, state: TrainState, control: TrainControl) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(total=state.max_steps, desc="training", unit="step", **self.kwargs)

    def on_step_end(self, state: TrainState, control: TrainControl) -> None:
        self.bar.update(1)
        self.bar.set_postfix(
            loss=f"{state.loss:.4f}", val_acc=f"{self.val_accuracy:.3f}", ex_s=f"{state.examples_per_s:.1f}"
        )

    def on_evaluate(self, state: TrainState, control: TrainControl, metrics: dict[str, float]) -> None:
        self.val_accuracy = metrics["val_accuracy"]

    def on_train_end(self, state: TrainState, control: TrainControl) -> None:
        self.bar.close()


class LengthGroupedBatches(Sampler[list[int]]):
    """Shuffled batches of similar length, so short utterances are not padded to long ones.

    Each epoch shuffles the rows, cuts them into chunks of ``batch_size * group_batches`` rows, sorts each chunk
    by length, cuts it into batches and shuffles the batches. Every row is used once per epoch, and there are
    ``ceil(len(lengths) / batch_size)`` batches, as with plain shuffling.
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, generator: torch.Generator, group_batches: int = 50):
        self.lengths = list(lengths)
        self.batch_size = batch_size
        self.generator = generator
        self.chunk = batch_size * group_batches

    def __len__(self) -> int:
        return math.ceil(len(self.lengths) / self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        order = torch.randperm(len(self.lengths), generator=self.generator).tolist()
        batches = []
        for start in range(0, len(order), self.chunk):
            chunk = sorted(order[start : start + self.chunk], key=lambda i: self.lengths[i])
            batches += [chunk[i : i + self.batch_size] for i in range(0, len(chunk), self.batch_size)]
        for index in torch.randperm(len(batches), generator=self.generator).tolist():
            yield batches[index]


def build_optimizer(net: nn.Module, cfg: TrainConfig, kind: str) -> torch.optim.Optimizer:
    """AdamW with two learning rates: a low one for the pretrained body, a larger one for the new head.

    Biases and normalisation weights get no weight decay.
    """
    body_lr = cfg.learning_rate or DEFAULT_LEARNING_RATE[kind]
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for name, param in net.named_parameters():
        if param.requires_grad:
            is_head = name.startswith("head.")
            decays = param.ndim >= 2
            groups.setdefault((is_head, decays), []).append(param)
    param_groups = [
        {
            "params": params,
            "lr": cfg.head_learning_rate if is_head else body_lr,
            "weight_decay": cfg.weight_decay if decays else 0.0,
        }
        for (is_head, decays), params in groups.items()
    ]
    try:  # the fused kernel is several times faster on CPU and GPU alike
        return torch.optim.AdamW(param_groups, fused=True)
    except (RuntimeError, TypeError):  # a device or dtype without a fused kernel
        return torch.optim.AdamW(param_groups)


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig, total_steps: int) -> Any:
    """Warmup for ``warmup_ratio`` of the steps, then linear, cosine or constant."""
    from transformers import get_scheduler

    name = "constant_with_warmup" if cfg.schedule == "constant" else cfg.schedule
    warmup = math.ceil(total_steps * cfg.warmup_ratio)
    return get_scheduler(name, optimizer, num_warmup_steps=warmup, num_training_steps=total_steps)


def iter_training(
    net: nn.Module,
    train: Encoded,
    validation: Encoded | None,
    cfg: TrainConfig,
    pad_id: int,
    accelerator: Any,
) -> Iterator[StepInfo]:
    """Train ``net`` and yield a :class:`StepInfo` after every optimizer step.

    Evaluates on ``validation`` every ``cfg.eval_every_steps`` steps (default: once per epoch) and at the end.
    """
    generator = torch.Generator().manual_seed(cfg.seed)
    if cfg.group_by_length:
        sampler = LengthGroupedBatches([len(ids) for ids in train[0]], cfg.batch_size, generator)
        loader = DataLoader(list(zip(*train)), batch_sampler=sampler, collate_fn=Collator(pad_id))
    else:
        loader = DataLoader(
            list(zip(*train)), batch_size=cfg.batch_size, shuffle=True, collate_fn=Collator(pad_id), generator=generator
        )
    val_loader = None
    if validation is not None:
        val_loader = DataLoader(list(zip(*validation)), batch_size=cfg.eval_batch_size, collate_fn=Collator(pad_id))
    steps_per_epoch = len(loader)
    total_steps = steps_per_epoch * cfg.epochs
    eval_every = cfg.eval_every_steps or steps_per_epoch
    optimizer = build_optimizer(net, cfg, getattr(net, "kind", "encoder"))
    scheduler = build_scheduler(optimizer, cfg, total_steps)
    net, optimizer, loader, scheduler = accelerator.prepare(net, optimizer, loader, scheduler)
    if val_loader is not None:
        val_loader = accelerator.prepare(val_loader)
    loss_fn = nn.CrossEntropyLoss()
    step, seen, smoothed, started = 0, 0, None, time.perf_counter()
    for _ in range(cfg.epochs):
        net.train()
        for batch in loader:
            logits = net(batch["input_ids"], batch["attention_mask"])  # (batch, num_labels)
            loss = loss_fn(logits, batch["labels"])
            accelerator.backward(loss)
            if cfg.max_grad_norm > 0:
                accelerator.clip_grad_norm_(net.parameters(), cfg.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            seen += batch["labels"].shape[0]
            value = loss.item()
            smoothed = value if smoothed is None else 0.9 * smoothed + 0.1 * value
            elapsed = time.perf_counter() - started
            info = StepInfo(
                step=step,
                epoch=step / steps_per_epoch,
                loss=smoothed,
                learning_rate=scheduler.get_last_lr()[0],
                examples_per_s=seen / max(elapsed, 1e-9),
            )
            if val_loader is not None and (step % eval_every == 0 or step == total_steps):
                info.eval = evaluate_loss(net, val_loader, accelerator) | {
                    "step": step,
                    "epoch": round(info.epoch, 3),
                    "train_loss": round(smoothed, 5),
                    "learning_rate": info.learning_rate,
                    "elapsed_s": round(time.perf_counter() - started, 2),
                }
                net.train()
            yield info


def evaluate_loss(net: nn.Module, loader: DataLoader, accelerator: Any) -> dict[str, float]:
    """Mean cross-entropy and accuracy over a labelled loader, gathered across processes."""
    net.eval()
    losses, correct, count = [], 0, 0
    with torch.inference_mode():
        for batch in loader:
            logits = net(batch["input_ids"], batch["attention_mask"])
            logits, labels = accelerator.gather_for_metrics((logits, batch["labels"]))
            losses.append(nn.functional.cross_entropy(logits, labels, reduction="sum").item())
            correct += (logits.argmax(dim=-1) == labels).sum().item()
            count += labels.numel()
    return {"val_loss": round(sum(losses) / max(count, 1), 5), "val_accuracy": round(correct / max(count, 1), 5)}


def train_net(
    net: nn.Module,
    train: Encoded,
    validation: Encoded | None,
    cfg: TrainConfig,
    pad_id: int,
    callbacks: Sequence[Callback] = (),
) -> TrainResult:
    """Fine-tune ``net`` in place; with validation data, early-stop and restore the best weights.

    Args:
        net: the classifier network (backbone + head).
        train: ``(token_ids, label_ids)``.
        validation: the same for validation data, or None.
        cfg: the ``[train]`` config section.
        pad_id: the tokenizer's pad token id.
        callbacks: extra callbacks, called after the built-in early stopping.

    Returns:
        The final state, wall time and whether training stopped early.
    """
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    set_seed(cfg.seed)
    accelerator = Accelerator(cpu=cfg.device == "cpu")
    steps_per_epoch = math.ceil(len(train[0]) / cfg.batch_size)
    state = TrainState(max_steps=steps_per_epoch * cfg.epochs)
    control = TrainControl()
    all_callbacks: list[Callback] = [EarlyStopping(cfg.early_stopping_patience, cfg.early_stopping_metric), *callbacks]
    best: dict[str, torch.Tensor] | None = None
    started = time.perf_counter()
    _emit(all_callbacks, "on_train_begin", state, control)
    for info in iter_training(net, train, validation, cfg, pad_id, accelerator):
        state.step, state.epoch, state.loss, state.examples_per_s = (
            info.step,
            info.epoch,
            info.loss,
            info.examples_per_s,
        )
        _emit(all_callbacks, "on_step_end", state, control)
        if info.eval is not None:
            state.history.append(info.eval)
            _emit(all_callbacks, "on_evaluate", state, control, info.eval)
        if control.should_save:
            # Keep the best weights on the CPU (a copy, so later steps do not change them).
            best = {k: v.detach().to("cpu", copy=True) for k, v in accelerator.unwrap_model(net).state_dict().items()}
            control.should_save = False
        if control.should_stop:
            break
    if best is not None:
        accelerator.unwrap_model(net).load_state_dict(best)
    _emit(all_callbacks, "on_train_end", state, control)
    accelerator.free_memory()
    return TrainResult(state, time.perf_counter() - started, stopped_early=control.should_stop)


def _emit(callbacks: Sequence[Callback], event: str, *args: Any) -> None:
    for callback in callbacks:
        getattr(callback, event)(*args)


__all__ = [
    "Callback",
    "EarlyStopping",
    "JsonlLogger",
    "ProgressBar",
    "StepInfo",
    "TrainControl",
    "TrainResult",
    "TrainState",
    "iter_training",
    "train_net",
]
