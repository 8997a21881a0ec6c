"""Training: the fine-tuning loop and what surrounds it.

- :mod:`.loop`: :class:`TrainingLoop` (a generator of :class:`StepInfo`) and its evaluation, :func:`evaluate_loss`.
- :mod:`.driver`: :func:`train_net`, which runs the loop with callbacks, checkpoints and the best weights.
- :mod:`.state`: the running state, the control callbacks may set, the step report and the run's outcome.
- :mod:`.sampler`: which rows each epoch uses (replay rows taking turns from epoch to epoch) and length-grouped batches.
- :mod:`.callbacks`: the hooks that change only a :class:`TrainControl` (early stopping, the checkpoint schedule,
  logging, progress).
- :mod:`.losses`: the multi-label loss, and distillation's loss and soft targets.
- :mod:`.optim`: optimizer, schedule, class weights, weight averaging.
- :mod:`.checkpoint`: resumable checkpoints (writing, reading, restoring a run's state).
- :mod:`.runtime`: the Accelerator, bf16 and attention choices, the main process.
- :mod:`.fewshot`: few-shot mode's contrastive phase before fine-tuning.
- :mod:`.head_init`: the head's starting rows (few-shot prototypes, multi-label base rates, intents added to a
  trained model).
- :mod:`.adapters`: which backbone weights train (freezing, LoRA).

The names below are re-exported so ``from intentune.train import ...`` works for each of them.
"""

from .adapters import (
    add_lora,
    default_lora_targets,
    freeze_lower_layers,
    merge_lora,
    prepare_backbone,
    transformer_layers,
)
from .callbacks import (
    Callback,
    CheckpointSchedule,
    EarlyStopping,
    JsonlLogger,
    ProgressBar,
    resolve_early_stopping_metric,
)
from .checkpoint import (
    CHECKPOINT_FORMAT,
    data_fingerprint,
    get_rng_states,
    load_checkpoint,
    restore_state,
    save_checkpoint,
    set_rng_states,
)
from .driver import train_net
from .fewshot import contrastive_pretrain, use_few_shot
from .loop import TrainingLoop, evaluate_loss
from .losses import Distillation, DistillationLoss, MultiLabelLoss, SoftTargets, is_multi_hot
from .optim import (
    DEFAULT_LEARNING_RATE,
    WeightAverage,
    build_optimizer,
    build_scheduler,
    compute_class_weights,
    default_learning_rate,
    layer_depths,
    with_backbone_learning_rate,
)
from .runtime import bf16_is_native, is_main_process, make_accelerator, set_attention
from .sampler import EpochRows, LengthGroupedBatches, ShuffledBatches
from .state import StepInfo, TrainControl, TrainResult, TrainState

__all__ = [
    "CHECKPOINT_FORMAT",
    "DEFAULT_LEARNING_RATE",
    "Callback",
    "CheckpointSchedule",
    "Distillation",
    "DistillationLoss",
    "EarlyStopping",
    "EpochRows",
    "JsonlLogger",
    "LengthGroupedBatches",
    "MultiLabelLoss",
    "ProgressBar",
    "ShuffledBatches",
    "SoftTargets",
    "StepInfo",
    "TrainControl",
    "TrainResult",
    "TrainState",
    "TrainingLoop",
    "WeightAverage",
    "add_lora",
    "bf16_is_native",
    "build_optimizer",
    "build_scheduler",
    "compute_class_weights",
    "contrastive_pretrain",
    "default_learning_rate",
    "data_fingerprint",
    "default_lora_targets",
    "evaluate_loss",
    "freeze_lower_layers",
    "is_multi_hot",
    "get_rng_states",
    "is_main_process",
    "layer_depths",
    "load_checkpoint",
    "make_accelerator",
    "merge_lora",
    "prepare_backbone",
    "resolve_early_stopping_metric",
    "restore_state",
    "save_checkpoint",
    "set_attention",
    "set_rng_states",
    "train_net",
    "transformer_layers",
    "use_few_shot",
    "with_backbone_learning_rate",
]
