"""Which backbone weights train: all of them, all but the token embeddings (``train.freeze_embeddings``), all but
the embeddings and the lowest N layers (``train.freeze_layers``), or only LoRA adapters (``train.lora_rank``,
through ``peft``).

LoRA adapters are merged into the backbone's weights before the model is saved, so a saved model is an ordinary
backbone folder: it loads, serves and exports to ONNX without ``peft``, at no extra inference cost.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from ..config import TrainConfig
from ..errors import ConfigError


def transformer_layers(backbone: nn.Module) -> nn.ModuleList:
    """The backbone's stack of transformer layers: the longest ``ModuleList`` whose length is the config's
    ``num_hidden_layers`` (``encoder.layer`` in BERT, ``layers`` in Llama).

    Raises:
        ConfigError: if no such list exists (a backbone this function does not understand).
    """
    count = getattr(backbone.config, "num_hidden_layers", None)
    for _, module in backbone.named_modules():
        if isinstance(module, nn.ModuleList) and len(module) == count:
            return module
    raise ConfigError(
        f"cannot find the transformer layers of {type(backbone).__name__} to freeze; set train.freeze_layers = 0"
    )


def freeze_lower_layers(backbone: nn.Module, count: int) -> int:
    """Freeze the input embeddings and the lowest ``count`` transformer layers.

    Returns:
        The number of parameters frozen.

    Raises:
        ConfigError: if ``count`` exceeds the backbone's layers.
    """
    layers = transformer_layers(backbone)
    if count > len(layers):
        raise ConfigError(f"train.freeze_layers = {count}, but the backbone has only {len(layers)} layers")
    frozen = 0
    for module in [backbone.get_input_embeddings(), *list(layers)[:count]]:
        for param in module.parameters():
            if param.requires_grad:
                param.requires_grad_(False)
                frozen += param.numel()
    return frozen


def default_lora_targets(backbone: nn.Module) -> list[str]:
    """Every linear projection inside the transformer layers (attention and MLP), by module name suffix."""
    layers = transformer_layers(backbone)
    names = {name.rsplit(".", 1)[-1] for name, module in layers[0].named_modules() if isinstance(module, nn.Linear)}
    return sorted(names)


def add_lora(backbone: nn.Module, cfg: TrainConfig) -> nn.Module:
    """Wrap ``backbone`` with trainable LoRA adapters; its own weights are frozen.

    Returns:
        The ``peft`` model, to use in place of the backbone.
    """
    from peft import LoraConfig, get_peft_model

    targets = cfg.lora_target_modules or default_lora_targets(backbone)
    known = {name.rsplit(".", 1)[-1] for name, _ in backbone.named_modules()}
    missing = [t for t in targets if t not in known]
    if missing:
        raise ConfigError(
            f"train.lora_target_modules names modules the backbone does not have: {', '.join(missing)}; "
            f"linear layers it has: {', '.join(default_lora_targets(backbone))}"
        )
    config = LoraConfig(
        r=cfg.lora_rank, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout, target_modules=targets
    )
    return get_peft_model(backbone, config)


def merge_lora(backbone: nn.Module) -> nn.Module:
    """Fold LoRA adapters into the weights and return the plain backbone (unchanged if it has none)."""
    if hasattr(backbone, "merge_and_unload"):
        return backbone.merge_and_unload()
    return backbone


def prepare_backbone(backbone: nn.Module, cfg: TrainConfig) -> tuple[nn.Module, dict[str, Any]]:
    """Apply ``train.lora_rank``, ``train.freeze_layers`` or ``train.freeze_embeddings`` (the first one set);
    return the backbone to train and a summary (``trainable_parameters``, ``total_parameters``, ``method``)."""
    method = "full"
    if cfg.lora_rank:
        backbone, method = add_lora(backbone, cfg), f"lora (rank {cfg.lora_rank})"
    elif cfg.freeze_layers:
        freeze_lower_layers(backbone, cfg.freeze_layers)
        method = f"lower {cfg.freeze_layers} layers frozen"
    elif cfg.freeze_embeddings:
        backbone.get_input_embeddings().weight.requires_grad_(False)
        method = "token embeddings frozen"
    trainable = sum(p.numel() for p in backbone.parameters() if p.requires_grad)
    total = sum(p.numel() for p in backbone.parameters())
    return backbone, {"method": method, "trainable_parameters": trainable, "total_parameters": total}


__all__ = [
    "add_lora",
    "default_lora_targets",
    "freeze_lower_layers",
    "merge_lora",
    "prepare_backbone",
    "transformer_layers",
]
