"""Fine-tuning a network: :func:`train_net` runs :class:`~intentune.train.loop.TrainingLoop` with callbacks, which
change only a :class:`~intentune.train.state.TrainControl` (``should_stop``, ``should_save``), writes the resumable
checkpoints they ask for, and restores the best weights. Under ``accelerate launch`` / ``torchrun`` only the main
process writes files.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..config import TrainConfig
from ..errors import ConfigError
from .callbacks import Callback, CheckpointSchedule, EarlyStopping, resolve_early_stopping_metric
from .checkpoint import data_fingerprint, load_checkpoint, restore_state, save_checkpoint
from .loop import TrainingLoop
from .losses import Distillation
from .runtime import make_accelerator, set_attention
from .sampler import EpochRows
from .state import Encoded, TrainControl, TrainResult, TrainState


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
    distillation: Distillation | None = None,
    epoch_rows: EpochRows | None = None,
) -> TrainResult:
    """Fine-tune ``net`` in place; with validation data, early-stop and restore the best weights.

    Args:
        net: the classifier network (backbone + head).
        train: ``(token_ids, label_ids)``; for a multi-label network, multi-hot rows (one 0/1 per intent) instead
            of label ids, and the loss is :class:`MultiLabelLoss`; with ``distillation``, the rows of
            :meth:`intentune.train.losses.SoftTargets.rows`.
        validation: the same for validation data, or None.
        cfg: the ``[train]`` config section.
        pad_id: the tokenizer's pad token id.
        callbacks: extra callbacks, called after the built-in ones (early stopping, and the checkpoint schedule when
            there is a checkpoint folder), on the main process only unless a callback sets
            ``main_process_only = False``.
        class_weights: loss weight per label id (see :func:`intentune.train.optim.compute_class_weights`), or None.
        checkpoint_dir: where resumable checkpoints go (``train.checkpoint_every_steps``); None = no checkpoints.
        resume: continue from the checkpoint in ``checkpoint_dir``.
        evaluate_first: with validation data, evaluate ``net`` as it comes, before the first step (history row
            with ``step`` 0), so early stopping can keep it: for a head that already classifies, such as few-shot
            mode's prototype head. Not on a resumed run (its history already has that row).
        distillation: train on a teacher's probabilities with :class:`DistillationLoss`; None = plain training.
        epoch_rows: which rows of ``train`` each epoch uses (:class:`intentune.train.sampler.EpochRows`: replay
            rows taking turns from epoch to epoch); None = all of them.

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
    loop = TrainingLoop(
        net, train, validation, cfg, pad_id, accelerator,
        class_weights=class_weights, distillation=distillation, epoch_rows=epoch_rows,
    )  # fmt: skip
    state = TrainState(max_steps=loop.total_steps)
    metric = resolve_early_stopping_metric(cfg.early_stopping_metric, validation[1] if validation else None)
    early_stopping = EarlyStopping(cfg.early_stopping_patience, metric)
    best: dict[str, torch.Tensor] | None = None
    if resume:
        if checkpoint_dir is None:
            raise ConfigError("resume needs a checkpoint folder; train.checkpoint_every_steps = 0 writes none")
        meta, weights, best, trainer = load_checkpoint(checkpoint_dir, fingerprint)
        accelerator.unwrap_model(loop.net).load_state_dict(weights)
        loop.restore(trainer, meta["position"])
        restore_state(state, meta)
        early_stopping.load_state_dict(meta)
    control = TrainControl()
    built_in: list[Callback] = [early_stopping]
    if checkpoint_dir is not None:
        built_in.append(CheckpointSchedule(cfg.checkpoint_every_steps, loop.eval_every))
    all_callbacks = [c for c in [*built_in, *callbacks] if main or not c.main_process_only]
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
        checkpoint_due, control.should_save = control.should_save, False
        if info.eval is not None:
            state.history.append(info.eval)
            _emit(all_callbacks, "on_evaluate", state, control, info.eval)
        keep_best()
        if control.should_stop:
            break
        if checkpoint_due and checkpoint_dir is not None:  # written after the evaluation, so it holds its result
            if main:
                save_checkpoint(checkpoint_dir, loop, state, best, fingerprint, early_stopping.state_dict())
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


__all__ = ["train_net"]
