"""The fine-tuning loop: a plain PyTorch loop driven by HF Accelerate, yielding step info.

:class:`TrainingLoop` is the loop itself (its ``run`` is a generator); :func:`train_net` runs it with callbacks,
which change only a :class:`TrainControl` (``should_stop``, ``should_save``), writes resumable checkpoints, and
restores the best weights. The same code runs in one process or, under ``accelerate launch`` / ``torchrun``, in
several (data-parallel; only the main process writes files).
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
import shutil
import statistics
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Sampler

from .config import TrainConfig
from .errors import ConfigError, DataError
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
    bad_evaluations: int = 0  # fine-tuning evaluations since the best of them (early stopping's patience)
    tuning_best: tuple[float, float] | None = None  # the best score of the evaluations after step 0
    history: list[dict[str, float]] = field(default_factory=list)
    resumed_from: int | None = None  # the checkpoint's step when resumed
    elapsed_before: float = 0.0  # training seconds before the resumed checkpoint
    started_at: float = 0.0


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
    early_stopping_metric: str = "val_loss"

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
            "early_stopping_metric": self.early_stopping_metric,
            "best_step": self.state.best_step,
            "best_validation": best,
            "final_train_loss": round(self.state.loss, 5),
            "resumed_from_step": self.state.resumed_from,
        }


class Callback:
    """Hooks with Hugging Face's event names; each may change only ``control``.

    In a multi-process run, callbacks run on the main process only, unless ``main_process_only`` is False.
    """

    main_process_only = True

    def on_train_begin(self, state: TrainState, control: TrainControl) -> None:
        pass

    def on_step_end(self, state: TrainState, control: TrainControl) -> None:
        pass

    def on_evaluate(self, state: TrainState, control: TrainControl, metrics: dict[str, float]) -> None:
        pass

    def on_train_end(self, state: TrainState, control: TrainControl) -> None:
        pass


AUTO_ACCURACY_MIN_PER_INTENT = 10


def resolve_early_stopping_metric(metric: str, validation_labels: Sequence[int] | None) -> str:
    """``train.early_stopping_metric``, with ``auto`` resolved: ``val_accuracy`` when the validation data has at
    least ``AUTO_ACCURACY_MIN_PER_INTENT`` examples per intent (median), else ``val_loss``.

    With one or two validation examples per intent, accuracy moves in coarse steps and picks noisy maxima, so loss
    decides. With enough of them accuracy is what the user wants, and loss can mislead: fine-tuning keeps making
    right answers more confident and a few wrong ones more so, and loss rises while accuracy still climbs (BANKING77
    full, minilm-l6: loss was lowest after epoch 2 at validation accuracy 0.923, accuracy 0.932 after epoch 4).
    Confidence is calibrated afterwards anyway (temperature scaling on the validation data).
    """
    if metric != "auto":
        return metric
    counts = Counter(validation_labels or [])
    if counts and statistics.median(counts.values()) >= AUTO_ACCURACY_MIN_PER_INTENT:
        return "val_accuracy"
    return "val_loss"


class EarlyStopping(Callback):
    """Marks improved evaluations for saving and stops after ``patience`` fine-tuning evaluations without a better
    one (an evaluation at step 0, before fine-tuning, can be the best but does not count towards patience).

    The score is lower validation loss (``metric="val_loss"``), or higher validation accuracy with ties broken by
    lower loss (``metric="val_accuracy"``); :func:`resolve_early_stopping_metric` chooses for ``auto``.
    """

    main_process_only = False  # every process must stop at the same step

    def __init__(self, patience: int, metric: str = "val_loss") -> None:
        self.patience = patience
        self.metric = metric

    def on_evaluate(self, state: TrainState, control: TrainControl, metrics: dict[str, float]) -> None:
        loss = -metrics["val_loss"]
        score = (loss, 0.0) if self.metric == "val_loss" else (metrics["val_accuracy"], loss)
        if state.best_score is None or score > tuple(state.best_score):
            state.best_score, state.best_step = score, state.step
            control.should_save = True
        if state.step == 0:
            # A head evaluated before fine-tuning (few-shot mode's prototype head) may stay the best weights, but
            # it does not start the patience count: the first fine-tuning epoch often falls below it before later
            # ones pass it (BANKING77 10-shot draw 1, minilm-l6: 0.846 at step 0, then 0.810 and 0.842; counted,
            # patience 2 stopped there and kept step 0, test 0.8393 against 0.8558 after all 5 epochs).
            return
        if state.tuning_best is None or score > tuple(state.tuning_best):
            state.tuning_best, state.bad_evaluations = score, 0
        else:
            state.bad_evaluations += 1
            if self.patience and state.bad_evaluations >= self.patience:
                control.should_stop = True


class JsonlLogger(Callback):
    """Appends every evaluation as one JSON line to ``path``."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def on_train_begin(self, state: TrainState, control: TrainControl) -> None:
        # A resumed run starts with the evaluations from before its checkpoint.
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text("".join(json.dumps(m) + "\n" for m in state.history), encoding="utf-8")

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

        self.bar = tqdm(total=state.max_steps, initial=state.step, desc="training", unit="step", **self.kwargs)

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


