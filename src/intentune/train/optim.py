"""What an optimizer step does: the optimizer and its parameter groups, the learning-rate schedule, the class
weights of the loss, and the moving average of the weights.

These are the pieces of training that depend on ``[train]`` settings alone, kept apart from the loop that steps
them, so the few-shot phase can build its optimizer the same way.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import nn

from ..backbones import BUNDLED
from ..config import TrainConfig
from ..errors import ConfigError, DataError
from .adapters import transformer_layers

DEFAULT_LEARNING_RATE = {"decoder": 5e-5, "encoder": 1e-4}


def default_learning_rate(kind: str, backbone: str = "") -> float:
    """The backbone's learning rate when ``train.learning_rate`` is unset: a bundled backbone's own (chosen on
    validation data, such as ``mpnet-base``'s), else :data:`DEFAULT_LEARNING_RATE` of its kind."""
    bundled = BUNDLED.get(backbone)
    if bundled is not None and bundled.learning_rate is not None:
        return bundled.learning_rate
    return DEFAULT_LEARNING_RATE[kind]


def with_backbone_learning_rate(cfg: TrainConfig, backbone: str) -> TrainConfig:
    """``cfg`` with ``learning_rate`` set to the bundled backbone's own rate when it is unset and the backbone has
    one; otherwise ``cfg`` unchanged (:func:`build_optimizer` then takes the kind's default, and a checkpoint's
    fingerprint of these settings stays what it was)."""
    bundled = BUNDLED.get(backbone)
    if cfg.learning_rate is not None or bundled is None or bundled.learning_rate is None:
        return cfg
    return dataclasses.replace(cfg, learning_rate=bundled.learning_rate)


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
            # kernel launches, and a decoder has hundreds of weight tensors.
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


__all__ = [
    "DEFAULT_LEARNING_RATE",
    "default_learning_rate",
    "with_backbone_learning_rate",
    "WeightAverage",
    "build_optimizer",
    "build_scheduler",
    "compute_class_weights",
    "layer_depths",
]
