"""Resumable checkpoints: what a checkpoint folder holds, how it is written (atomically) and read, and how its
contents return to a fresh run.

A checkpoint carries everything a resumed run needs to continue as the uninterrupted one would have: the weights,
the best weights so far, the optimizer, schedule and random states, the position in the data, the run's history
and the callbacks' state (early stopping's counters). A fingerprint of the data and settings keeps a checkpoint
from resuming another run.
"""

from __future__ import annotations

import dataclasses
import json
import random
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from .._io import atomic_folder
from ..config import TrainConfig
from ..errors import ConfigError

if TYPE_CHECKING:
    from .loop import TrainingLoop
    from .state import Encoded, TrainState

CHECKPOINT_FORMAT = 1

Weights = dict[str, torch.Tensor]


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


def save_checkpoint(
    directory: Path,
    loop: TrainingLoop,
    state: TrainState,
    best: Weights | None,
    fingerprint: str,
    callback_state: Mapping[str, Any] | None = None,
) -> None:
    """Write a resumable checkpoint atomically: a temporary sibling folder, then a rename over the last one.

    ``weights.safetensors`` (the network), ``best.safetensors`` (the best weights so far, if any), ``trainer.pt``
    (optimizer, schedule and random states; tensors and numbers only, loaded with ``weights_only=True``) and
    ``state.json`` (step, position in the data, history, and ``callback_state``: early stopping's counters, from
    :meth:`intentune.train.callbacks.EarlyStopping.state_dict`, at the top level as checkpoints have always kept
    them).
    """
    from safetensors.torch import save_file

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
            "best_step": state.best_step,
            **(callback_state or {}),
            "elapsed_s": state.elapsed_before + (time.perf_counter() - state.started_at),
            "history": state.history,
        }
        (tmp / "state.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")


def require_checkpoint(directory: Path) -> None:
    """Check that ``directory`` holds a checkpoint before a resumed run reads or writes anything.

    Raises:
        ConfigError: if it holds none.
    """
    if not (directory / "state.json").is_file():
        raise ConfigError(f"nothing to resume: {directory} holds no checkpoint; run without --resume to start training")


def load_checkpoint(
    directory: Path, fingerprint: str
) -> tuple[dict[str, Any], Weights, Weights | None, dict[str, Any]]:
    """Read a checkpoint written by :func:`save_checkpoint`: ``(meta, weights, best weights or None, trainer state)``.

    Raises:
        ConfigError: if there is none, it is damaged, or it belongs to other data or settings.
    """
    from safetensors.torch import load_file

    require_checkpoint(directory)
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


def restore_state(state: TrainState, meta: Mapping[str, Any]) -> None:
    """Put a checkpoint's run state (``meta`` from :func:`load_checkpoint`) into a fresh ``state``: the step, the
    epoch, the history, the best step and the training time before it; ``resumed_from`` records the step."""
    state.step, state.epoch, state.history = meta["step"], meta["epoch"], meta["history"]
    state.best_step = meta["best_step"]
    state.elapsed_before, state.resumed_from = meta["elapsed_s"], meta["step"]


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


__all__ = [
    "CHECKPOINT_FORMAT",
    "data_fingerprint",
    "get_rng_states",
    "load_checkpoint",
    "require_checkpoint",
    "restore_state",
    "save_checkpoint",
    "set_rng_states",
]