def compute_class_weights(
    labels: Sequence[str], classes: Sequence[str], setting: str | dict[str, float]
) -> list[float] | None:
    """Loss weights in ``classes`` order for ``train.class_weight``, or None for ``none``.

    ``balanced`` gives each intent ``n_rows / (n_intents * n_rows_of_intent)`` (scikit-learn's formula), so every
    intent weighs as much in the loss as if the data were balanced; a table gives explicit weights (1.0 for intents
    it does not name).

    Raises:
        DataError: if the table names an intent that is not in the training data.
    """
    if setting == "none" or (isinstance(setting, dict) and not setting):
        return None
    if isinstance(setting, dict):
        unknown = sorted(set(setting) - set(classes))
        if unknown:
            raise DataError(f"train.class_weight names intents that are not in the training data: {', '.join(unknown)}")
        return [float(setting.get(c, 1.0)) for c in classes]
    counts = Counter(labels)
    return [len(labels) / (len(classes) * counts[c]) for c in classes]


def build_optimizer(net: nn.Module, cfg: TrainConfig, kind: str) -> torch.optim.Optimizer:
    """``train.optimizer`` with two learning rates: a low one for the pretrained body, a larger one for the new head.

    With ``train.layer_lr_decay`` below 1 the body's rate falls layer by layer from the top down (see
    :func:`layer_depths`). Biases and normalisation weights get no weight decay. Frozen parameters are left out.
    """
    body_lr = cfg.learning_rate or DEFAULT_LEARNING_RATE[kind]
    depths = layer_depths(net) if cfg.layer_lr_decay != 1.0 else {}
    groups: dict[tuple[float, bool], list[nn.Parameter]] = {}
    for name, param in net.named_parameters():
        if param.requires_grad:
            if name.startswith("head."):
                lr = cfg.head_learning_rate
            else:
                lr = body_lr * cfg.layer_lr_decay ** depths.get(name, 0)
            groups.setdefault((lr, param.ndim >= 2), []).append(param)
    param_groups = [
        {"params": params, "lr": lr, "weight_decay": cfg.weight_decay if decays else 0.0}
        for (lr, decays), params in groups.items()
    ]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(param_groups, momentum=cfg.momentum)
    if cfg.optimizer == "adafactor":
        from transformers.optimization import Adafactor

        # Fixed learning rates (the schedule drives them), not Adafactor's own relative steps.
        return Adafactor(param_groups, lr=body_lr, scale_parameter=False, relative_step=False, warmup_init=False)
    optimizer_class = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    try:  # the fused kernel is several times faster on CPU and GPU alike
        return optimizer_class(param_groups, fused=True)
    except (RuntimeError, TypeError):  # a device or dtype without a fused kernel
        return optimizer_class(param_groups)


def layer_depths(net: nn.Module) -> dict[str, int]:
    """How many layers below the top transformer layer each backbone parameter sits (the learning rate is scaled
    by ``train.layer_lr_decay`` to this power): 0 for the top layer and whatever follows it (a final norm, a
    pooler), ``L - 1 - i`` for layer ``i`` of ``L``, and ``L`` for what comes before the lowest layer (the
    embeddings). Parameters are named as ``net.named_parameters()`` names them.

    Raises:
        ConfigError: if the backbone's layer stack cannot be found.
    """
    from .adapters import transformer_layers

    try:
        layers = transformer_layers(net.backbone)
    except (ConfigError, AttributeError):
        raise ConfigError(
            f"cannot find the transformer layers of {type(getattr(net, 'backbone', net)).__name__} for "
            "train.layer_lr_decay; set it to 1.0"
        ) from None
    count = len(layers)
    in_layer = {id(param): i for i, layer in enumerate(layers) for param in layer.parameters()}
    depths, seen_layer = {}, False
    for name, param in net.named_parameters():
        if name.startswith("head."):
            continue
        if id(param) in in_layer:
            seen_layer = True
            depths[name] = count - 1 - in_layer[id(param)]
        else:  # registered before the layers (embeddings) or after them (final norm, pooler)
            depths[name] = 0 if seen_layer else count
    return depths


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig, total_steps: int) -> Any:
    """Warmup for ``warmup_ratio`` of the steps, then linear, cosine or constant."""
    from transformers import get_scheduler

    name = "constant_with_warmup" if cfg.schedule == "constant" else cfg.schedule
    warmup = math.ceil(total_steps * cfg.warmup_ratio)
    return get_scheduler(name, optimizer, num_warmup_steps=warmup, num_training_steps=total_steps)


