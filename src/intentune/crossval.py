"""Estimates that need several fine-tunes: stratified k-fold cross-validation (out-of-fold probabilities for every
row) and learning curves (accuracy as the training data grows).

Both score plain classification: the most probable intent, without out-of-scope rejection.
"""

from __future__ import annotations

import csv
import gc
import json
import math
import random
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .config import Config
from .data import Examples, check_trainable, split_validation
from .errors import ConfigError, DataError
from .evaluate import EvalReport, evaluate_predictions
from .labels import wants_multi_label

DEFAULT_FRACTIONS = (0.1, 0.25, 0.5, 1.0)


# ------------------------------------------------------------------ folds
def min_rows_for_folds(folds: int, *, train_rows: int = 1) -> int:
    """The fewest rows an intent needs so that every fold holds one out and keeps ``train_rows`` for training."""
    need = folds
    while need - math.ceil(need / folds) < train_rows:
        need += 1
    return need


def assign_folds(examples: Examples, folds: int, *, seed: int = 13, train_rows: int = 1) -> np.ndarray:
    """Stratified fold of each row (scikit-learn's ``StratifiedKFold``, shuffled).

    Args:
        examples: the rows.
        folds: how many folds (2 or more).
        seed: the shuffle seed.
        train_rows: rows of each intent that every fold's training part must keep.

    Returns:
        ``(n,)`` fold numbers, 1 to ``folds``.

    Raises:
        ConfigError: if ``folds`` is below 2.
        DataError: naming the intents with too few rows to appear in every fold.
    """
    from sklearn.model_selection import StratifiedKFold

    if folds < 2:
        raise ConfigError(f"cross-validation needs at least 2 folds, found {folds}")
    check_trainable(examples, min_per_intent=1)
    need = min_rows_for_folds(folds, train_rows=train_rows)
    short = {label: n for label, n in examples.counts().items() if n < need}
    if short:
        details = "; ".join(f"{label!r} has {n} (line {_lines(examples, label)})" for label, n in short.items())
        raise DataError(
            f"{examples.source}: intents with fewer than {need} examples cannot be spread over {folds} folds: "
            f"{details}; add examples, remove these intents, or use fewer folds"
        )
    fold_of = np.zeros(len(examples), dtype=int)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for k, (_, held_out) in enumerate(splitter.split(np.zeros(len(examples)), examples.labels), start=1):
        fold_of[held_out] = k
    return fold_of


# -------------------------------------------------------- cross-validation
@dataclass
class CrossValResult:
    """Out-of-fold predictions of a k-fold cross-validation.

    Attributes:
        examples: the rows, in their original order.
        classes: the intents, sorted; the columns of ``probabilities``.
        probabilities: ``(n, len(classes))`` probabilities of each row from the model that did not train on it.
        folds: ``(n,)`` the fold (1 to k) in which each row was held out.
        fold_accuracy: accuracy on each fold's held-out rows, in fold order.
        report: the evaluation of all out-of-fold predictions (its confusion matrix is the sum over the folds).
        seconds: wall time of the whole cross-validation.
    """

    examples: Examples
    classes: list[str]
    probabilities: np.ndarray
    folds: np.ndarray
    fold_accuracy: list[float]
    report: EvalReport
    seconds: float = 0.0

    @property
    def predicted(self) -> list[str]:
        """The most probable intent of each row."""
        return [self.classes[i] for i in self.probabilities.argmax(axis=1)]

    @property
    def mean_accuracy(self) -> float:
        return float(np.mean(self.fold_accuracy))

    @property
    def std_accuracy(self) -> float:
        """Standard deviation of the fold accuracies (population, as ``numpy.std``)."""
        return float(np.std(self.fold_accuracy))

    def summary(self) -> dict[str, Any]:
        """Per-fold accuracies, their mean and standard deviation, and sizes, as JSON-ready values."""
        return {
            "folds": len(self.fold_accuracy),
            "fold_accuracy": [round(a, 6) for a in self.fold_accuracy],
            "mean_accuracy": round(self.mean_accuracy, 6),
            "std_accuracy": round(self.std_accuracy, 6),
            "rows": len(self.examples),
            "intents": len(self.classes),
            "data_file": self.examples.source,
            "wall_seconds": round(self.seconds, 2),
        }

    def to_text(self) -> str:
        """Per-fold accuracy, mean ± std, then the out-of-fold report."""
        lines = [f"fold {k}: accuracy {a:.4f}" for k, a in enumerate(self.fold_accuracy, start=1)]
        lines.append(
            f"mean accuracy {self.mean_accuracy:.4f} ± {self.std_accuracy:.4f} over {len(self.fold_accuracy)} folds "
            f"({len(self.examples)} rows)"
        )
        return "\n".join([*lines, "", "Out-of-fold predictions of every row:", "", self.report.to_text()])

    def save(self, directory: str | Path, *, extra: dict[str, Any] | None = None) -> dict[str, Path]:
        """Write the report files (:meth:`EvalReport.save`, with the fold accuracies in ``metrics.json``) and
        ``oof_predictions.csv`` (line, text, intent, predicted, confidence, fold)."""
        directory = Path(directory)
        paths = self.report.save(directory, extra={"cross_validation": self.summary(), **(extra or {})})
        paths["oof_predictions"] = directory / "oof_predictions.csv"
        confidence = self.probabilities.max(axis=1)
        with paths["oof_predictions"].open("w", encoding="utf-8", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["line", "text", "intent", "predicted", "confidence", "fold"])
            for i, predicted in enumerate(self.predicted):
                ex = self.examples
                writer.writerow(
                    [ex.lines[i], ex.texts[i], ex.labels[i], predicted, f"{confidence[i]:.4f}", self.folds[i]]
                )
        return paths


