"""Callbacks: the hooks through which the loop's behaviour is changed from outside it, with Hugging Face's event
names (``on_train_begin``, ``on_step_end``, ``on_evaluate``, ``on_train_end``).

A callback changes only the :class:`~intentune.train.state.TrainControl` it is handed; the loop acts on it. The
built-in ones decide when to keep the best weights and when to stop (:class:`EarlyStopping`) and when to write a
checkpoint (:class:`CheckpointSchedule`); the others log evaluations and show progress.
"""

from __future__ import annotations

import json
import statistics
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .state import TrainControl, TrainState


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


def resolve_early_stopping_metric(metric: str, validation_labels: Sequence[Any] | None) -> str:
    """``train.early_stopping_metric``, with ``auto`` resolved: ``val_accuracy`` when the validation data has at
    least ``AUTO_ACCURACY_MIN_PER_INTENT`` examples per intent (median), else ``val_loss``.

    With one or two validation examples per intent, accuracy moves in coarse steps and picks noisy maxima, so loss
    decides. With enough of them accuracy is what the user wants, and loss can mislead: fine-tuning keeps making
    right answers more confident and a few wrong ones more so, and loss can rise while accuracy still climbs.
    Confidence is calibrated afterwards anyway (temperature scaling on the validation data).
    """
    if metric != "auto":
        return metric
    labels = list(validation_labels or [])
    if labels and isinstance(labels[0], (list, tuple)):  # multi-hot rows: an intent's examples are rows that have it
        counts = Counter(i for row in labels for i, value in enumerate(row) if value)
    else:
        counts = Counter(labels)
    if counts and statistics.median(counts.values()) >= AUTO_ACCURACY_MIN_PER_INTENT:
        return "val_accuracy"
    return "val_loss"


Score = tuple[float, float]


class EarlyStopping(Callback):
    """Marks improved evaluations for saving and stops after ``patience`` fine-tuning evaluations without a better
    one (an evaluation at step 0, before fine-tuning, can be the best but does not count towards patience).

    The score is lower validation loss (``metric="val_loss"``), or higher validation accuracy with ties broken by
    lower loss (``metric="val_accuracy"``); :func:`resolve_early_stopping_metric` chooses for ``auto``.

    The callback keeps its own counters (the best score, the best score after step 0, the evaluations since that
    one); :meth:`state_dict` and :meth:`load_state_dict` carry them through a checkpoint. Besides ``control``, it
    records the step of the best evaluation in ``state.best_step``, which the run's summary reports.
    """

    main_process_only = False  # every process must stop at the same step

    def __init__(self, patience: int, metric: str = "val_loss") -> None:
        self.patience = patience
        self.metric = metric
        self.best_score: Score | None = None
        self.tuning_best: Score | None = None  # the best score of the evaluations after step 0
        self.bad_evaluations = 0  # fine-tuning evaluations since the best of them (the patience count)

    def on_evaluate(self, state: TrainState, control: TrainControl, metrics: dict[str, float]) -> None:
        loss = -metrics["val_loss"]
        score = (loss, 0.0) if self.metric == "val_loss" else (metrics["val_accuracy"], loss)
        if self.best_score is None or score > self.best_score:
            self.best_score, state.best_step = score, state.step
            control.should_save = True
        if state.step == 0:
            # A head evaluated before fine-tuning (few-shot mode's prototype head) may stay the best weights, but
            # it does not start the patience count: the first fine-tuning epoch often falls below it before later
            # ones pass it, and counting that dip would stop training before it catches up.
            return
        if self.tuning_best is None or score > self.tuning_best:
            self.tuning_best, self.bad_evaluations = score, 0
        else:
            self.bad_evaluations += 1
            if self.patience and self.bad_evaluations >= self.patience:
                control.should_stop = True

    def state_dict(self) -> dict[str, Any]:
        """The counters, as JSON values (the keys a checkpoint's ``state.json`` has always used)."""
        return {
            "best_score": list(self.best_score) if self.best_score is not None else None,
            "bad_evaluations": self.bad_evaluations,
            "tuning_best": list(self.tuning_best) if self.tuning_best is not None else None,
        }

    def load_state_dict(self, saved: Mapping[str, Any]) -> None:
        """Put back what :meth:`state_dict` returned (a checkpoint's ``state.json`` may be passed whole)."""
        best = saved["best_score"]
        tuning = saved.get("tuning_best", best)  # checkpoints from before it: the same as the best
        self.best_score = tuple(best) if best is not None else None
        self.tuning_best = tuple(tuning) if tuning is not None else None
        self.bad_evaluations = saved["bad_evaluations"]


class CheckpointSchedule(Callback):
    """Asks for a checkpoint (``control.should_save`` at ``on_step_end``) every ``every_steps`` optimizer steps, or,
    with ``every_steps`` None, at every evaluation step (every epoch, or every ``train.eval_every_steps``; with or
    without validation data); 0 asks for none. Never after the last step, whose result is the trained model.

    :func:`intentune.train.driver.train_net` installs it when it has a checkpoint folder, and writes the checkpoints.
    """

    main_process_only = False  # every process waits while the main one writes

    def __init__(self, every_steps: int | None, eval_every: int) -> None:
        self.every = eval_every if every_steps is None else every_steps

    def on_step_end(self, state: TrainState, control: TrainControl) -> None:
        if self.every > 0 and state.step % self.every == 0 and state.step < state.max_steps:
            control.should_save = True


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


__all__ = [
    "Callback",
    "CheckpointSchedule",
    "EarlyStopping",
    "JsonlLogger",
    "ProgressBar",
    "resolve_early_stopping_metric",
]
