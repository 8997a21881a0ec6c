"""Where and how training runs: the Accelerator for ``train.device`` and ``train.precision`` (one process, or one of
several under ``accelerate launch`` / ``torchrun``), whether bf16 is native to the hardware, which process writes
files, and the backbone's attention implementation.

Export and the run pipeline need these without the training loop, so they live apart from it.
"""

from __future__ import annotations

import gc
import os
from typing import Any

import torch
from torch import nn

from ..config import TrainConfig


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
    return int(os.environ.get("RANK", "0")) == 0


__all__ = ["bf16_is_native", "is_main_process", "make_accelerator", "set_attention"]


def free_memory() -> None:
    """Give back the memory of models just dropped: a garbage collection, and the CUDA cache when there is a GPU (a
    loop of fine-tunes would otherwise hold every finished model's blocks)."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