def cross_validate(
    examples: Examples,
    config: Config,
    *,
    folds: int = 5,
    seed: int = 13,
    callbacks: Sequence[Any] = (),
    on_fold: Callable[[int, float], None] | None = None,
) -> CrossValResult:
    """Stratified k-fold cross-validation: k fine-tunes, each predicting the rows it did not train on.

    Each fold fine-tunes an ``IntentClassifier(config)`` on the other folds, early-stopping on a stratified
    ``data.validation_fraction`` of them (split as :func:`intentune.pipeline.train_run` does), and predicts the
    held-out fold. Each model is freed before the next is trained.

    Args:
        examples: the labelled rows.
        config: the config of every fine-tune.
        folds: how many folds.
        seed: the seed of the fold assignment (the validation splits use ``data.split_seed``).
        callbacks: training callbacks passed to every fine-tune (progress bars).
        on_fold: called after each fold with its number (1 to k) and accuracy.

    Returns:
        The out-of-fold probabilities, fold accuracies and the report of all out-of-fold predictions.

    Raises:
        ConfigError: if ``folds`` is below 2, or the data trains a multi-label model (``model.multi_label``).
        DataError: if an intent has too few rows for the folds (named, with lines).
    """
    if wants_multi_label(config.model.multi_label, examples.labels, config.data.multi_label_separator):
        raise ConfigError(
            "cross-validation scores single-label models, and this data trains a multi-label one (model.multi_label"
            f" = {config.model.multi_label!r}); set model.multi_label=false to count each combination of intents"
            " as an intent of its own"
        )
    started = time.perf_counter()
    fold_of = assign_folds(examples, folds, seed=seed, train_rows=2)  # 2: one to train on, one to validate
    classes = sorted(set(examples.labels))
    probabilities = np.zeros((len(examples), len(classes)), dtype=np.float32)
    accuracies = []
    for k in range(1, folds + 1):
        held_out = np.flatnonzero(fold_of == k)
        train = examples.subset(np.flatnonzero(fold_of != k).tolist())
        probabilities[held_out] = _fit_and_predict(
            train, examples.subset(held_out.tolist()), classes, config, callbacks
        )
        truth = np.array([classes.index(examples.labels[i]) for i in held_out])
        accuracies.append(float((probabilities[held_out].argmax(axis=1) == truth).mean()))
        if on_fold is not None:
            on_fold(k, accuracies[-1])
    predicted = [classes[i] for i in probabilities.argmax(axis=1)]
    confidences = probabilities.max(axis=1)
    report = evaluate_predictions(examples.labels, predicted, classes, texts=examples.texts, confidences=confidences)
    report.confidences = confidences
    report.correct = np.array(predicted, dtype=object) == np.array(examples.labels, dtype=object)
    return CrossValResult(examples, classes, probabilities, fold_of, accuracies, report, time.perf_counter() - started)


