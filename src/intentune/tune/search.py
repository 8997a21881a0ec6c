"""The study: one fine-tune per trial, pruned on intermediate validation accuracy, freed before the next."""

from __future__ import annotations

import gc
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import Config
from ..data import Examples, load_examples, split_validation
from ..errors import ConfigError, IntentuneError
from ..model import IntentClassifier
from ..replay import save_run_rows
from ..train.callbacks import Callback
from ..train.state import TrainControl, TrainState
from .report import rank_key, trial_row, write_outputs
from .space import apply_params, baseline_params, check_space, default_space
from .storage import default_study_name, open_storage

if TYPE_CHECKING:
    import optuna

    from ..pipeline import RunResult

logger = logging.getLogger(__name__)

REPORT_STEPS_PER_EPOCH = 1000  # trials report at thousandths of an epoch, so different batch sizes line up
# What a trial may raise and still leave the study going (recorded as a failed trial with its message): out of
# memory and other torch runtime errors, numeric errors, and config combinations that do not validate.
TRIAL_ERRORS = (RuntimeError, MemoryError, ValueError, ArithmeticError, IntentuneError)
STOP_AFTER_FAILURES = 3  # when the first trials all fail, the study stops: the error is not the hyperparameters'


class _TrialFailed(Exception):
    """Raised (without the original traceback, which would keep the trial's tensors alive) for a failed trial."""


@dataclass
class TuneResult:
    """What :func:`tune` produced.

    Attributes:
        study: the ``optuna.Study`` (in memory, or in the shared storage; ``study.study_name`` is its name).
        rows: one dict per trial of the whole study, in trial order (the rows of ``trials.csv``); with a shared
            storage, other workers' trials too, those still running included.
        best_trial: the number of the best trial: highest validation accuracy, ties broken by lower loss.
        best_params: its searched values, by config key.
        best_config: the full config with those values (``best_config.toml``).
        best_run: with ``train_best``, the run trained from ``best_config`` into ``output_dir / "best"``.
    """

    study: Any
    rows: list[dict[str, Any]]
    best_trial: int
    best_params: dict[str, Any]
    best_config: Config
    output_dir: Path
    best_run: RunResult | None = None

    @property
    def best_row(self) -> dict[str, Any]:
        return self.rows[self.best_trial]


class _PruningCallback(Callback):
    """Reports the validation accuracy of every evaluation to the trial and stops training when Optuna prunes it."""

    def __init__(self, trial: optuna.Trial) -> None:
        self.trial = trial
        self.pruned_at: float | None = None
        self.last_step = -1

    def on_evaluate(self, state: TrainState, control: TrainControl, metrics: dict[str, float]) -> None:
        step = round(state.epoch * REPORT_STEPS_PER_EPOCH)
        if step <= self.last_step:
            return
        self.last_step = step
        self.trial.report(metrics["val_accuracy"], step)
        # A trial that ends here anyway (last step, or early stopping) is complete, not pruned.
        if not control.should_stop and state.step < state.max_steps and self.trial.should_prune():
            self.pruned_at = round(state.epoch, 3)
            control.should_stop = True


def _fit_trial(cfg: Config, train: Examples, validation: Examples, callbacks: Sequence[Callback]) -> dict[str, Any]:
    """Fine-tune one config; only plain numbers leave this function, so the network dies with its frame."""
    classifier = IntentClassifier(cfg)
    try:
        classifier.fit(train.texts, train.labels, validation=(validation.texts, validation.labels), callbacks=callbacks)
        summary = classifier.train_summary_
    finally:
        del classifier
    best = summary.get("best_validation") or {}
    return {
        "val_accuracy": best.get("val_accuracy", math.nan),
        "val_loss": best.get("val_loss", math.nan),
        "best_step": summary["best_step"],
        "steps": summary["steps"],
    }


