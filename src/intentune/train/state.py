"""What the fine-tuning loop shares with its callbacks and callers: the running state, the control callbacks may
set, the step report and the outcome of a run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

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
    best_step: int = 0  # the step of the best evaluation, whose weights are kept
    history: list[dict[str, float]] = field(default_factory=list)
    resumed_from: int | None = None  # the checkpoint's step when resumed
    elapsed_before: float = 0.0  # training seconds before the resumed checkpoint
    started_at: float = 0.0


@dataclass
class TrainControl:
    """What callbacks may ask of the loop; it clears ``should_save`` once it has acted on it.

    ``should_save`` set at ``on_step_end`` asks for a checkpoint of this step (written after the step's evaluation,
    when the run has a checkpoint folder); set at ``on_evaluate`` it marks the weights just evaluated as the best so
    far, kept and restored at the end.
    """

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