class WeightAverage:
    """An exponential moving average of a network's trainable weights (``train.ema_epochs``).

    The decay per optimizer step is ``exp(-1 / (ema_epochs x steps_per_epoch))``, capped early in training at
    ``(1 + t) / (10 + t)`` for step ``t`` (a time constant of ``(10 + t) / 9`` steps: the last ninth or so of the
    steps so far) so the average is not dominated by the starting weights. The cap binds while
    ``t < 9 x ema_epochs x steps_per_epoch - 10``: with 0.5 epochs, the first 4.5 epochs. The average is
    kept in float32 next to the weights, for the trainable ones only (frozen layers and a LoRA run's base weights
    never change, so averaging them would only cost memory).
    """

    def __init__(self, net: nn.Module, ema_epochs: float, steps_per_epoch: int) -> None:
        self.decay = math.exp(-1.0 / max(ema_epochs * steps_per_epoch, 1e-9))
        self.updates = 0
        self.shadow = {name: p.detach().float().clone() for name, p in _trainable(net)}

    @torch.no_grad()
    def update(self, net: nn.Module) -> None:
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        self.updates += 1
        trainable = list(_trainable(net))  # no_grad: the parameters themselves, without a detach() each
        if not trainable:
            return
        names, weights = zip(*trainable)
        if all(w.dtype == torch.float32 for w in weights):
            # One multi-tensor operation instead of a kernel per tensor: a GPU step of a small model is bound by
            # kernel launches, and the decoder has 272 weight tensors.
            torch._foreach_lerp_([self.shadow[name] for name in names], list(weights), 1.0 - decay)
        else:
            for name, w in zip(names, weights):
                self.shadow[name].lerp_(w.float(), 1.0 - decay)

    def state_dict_for(self, net: nn.Module) -> dict[str, torch.Tensor]:
        """``net``'s state dict with the averaged weights in place of its own (in each tensor's dtype)."""
        return {
            name: self.shadow[name].to(value.dtype) if name in self.shadow else value
            for name, value in net.state_dict().items()
        }

    @torch.no_grad()
    def swap(self, net: nn.Module) -> None:
        """Exchange the network's weights and the averaged ones; a second call undoes the first. float32 weights
        trade places without a copy (no second model in memory while evaluating)."""
        for name, p in _trainable(net):
            kept = self.shadow[name]
            if p.dtype == kept.dtype and p.device == kept.device:
                p.data, self.shadow[name] = kept, p.data
            else:
                own = p.detach().float().clone()
                p.copy_(kept)
                self.shadow[name] = own


def _trainable(net: nn.Module) -> Iterator[tuple[str, nn.Parameter]]:
    return ((name, p) for name, p in net.named_parameters() if p.requires_grad and p.dtype.is_floating_point)


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
    ) -> None:
        self.cfg = cfg
        self.accelerator = accelerator
        self.generator = torch.Generator().manual_seed(cfg.seed)
        rows = list(zip(*train))
        if cfg.group_by_length:
            sampler = LengthGroupedBatches([len(ids) for ids in train[0]], cfg.batch_size, self.generator)
            loader = DataLoader(rows, batch_sampler=sampler, collate_fn=Collator(pad_id))
        else:
            loader = DataLoader(
                rows, batch_size=cfg.batch_size, shuffle=True, collate_fn=Collator(pad_id), generator=self.generator
            )
        val_loader = None
        if validation is not None:
            # Sorted by length, so a batch is padded only to texts like its own (the metrics do not depend on the
            # order). BANKING77's 1,540 validation texts, minilm-l6, 2-core Intel Xeon, batches of 64: 3.2 s a
            # pass sorted against 8.7 s in the file's order.
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
            return evaluate_loss(self.net, self.val_loader, self.accelerator)
        unwrapped = self.accelerator.unwrap_model(self.net)
        self.average.swap(unwrapped)
        try:
            return evaluate_loss(self.net, self.val_loader, self.accelerator)
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