def _objective(
    trial: optuna.Trial,
    base: Config,
    space: dict[str, Any],
    data: tuple[Examples, Examples],
    callbacks: Sequence[Callback],
) -> float:
    import optuna

    params = {key: _suggest(trial, key, dist) for key, dist in space.items()}
    pruning = _PruningCallback(trial)
    error = None
    try:
        cfg = apply_params(base, params, source=f"trial {trial.number}")
        metrics = _fit_trial(cfg, *data, [*callbacks, pruning])
    except TRIAL_ERRORS as exc:
        logger.debug("trial %d failed", trial.number, exc_info=True)
        error = f"{type(exc).__name__}: {exc}"
    if error is not None:  # raised here, outside the except block, so no traceback keeps the trial's frames
        trial.set_user_attr("error", error)
        raise _TrialFailed(error)
    for name, value in metrics.items():
        trial.set_user_attr(name, value)
    if pruning.pruned_at is not None:
        trial.set_user_attr("pruned_at_epoch", pruning.pruned_at)
        raise optuna.TrialPruned(f"pruned at epoch {pruning.pruned_at}")
    return metrics["val_accuracy"]


def _suggest(trial: optuna.Trial, key: str, dist: Any) -> Any:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if isinstance(dist, CategoricalDistribution):
        return trial.suggest_categorical(key, list(dist.choices))
    if isinstance(dist, FloatDistribution):
        return trial.suggest_float(key, dist.low, dist.high, log=dist.log, step=dist.step)
    if isinstance(dist, IntDistribution):
        return trial.suggest_int(key, dist.low, dist.high, log=dist.log, step=dist.step)
    return dist  # a fixed value


