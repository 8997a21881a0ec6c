"""Stratified k-fold cross-validation: out-of-fold probabilities for every row, from k fine-tunes (learning curves,
the other estimate that needs several fine-tunes, are :mod:`intentune.learning_curves`).

It scores plain classification: the most probable intent, without out-of-scope rejection.
"""

from __future__ import annotations

import csv
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .config import Config
from .data import Examples, check_trainable, split_validation
from .errors import ConfigError, DataError
from .evaluate import EvalReport, evaluate_predictions
from .labels import wants_multi_label


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
    from .train.runtime import free_memory

    fit, validation = split_validation(train, config.data)
    clf = IntentClassifier(config).fit(
        fit.texts, fit.labels, validation=(validation.texts, validation.labels), callbacks=callbacks
    )
    # Every intent keeps training rows in every fold (assign_folds), so the model knows all of ``classes``.
    out = clf.predict_proba(held_out.texts)[:, [clf.classes_.index(c) for c in classes]]
    del clf
    free_memory()
    return out


def _lines(examples: Examples, label: str) -> str:
    return ", ".join(str(line) for line, lab in zip(examples.lines, examples.labels) if lab == label)