def _fit_and_predict(
    train: Examples, held_out: Examples, classes: list[str], config: Config, callbacks: Sequence[Any]
) -> np.ndarray:
    """Fine-tune on ``train`` (validation split off it), return ``(len(held_out), len(classes))`` probabilities."""
    from .model import IntentClassifier

    fit, validation = split_validation(train, config.data)
    clf = IntentClassifier(config).fit(
        fit.texts, fit.labels, validation=(validation.texts, validation.labels), callbacks=callbacks
    )
    # Every intent keeps training rows in every fold (assign_folds), so the model knows all of ``classes``.
    out = clf.predict_proba(held_out.texts)[:, [clf.classes_.index(c) for c in classes]]
    del clf
    _free_memory()
    return out


def _free_memory() -> None:
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


# ----------------------------------------------------------- learning curve
@dataclass
class CurvePoint:
    """One fine-tune of a learning curve."""

    fraction: float
    rows: int  # rows of the training subset, before a validation split is taken off it
    train_rows: int  # rows the model trained on
    validation_rows: int
    accuracy: float
    macro_f1: float
    seconds: float


@dataclass
class LearningCurve:
    """Accuracy and macro-F1 on fixed held-out data as the training data grows."""

    points: list[CurvePoint]
    eval_rows: int
    eval_source: str
    train_source: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "train_file": self.train_source,
            "eval_file": self.eval_source,
            "eval_rows": self.eval_rows,
            "points": [asdict(p) for p in self.points],
        }

    def to_text(self) -> str:
        """One line per point: fraction, training rows, accuracy and macro-F1."""
        head = f"{'fraction':>8}  {'rows':>6}  {'trained':>7}  {'accuracy':>8}  {'macro-F1':>8}  {'seconds':>7}"
        lines = [f"Learning curve, evaluated on {self.eval_source} ({self.eval_rows} rows):", "", head]
        for p in self.points:
            lines.append(
                f"{p.fraction:>8.3g}  {p.rows:>6d}  {p.train_rows:>7d}  {p.accuracy:>8.4f}  {p.macro_f1:>8.4f}  "
                f"{p.seconds:>7.1f}"
            )
        return "\n".join(lines)

    def save(self, directory: str | Path) -> dict[str, Path]:
        """Write ``learning_curve.json`` and ``learning_curve.png`` into ``directory`` (created if missing)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        paths = {"json": directory / "learning_curve.json", "plot": directory / "learning_curve.png"}
        paths["json"].write_text(json.dumps(self.to_dict(), indent=2), encoding="utf-8")
        plot_learning_curve(self, paths["plot"])
        return paths


def check_fractions(fractions: Sequence[float]) -> list[float]:
    """The fractions sorted and de-duplicated.

    Raises:
        ConfigError: if there are none or one is outside (0, 1].
    """
    bad = [f for f in fractions if not 0 < f <= 1]
    if not fractions or bad:
        raise ConfigError(f"training fractions must be above 0 and at most 1 (for example 0.1,0.25,0.5,1), found {bad}")
    return sorted(set(float(f) for f in fractions))


def stratified_subset(examples: Examples, fraction: float, *, seed: int = 13, min_per_intent: int = 1) -> Examples:
    """About ``fraction`` of each intent's rows, at least ``min_per_intent`` (or all it has).

    Subsets with the same seed are nested: a smaller fraction's rows are all in a larger fraction's subset.
    """
    by_label: dict[str, list[int]] = defaultdict(list)
    for i, label in enumerate(examples.labels):
        by_label[label].append(i)
    rng = random.Random(seed)
    chosen: list[int] = []
    for label in sorted(by_label):
        rows = by_label[label]
        rng.shuffle(rows)
        chosen += rows[: min(len(rows), max(min_per_intent, round(len(rows) * fraction)))]
    return examples.subset(sorted(chosen))


def learning_curve(
    train: Examples,
    evaluation: Examples,
    config: Config,
    *,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    validation: Examples | None = None,
    seed: int = 13,
    callbacks: Sequence[Any] = (),
    on_point: Callable[[CurvePoint], None] | None = None,
) -> LearningCurve:
    """Fine-tune on growing stratified subsets of the training data and score each model on the same data.

    Every intent stays in every subset (at least 2 rows, so a validation split can be taken). Each subset trains
    as ``intentune train`` would: early stopping on ``validation`` if given, otherwise on a stratified
    ``data.validation_fraction`` split off the subset. So the point at fraction 1 is the same job as
    ``intentune train TRAIN --test EVALUATION``.

    Args:
        train: the training rows to take subsets of.
        evaluation: held-out rows (validation or test data) that every model is scored on.
        config: the config of every fine-tune.
        fractions: shares of the training data, each in (0, 1].
        validation: fixed validation data for early stopping, or None to split it off each subset.
        seed: the subset seed (subsets are nested).
        callbacks: training callbacks passed to every fine-tune.
        on_point: called after each fine-tune with its point.

    Returns:
        One point per fraction, smallest first.

    Raises:
        ConfigError: if a fraction is outside (0, 1].
        DataError: if the evaluation data has intents the training data lacks.
    """
    fractions = check_fractions(fractions)
    unknown = sorted(set(evaluation.labels) - set(train.labels))
    if unknown:
        raise DataError(
            f"{evaluation.source}: intents not in the training data: {', '.join(unknown)}; "
            "remove those rows or add training examples for them"
        )
    check_trainable(train, min_per_intent=1 if validation is not None else 2)
    points = []
    for fraction in fractions:
        subset = stratified_subset(train, fraction, seed=seed, min_per_intent=1 if validation is not None else 2)
        points.append(_curve_point(fraction, subset, evaluation, validation, config, callbacks))
        if on_point is not None:
            on_point(points[-1])
    return LearningCurve(points, len(evaluation), evaluation.source, train.source)


def _curve_point(
    fraction: float,
    subset: Examples,
    evaluation: Examples,
    validation: Examples | None,
    config: Config,
    callbacks: Sequence[Any],
) -> CurvePoint:
    from .model import IntentClassifier

    started = time.perf_counter()
    fit = subset
    if validation is None:
        fit, validation = split_validation(subset, config.data)
    clf = IntentClassifier(config).fit(
        fit.texts, fit.labels, validation=(validation.texts, validation.labels), callbacks=callbacks
    )
    probs = clf.predict_proba(evaluation.texts)
    predicted = [clf.classes_[i] for i in probs.argmax(axis=1)]
    report = evaluate_predictions(evaluation.labels, predicted, clf.classes_).report
    del clf
    _free_memory()
    return CurvePoint(
        fraction=fraction,
        rows=len(subset),
        train_rows=len(fit),
        validation_rows=len(validation),
        accuracy=round(float(report["accuracy"]), 6),
        macro_f1=round(float(report["macro avg"]["f1-score"]), 6),
        seconds=round(time.perf_counter() - started, 2),
    )


def plot_learning_curve(curve: LearningCurve, path: str | Path) -> None:
    """A PNG of accuracy and macro-F1 against the number of training rows (log scale), each point labelled with
    its fraction."""
    from matplotlib.figure import Figure

    rows = [p.train_rows for p in curve.points]
    fig = Figure(figsize=(6.4, 4.2), dpi=100)
    ax = fig.add_subplot()
    ax.plot(rows, [p.accuracy for p in curve.points], marker="o", label="accuracy")
    ax.plot(rows, [p.macro_f1 for p in curve.points], marker="s", linestyle="--", label="macro-F1")
    for p in curve.points:
        ax.annotate(f"{p.fraction:g}", (p.train_rows, p.accuracy), textcoords="offset points", xytext=(0, 7),
                    ha="center", fontsize=8)  # fmt: skip
    if len(set(rows)) > 1:
        ax.set_xscale("log")
    ax.set_xticks(rows, labels=[str(r) for r in rows])
    ax.minorticks_off()
    ax.set_ylim(0.0, 1.05)
    ax.set_xlabel("training rows (labels: share of the training data)")
    ax.set_ylabel(f"score on {Path(curve.eval_source).name} ({curve.eval_rows} rows)")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right")
    ax.set_title("Learning curve")
    fig.tight_layout()
    fig.savefig(str(path))


def _lines(examples: Examples, label: str) -> str:
    return ", ".join(str(line) for line, lab in zip(examples.lines, examples.labels) if lab == label)