def _free_memory() -> None:
    """Collect the last trial's network (and any reference cycles through its traceback) and return cached GPU
    memory, so the next trial starts where the first one did."""
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def tune(
    config: Config,
    output_dir: str | Path,
    *,
    trials: int,
    timeout_s: float | None = None,
    space: Mapping[str, Any] | None = None,
    callbacks: Sequence[Callback] = (),
    sampler: Any = None,
    pruner: Any = None,
    train_best: bool = False,
    enqueue: Sequence[Mapping[str, Any]] = (),
    on_trial: Callable[[dict[str, Any]], None] | None = None,
    storage: str | None = None,
    study_name: str | None = None,
) -> TuneResult:
    """Search hyperparameters with Optuna, maximising validation accuracy (ties: lower validation loss).

    Data come as in :func:`intentune.pipeline.train_run`: ``data.train_file``, and ``data.validation_file`` or a
    stratified split of the training rows (written to ``splits/validation.csv``). Every trial fine-tunes a copy of
    ``config`` with its values and the same seed, and reports the validation accuracy of each evaluation (once per
    epoch, or every ``train.eval_every_steps``). A trial is pruned when its best accuracy so far falls below the
    median of the completed trials at the same point of training (from the end of its first epoch on, once 2 to 5
    trials, by study size, have completed). The first trial runs the config's own values where they lie in the
    space, as a baseline. A trial that raises one of :data:`TRIAL_ERRORS` (out of memory, say) is recorded as
    failed and the study goes on. Each trial's network is freed before the next starts.

    Writes ``trials.csv`` (one row per trial), ``tune_report.md`` (trials ranked, the best values), ``study.json``
    and ``best_config.toml`` (the full config with the best values) to ``output_dir``.

    With ``storage``, several processes (on one machine or many) fill one study: each runs ``trials`` trials of
    its own into the study named ``study_name`` (created by the first, joined by the others), and writes its files
    from the whole study's trials when it is done, so the last worker to finish writes the complete picture. The
    baseline and ``enqueue`` are queued only by the worker that finds the study empty, and each worker's default
    sampler draws its own seed and treats the other workers' running trials as poor ones (TPE's constant liar),
    so workers do not repeat each other's trials.

    Args:
        trials: how many trials this call runs (with ``storage``: this worker's share).
        timeout_s: start no new trial after this many seconds (a running trial finishes).
        space: config key -> choices, range or fixed value (see the module docstring); default :func:`default_space`.
        callbacks: training callbacks passed to every trial's fit (progress bars).
        sampler: an Optuna sampler; default TPE seeded with ``train.seed``.
        pruner: an Optuna pruner; default the median pruner described above.
        train_best: afterwards, train ``best_config`` with :func:`intentune.pipeline.train_run` into ``best/``.
        enqueue: values to try first, in order, after the baseline (settings known to work, say); keys that are
            not searched are an error, searched keys left out are sampled.
        on_trial: called with each trial's row when it ends.
        storage: where the study lives (:func:`intentune.tune.storage.open_storage`: ``sqlite:///PATH.db``, a
            database URL, ``journal:PATH``); default in memory, for this call alone.
        study_name: the study to create or join; default with ``storage``:
            :func:`intentune.tune.storage.default_study_name`, the same for every worker started alike.

    Raises:
        ConfigError: if no training file is set, for a bad search space, or a storage that cannot be opened.
        IntentuneError: if no trial completed.
    """
    import optuna

    if not config.data.train_file:
        raise ConfigError("no training data: pass a data file or set data.train_file")
    if trials < 1:
        raise ConfigError(f"trials must be at least 1, found {trials}")
    space = dict(default_space(config) if space is None else space)
    checked = check_space(config, space)
    out = Path(output_dir)
    backend = open_storage(storage) if storage is not None else None
    data = _load_data(config, out)
    if backend is not None and study_name is None:
        study_name = default_study_name(config, space, data)
    sampler = sampler or optuna.samplers.TPESampler(  # shared: a seed per worker, or all would propose alike
        seed=None if backend is not None else config.train.seed,
        n_startup_trials=min(10, max(2, trials // 3)),
        constant_liar=backend is not None,  # shared: other workers' running trials count as bad, so none repeats
    )
    pruner = pruner or optuna.pruners.MedianPruner(
        n_startup_trials=min(5, max(2, trials // 4)), n_warmup_steps=REPORT_STEPS_PER_EPOCH
    )
    study = optuna.create_study(
        direction="maximize", sampler=sampler, pruner=pruner, storage=backend, study_name=study_name,
        load_if_exists=True,
    )  # fmt: skip
    searched = [key for key, dist in checked.items() if isinstance(dist, optuna.distributions.BaseDistribution)]
    queue = [baseline_params(config, checked), *enqueue]
    for params in queue:
        unknown = sorted(set(params) - set(searched))
        if unknown:
            raise ConfigError(f"enqueued values for keys that are not searched: {', '.join(unknown)}")
    if not study.trials:  # a study joined later already has them; skip_if_exists covers two workers starting at once
        for params in filter(None, queue):
            study.enqueue_trial(dict(params), skip_if_exists=backend is not None)

    def after_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        _free_memory()
        if on_trial is not None:
            on_trial(trial_row(trial, searched))
        states = [t.state for t in study.trials]
        if len(states) >= STOP_AFTER_FAILURES and all(s == optuna.trial.TrialState.FAIL for s in states):
            study.stop()

    study.optimize(
        lambda trial: _objective(trial, config, checked, data, callbacks),
        n_trials=trials, timeout=timeout_s, catch=(_TrialFailed,), callbacks=[after_trial],
    )  # fmt: skip
    rows = [trial_row(t, searched) for t in study.trials]
    result = _result(study, rows, config, checked, out)
    write_outputs(result, space, searched, len(data[1]), storage)
    if train_best:
        from ..pipeline import train_run

        result.best_run = train_run(result.best_config, out / "best", callbacks=callbacks)
    return result


def _load_data(config: Config, out: Path) -> tuple[Examples, Examples]:
    dcfg = config.data

    def load(path: str) -> Examples:
        return load_examples(path, text_field=dcfg.text_field, label_field=dcfg.label_field)

    train = load(dcfg.train_file)
    if dcfg.validation_file:
        return train, load(dcfg.validation_file)
    train, validation = split_validation(train, dcfg)
    save_run_rows(validation, out, "validation")
    return train, validation


def _result(study: Any, rows: list[dict[str, Any]], config: Config, checked: dict[str, Any], out: Path) -> TuneResult:
    complete = [r for r in rows if r["state"] == "COMPLETE" and not math.isnan(r["val_accuracy"])]
    if not complete:
        errors = [r["note"] for r in rows if r["state"] == "FAIL" and r["note"]]
        if not rows:
            raise IntentuneError("no trial ran: the timeout passed before the first one started")
        states = ", ".join(f"{r['number']}: {r['state'].lower()}" for r in rows)
        hint = f"; first error: {errors[0]}" if errors else ""
        raise IntentuneError(f"no trial completed (trials {states}){hint}")
    from optuna.distributions import BaseDistribution

    best = min(complete, key=rank_key)
    params = study.trials[best["number"]].params
    fixed = {key: value for key, value in checked.items() if not isinstance(value, BaseDistribution)}
    best_config = apply_params(config, {**fixed, **params}, source=f"trial {best['number']}")
    return TuneResult(study, rows, best["number"], params, best_config, out)