def get_rng_states() -> dict[str, Any]:
    """The global random states (Python, NumPy, torch CPU and CUDA) as tensors and numbers."""
    import numpy as np

    kind, keys, pos, has_gauss, cached = np.random.get_state()
    states = {
        "python": random.getstate(),
        "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    import numpy as np

    random.setstate(states["python"])
    kind, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def evaluate_loss(net: nn.Module, loader: DataLoader, accelerator: Any) -> dict[str, float]:
    """Mean cross-entropy and accuracy over a labelled loader, gathered across processes."""
    net.eval()
    losses, correct, count = [], 0, 0
    with torch.inference_mode():
        for batch in loader:
            logits = net(batch["input_ids"], batch["attention_mask"])
            logits, labels = accelerator.gather_for_metrics((logits, batch["labels"]))
            losses.append(nn.functional.cross_entropy(logits.float(), labels, reduction="sum").item())
            correct += (logits.argmax(dim=-1) == labels).sum().item()
            count += labels.numel()
    return {"val_loss": round(sum(losses) / max(count, 1), 5), "val_accuracy": round(correct / max(count, 1), 5)}


def bf16_is_native(cpu: bool) -> bool:
    """Whether the device multiplies bf16 matrices natively: a CPU with AMX tiles (Intel Sapphire Rapids and
    later), or a GPU that supports bf16."""
    if cpu:
        amx = getattr(torch.cpu, "_is_amx_tile_supported", None)
        return bool(amx is not None and amx())
    return torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def set_attention(net: nn.Module, implementation: str) -> str | None:
    """Switch the backbone's attention implementation (``eager``, ``sdpa``, as transformers names them).

    Returns:
        The implementation it had, or None where the backbone cannot switch (then nothing changed).
    """
    backbone = getattr(net, "backbone", net)
    base = backbone.get_base_model() if hasattr(backbone, "get_base_model") else backbone  # under LoRA adapters
    config = getattr(base, "config", None)
    if not hasattr(base, "set_attn_implementation") or config is None:
        return None
    before = config._attn_implementation
    if before != implementation:
        base.set_attn_implementation(implementation)
    return before


def make_accelerator(cfg: TrainConfig) -> Any:
    """An Accelerator for ``train.device`` and ``train.precision``; under ``accelerate launch`` or ``torchrun``
    it joins the process group (gloo on CPUs, NCCL on GPUs) and each process trains on its share of the batches."""
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs

    cpu = cfg.device == "cpu" or (cfg.device == "auto" and not torch.cuda.is_available())
    bf16 = cfg.precision == "bf16" or (cfg.precision == "auto" and bf16_is_native(cpu))
    # Backbones carry parameters the classifier never uses (BERT's pooler): data-parallel training must allow them.
    ddp = DistributedDataParallelKwargs(find_unused_parameters=True)
    # Accelerate keeps one process-wide state and refuses another precision or device later in the same process
    # (tuning, cross-validation): start its per-run part afresh; the process group (PartialState) stays.
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=False)
    return Accelerator(cpu=cpu, mixed_precision="bf16" if bf16 else "no", kwargs_handlers=[ddp])


def is_main_process() -> bool:
    """True in the process that writes files: the only one, or rank 0 of a multi-process run."""
    import os

    return int(os.environ.get("RANK", "0")) == 0


CHECKPOINT_FORMAT = 1


