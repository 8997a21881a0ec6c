"""Learning curves: accuracy and macro-F1 on fixed held-out rows as the training data grows, one fine-tune per
share of the training data (nested stratified subsets).

Like cross-validation (:mod:`intentune.crossval`) it scores plain classification: the most probable intent, without
out-of-scope rejection.
"""

from __future__ import annotations

import json
import random
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ._io import write_file_atomic
from .config import Config
from .data import Examples, check_trainable, split_validation
from .errors import ConfigError, DataError
from .evaluate import evaluate_predictions

DEFAULT_FRACTIONS = (0.1, 0.25, 0.5, 1.0)


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
        write_file_atomic(paths["json"], json.dumps(self.to_dict(), indent=2))
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
    from .train.runtime import free_memory

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
    free_memory()
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