def data_fingerprint(train: Encoded, validation: Encoded | None, num_labels: int, cfg: TrainConfig) -> str:
    """A hash of the encoded data and the settings that shape training; a checkpoint resumes only a run with the
    same fingerprint."""
    import hashlib

    settings = {
        k: v
        for k, v in dataclasses.asdict(cfg).items()
        if k not in ("checkpoint_every_steps", "keep_checkpoint", "device", "eval_batch_size")
    }
    payload = json.dumps([train, validation, num_labels, settings], sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


def save_checkpoint(directory: Path, loop: TrainingLoop, state: TrainState, best: dict[str, torch.Tensor] | None,
                    fingerprint: str) -> None:  # fmt: skip
    """Write a resumable checkpoint atomically: a temporary sibling folder, then a rename over the last one.

    ``weights.safetensors`` (the network), ``best.safetensors`` (the best weights so far, if any), ``trainer.pt``
    (optimizer, schedule and random states; tensors and numbers only, loaded with ``weights_only=True``) and
    ``state.json`` (step, position in the data, early-stopping state, history).
    """
    from safetensors.torch import save_file

    from ._io import atomic_folder

    with atomic_folder(directory) as tmp:
        weights = loop.accelerator.unwrap_model(loop.net).state_dict()
        save_file({k: v.detach().cpu().contiguous() for k, v in weights.items()}, str(tmp / "weights.safetensors"))
        if best is not None:
            save_file(best, str(tmp / "best.safetensors"))
        torch.save(loop.trainer_state(), tmp / "trainer.pt")
        meta = {
            "format": CHECKPOINT_FORMAT,
            "fingerprint": fingerprint,
            "step": state.step,
            "total_steps": loop.total_steps,
            "epoch": state.epoch,
            "position": loop.position(),
            "best_score": list(state.best_score) if state.best_score is not None else None,
            "best_step": state.best_step,
            "bad_evaluations": state.bad_evaluations,
            "tuning_best": list(state.tuning_best) if state.tuning_best is not None else None,
            "elapsed_s": state.elapsed_before + (time.perf_counter() - state.started_at),
            "history": state.history,
        }
        (tmp / "state.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")


Weights = dict[str, torch.Tensor]


def load_checkpoint(
    directory: Path, fingerprint: str
) -> tuple[dict[str, Any], Weights, Weights | None, dict[str, Any]]:
    """Read a checkpoint written by :func:`save_checkpoint`: ``(meta, weights, best weights or None, trainer state)``.

    Raises:
        ConfigError: if there is none, it is damaged, or it belongs to other data or settings.
    """
    from safetensors.torch import load_file

    if not (directory / "state.json").is_file():
        raise ConfigError(f"nothing to resume: {directory} holds no checkpoint; run without --resume to start training")
    try:
        meta = json.loads((directory / "state.json").read_text(encoding="utf-8"))
        weights = load_file(str(directory / "weights.safetensors"))
        best = load_file(str(directory / "best.safetensors")) if (directory / "best.safetensors").is_file() else None
        trainer = torch.load(directory / "trainer.pt", weights_only=True)
    except (OSError, ValueError, RuntimeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"checkpoint {directory} is damaged ({exc}); delete it and train without --resume") from None
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise ConfigError(
            f"checkpoint {directory} has format {meta.get('format')}; this intentune reads {CHECKPOINT_FORMAT}"
        )
    if meta.get("fingerprint") != fingerprint:
        raise ConfigError(
            f"checkpoint {directory} was written for other data or training settings; resume with the same data "
            "and config, or train without --resume"
        )
    return meta, weights, best, trainer


def train_net(
    net: nn.Module,
    train: Encoded,
    validation: Encoded | None,
    cfg: TrainConfig,
    pad_id: int,
    callbacks: Sequence[Callback] = (),
    *,
    class_weights: Sequence[float] | None = None,
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
    evaluate_first: bool = False,
) -> TrainResult:
    """Fine-tune ``net`` in place; with validation data, early-stop and restore the best weights.

    Args:
        net: the classifier network (backbone + head).
        train: ``(token_ids, label_ids)``.
        validation: the same for validation data, or None.
        cfg: the ``[train]`` config section.
        pad_id: the tokenizer's pad token id.
        callbacks: extra callbacks, called after the built-in early stopping (on the main process only, unless a
            callback sets ``main_process_only = False``).
        class_weights: loss weight per label id (see :func:`compute_class_weights`), or None.
        checkpoint_dir: where resumable checkpoints go (``train.checkpoint_every_steps``); None = no checkpoints.
        resume: continue from the checkpoint in ``checkpoint_dir``.
        evaluate_first: with validation data, evaluate ``net`` as it comes, before the first step (history row
            with ``step`` 0), so early stopping can keep it: for a head that already classifies, such as few-shot
            mode's prototype head. Not on a resumed run (its history already has that row).

    Returns:
        The final state, wall time and whether training stopped early.

    Raises:
        ConfigError: with ``resume``, if there is no usable checkpoint for this data and config.
    """
    from accelerate.utils import set_seed

    set_seed(cfg.seed)
    accelerator = make_accelerator(cfg)
    main = accelerator.is_main_process
    checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
    num_labels = getattr(getattr(net, "head", None), "out_features", 0)
    fingerprint = data_fingerprint(train, validation, num_labels, cfg) if checkpoint_dir is not None else ""
    # bf16 on a CPU: PyTorch's fused attention runs its backward pass several times slower in bf16 than the plain
    # attention does (which multiplies its matrices on AMX like every other layer), so training uses the plain one;
    # the model is given back with the attention it came with.
    cpu_bf16 = accelerator.device.type == "cpu" and accelerator.mixed_precision == "bf16"
    attention = set_attention(net, "eager") if cpu_bf16 else None
    loop = TrainingLoop(net, train, validation, cfg, pad_id, accelerator, class_weights=class_weights)
    state = TrainState(max_steps=loop.total_steps)
    best: dict[str, torch.Tensor] | None = None
    if resume:
        if checkpoint_dir is None:
            raise ConfigError("resume needs a checkpoint folder; train.checkpoint_every_steps = 0 writes none")
        meta, weights, best, trainer = load_checkpoint(checkpoint_dir, fingerprint)
        accelerator.unwrap_model(loop.net).load_state_dict(weights)
        loop.restore(trainer, meta["position"])
        state.step, state.epoch, state.history = meta["step"], meta["epoch"], meta["history"]
        state.best_score = tuple(meta["best_score"]) if meta["best_score"] is not None else None
        state.best_step, state.bad_evaluations = meta["best_step"], meta["bad_evaluations"]
        tuning_best = meta.get("tuning_best", meta["best_score"])  # checkpoints before it: the same as the best
        state.tuning_best = tuple(tuning_best) if tuning_best is not None else None
        state.elapsed_before, state.resumed_from = meta["elapsed_s"], meta["step"]
    control = TrainControl()
    metric = resolve_early_stopping_metric(cfg.early_stopping_metric, validation[1] if validation else None)
    all_callbacks: list[Callback] = [EarlyStopping(cfg.early_stopping_patience, metric), *callbacks]
    all_callbacks = [c for c in all_callbacks if main or not c.main_process_only]
    every = cfg.checkpoint_every_steps
    started = time.perf_counter()
    state.started_at = started
    _emit(all_callbacks, "on_train_begin", state, control)

    def keep_best() -> None:
        nonlocal best
        if control.should_save:
            # Keep the best weights on the CPU (a copy, so later steps do not change them).
            best = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in loop.kept_weights().items()}
            control.should_save = False

    if evaluate_first and loop.val_loader is not None and not resume:
        first = loop.evaluate()
        first |= {"step": 0, "epoch": 0.0, "elapsed_s": round(time.perf_counter() - started, 2)}
        state.history.append(first)
        _emit(all_callbacks, "on_evaluate", state, control, first)
        keep_best()
    for info in loop.run(state) if not control.should_stop else ():  # a callback may stop it there (pruning)
        state.epoch, state.loss, state.examples_per_s = info.epoch, info.loss, info.examples_per_s
        _emit(all_callbacks, "on_step_end", state, control)
        if info.eval is not None:
            state.history.append(info.eval)
            _emit(all_callbacks, "on_evaluate", state, control, info.eval)
        keep_best()
        if control.should_stop:
            break
        # Unset: at every evaluation (every epoch, or every train.eval_every_steps), with or without validation data.
        due = state.step % loop.eval_every == 0 if every is None else (every > 0 and state.step % every == 0)
        if checkpoint_dir is not None and due and state.step < loop.total_steps:
            if main:
                save_checkpoint(checkpoint_dir, loop, state, best, fingerprint)
            accelerator.wait_for_everyone()
    unwrapped = accelerator.unwrap_model(loop.net, keep_fp32_wrapper=False)
    if best is not None:
        unwrapped.load_state_dict(best)
    elif loop.average is not None:
        unwrapped.load_state_dict(loop.kept_weights())
    if attention is not None:
        set_attention(unwrapped, attention)
    _emit(all_callbacks, "on_train_end", state, control)
    if checkpoint_dir is not None and main and not cfg.keep_checkpoint:
        shutil.rmtree(checkpoint_dir, ignore_errors=True)
    accelerator.free_memory()
    seconds = state.elapsed_before + time.perf_counter() - started
    return TrainResult(state, seconds, stopped_early=control.should_stop, early_stopping_metric=metric)


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
    "TrainingLoop",
    "compute_class_weights",
    "train_net",
]
