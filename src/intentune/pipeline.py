"""Jobs that fine-tune or evaluate models into an output folder, each one importable function that the CLI (and
Python users) call: train a run folder, evaluate a model on a file, cross-validate a file, draw a learning curve.

The data-file commands are in :mod:`intentune.datafiles`, augmentation in :mod:`intentune.augment`, prediction of
texts and files in :mod:`intentune.batch`.
"""

from __future__ import annotations

import logging
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__
from .config import Config
from .config_files import save_config
from .data import Examples, load_examples, load_for_config, split_validation
from .errors import ConfigError, DataError
from .evaluate import EvalReport, evaluate_classifier
from .labels import intent_sets, wants_multi_label
from .model import IntentClassifier
from .train.callbacks import Callback, JsonlLogger

logger = logging.getLogger(__name__)

if TYPE_CHECKING:
    from .crossval import CrossValResult
    from .distill import Teacher
    from .evaluate.compare import Comparison
    from .extend import PreviousModel
    from .learning_curves import LearningCurve


@dataclass
class RunResult:
    """What :func:`train_run` produced."""

    classifier: IntentClassifier
    report: EvalReport
    eval_split: str  # "test", or "validation" when no test file was given
    output_dir: Path
    model_dir: Path
    comparison: Comparison | None = None  # with init_from and a test file: the old model against the new one
    distillation: dict[str, Any] | None = None  # with a teacher: teacher and student side by side (distill.json)


def train_run(
    config: Config,
    output_dir: str | Path,
    *,
    callbacks: Sequence[Callback] = (),
    resume: bool = False,
    init_from: PreviousModel | str | Path | None = None,
    teacher: Teacher | None = None,
    unlabeled: Sequence[str] = (),
) -> RunResult | None:
    """Train, save and evaluate: the main job.

    Reads ``config.data.train_file`` (and the validation and test files if set; otherwise a stratified
    validation split is taken from the training data), fine-tunes, writes the model folder atomically and
    evaluates on the test file (or, without one, on the validation data).

    The run folder gets ``model/``, ``config.toml`` (fully resolved), ``manifest.json`` (seed, versions, data
    hashes, split membership, device), ``train_log.jsonl``, ``splits/`` (``train.csv``, the rows trained on, and
    ``validation.csv``, the rows validated on),
    ``checkpoint/`` while training runs, and the report files of :meth:`EvalReport.save` (``metrics.json``,
    ``report.md``, ``report.html``, ``errors.jsonl`` and the pictures).

    Under ``accelerate launch`` or ``torchrun`` every process trains and only the main one writes files and
    evaluates; the others return None.

    Args:
        resume: continue an interrupted run from ``output_dir/checkpoint`` (same data and config); a run started
            with ``init_from`` resumes from the model its manifest records when ``init_from`` is not given.
        init_from: a trained model to start from, a run or model folder or
            :func:`intentune.extend.load_previous`'s result: a sample of its training rows joins the training data
            (``train.replay_per_intent``), the new model starts from it, and with a test file
            ``compare_with_previous.json`` and ``.md`` compare the two (see :mod:`intentune.evaluate.previous`).
        teacher: distil this model (:func:`intentune.distill.load_teacher`): train on its probabilities as well as
            the true intents, and write ``distill.json`` and ``.md`` (teacher and student side by side).
        unlabeled: texts without intents that the model learns from the teacher's probabilities alone.

    Raises:
        ConfigError: if no training file is set, or ``resume`` finds no checkpoint for this data and config, or the
            config contradicts the ``init_from`` model's backbone, pooling, lengths or preprocessing.
        DataError: for unreadable or unfit data.
    """
    from .distill import compare_with_teacher
    from .evaluate.previous import compare_with_previous
    from .extend import load_previous, resume_previous
    from .manifest import build_manifest, record_resume, write_manifest
    from .modelcard import run_card_options, write_model_card
    from .replay import save_run_rows
    from .train.checkpoint import require_checkpoint
    from .train.runtime import is_main_process

    dcfg = config.data
    out = Path(output_dir)
    main = is_main_process()
    checkpoint_dir = out / "checkpoint" if config.train.checkpoint_every_steps != 0 else None
    if resume and checkpoint_dir is None:
        raise ConfigError("--resume needs checkpoints, but train.checkpoint_every_steps = 0 turns them off")
    if resume:
        require_checkpoint(checkpoint_dir)
    if isinstance(init_from, str | Path):
        init_from = load_previous(init_from)
    if resume:
        init_from = resume_previous(out, init_from)
    if init_from is not None:  # before any data is read: a contradicting config is the one error to report
        init_from.check_config(config)
    train, validation, test, split_off = read_run_data(config, init_from=init_from)
    if teacher is not None and init_from is not None:
        raise ConfigError("distillation trains a new model; it does not combine with --init-from")
    fit_rows, soft_targets = teacher.targets(train, unlabeled, config.train) if teacher is not None else (train, None)
    files = {"train": dcfg.train_file, "validation": dcfg.validation_file, "test": dcfg.test_file}
    splits = {"train": (train.texts, train.labels), "validation": (validation.texts, validation.labels)}
    if test is not None:
        splits["test"] = (test.texts, test.labels)

    def write_run_folder() -> None:
        """The run folder's files that describe the run, written once training can start. A resumed run's folder
        has them from its start, so a resume that fails (a checkpoint of other data) leaves them as they were."""
        if not main or resume:
            return
        out.mkdir(parents=True, exist_ok=True)
        save_run_rows(train, out, "train")
        save_run_rows(validation, out, "validation")
        record = init_from.record() if init_from is not None else None
        write_manifest(out / "manifest.json", build_manifest(config, files, splits, init_from=record))
        save_config(config, out / "config.toml")

    started = time.perf_counter()
    classifier = IntentClassifier(config).fit(
        fit_rows.texts,
        fit_rows.labels,
        validation=(validation.texts, validation.labels),
        callbacks=[JsonlLogger(out / "train_log.jsonl"), *callbacks],
        checkpoint_dir=checkpoint_dir,
        resume=resume,
        on_ready=write_run_folder,
        init_from=init_from,
        soft_targets=soft_targets,
    )
    if not main:
        return None
    if resume:
        record_resume(out / "manifest.json", classifier.train_summary_.get("resumed_from_step"), config)
        save_config(config, out / "config.toml")
    model_dir = classifier.save(out / "model")
    eval_split, eval_data = ("test", test) if test is not None else ("validation", validation)
    report = evaluate_classifier(classifier, eval_data.texts, eval_data.labels)
    extra = {
        "evaluated_on": eval_split,
        "eval_file": eval_data.source,
        "data_sizes": {"train": len(train), "validation": len(validation), "test": len(test) if test else 0},
        "training": classifier.train_summary_,
        "wall_seconds": round(time.perf_counter() - started, 2),
        "environment": environment(),
    }
    report.save(out, extra=extra)
    write_model_card(model_dir, classifier.metadata(), **run_card_options(model_dir))
    comparison = None
    if init_from is not None and test is not None:
        comparison = compare_with_previous(init_from, classifier, test, report, out)
    distillation = compare_with_teacher(teacher, classifier, eval_data, out) if teacher is not None else None
    return RunResult(classifier, report, eval_split, out, model_dir, comparison, distillation)


def read_run_data(
    config: Config, *, init_from: PreviousModel | None = None
) -> tuple[Examples, Examples, Examples | None, bool]:
    """Read and check every data file of a run before anything is trained or written.

    With ``init_from``, a sample of the old model's training rows joins the training rows before the validation
    split (:meth:`intentune.extend.PreviousModel.with_replay`); a split-off validation set then takes its old
    intents' rows from the old run's validation rows instead, and a validation file gets them for the old intents it
    has no rows of (:meth:`~intentune.extend.PreviousModel.with_held_out`).

    Returns:
        ``(train, validation, test or None, split_off)``; ``split_off`` says the validation rows were split off
        the training data (``data.validation_fraction``) because no validation file is set.

    Raises:
        ConfigError: if no training file is set.
        DataError: for unreadable or unfit data. Test intents the training data lacks are logged as a warning:
            the report counts their rows as errors and lists them (``IntentClassifier.fit`` warns of validation
            rows with such intents, which take no part in early stopping).
    """
    from .data import check_trainable
    from .preprocess import clean_text

    dcfg = config.data
    if not dcfg.train_file:
        raise ConfigError("no training data: pass a data file or set data.train_file")
    train = load_for_config(dcfg.train_file, config)
    validation = load_for_config(dcfg.validation_file, config) if dcfg.validation_file else None
    test = load_for_config(dcfg.test_file, config) if dcfg.test_file else None
    for examples in (train, validation, test):
        if examples is None:
            continue
        for text, line in zip(examples.texts, examples.lines):
            if not clean_text(text, lowercase=dcfg.lowercase, remove_special_chars=dcfg.remove_special_chars).strip():
                raise DataError(
                    f"{examples.source}:{line}: {text!r} is empty after preprocessing (data.remove_special_chars); "
                    "reword or remove it"
                )
    if init_from is not None:
        train = init_from.with_replay(train, config, [*(validation.texts if validation else []),
                                                      *(test.texts if test else [])])  # fmt: skip
    check_trainable(train)
    split_off = validation is None
    if validation is None:
        train, validation = split_validation(train, dcfg)
    if init_from is not None:
        train, validation = init_from.with_held_out(
            train, validation, config, test.texts if test else [], split_off=split_off
        )
    if test is not None:
        separator, oos = dcfg.multi_label_separator, config.oos.label
        if wants_multi_label(config.model.multi_label, train.labels, separator):  # intents, not their combinations
            known = {i for found in intent_sets(train.labels, separator, oos) for i in found}
            unknown = sorted({i for found in intent_sets(test.labels, separator, oos) for i in found} - known)
            rows = sum(bool(set(found) & set(unknown)) for found in intent_sets(test.labels, separator, oos))
        else:
            known = set(train.labels).union(init_from.classes if init_from is not None else ())
            unknown = sorted(set(test.labels) - known - {oos})
            rows = sum(label in unknown for label in test.labels)
        if unknown:
            logger.warning(
                "%s: %d intents are not in the training data (%s; %d rows); the test report counts them as errors",
                test.source, len(unknown), ", ".join(unknown), rows,
            )  # fmt: skip
    return train, validation, test, split_off


def evaluate_model(
    model_dir: str | Path,
    data_file: str | Path,
    *,
    output_dir: str | Path | None = None,
    text_field: str | None = None,
    label_field: str | None = None,
) -> EvalReport:
    """Evaluate a saved model on a labelled file; with ``output_dir``, write the report files there.

    The text and label field names default to the ones the model was trained with.
    """
    classifier = IntentClassifier.load(model_dir)
    dcfg = classifier.config.data
    data = load_examples(
        data_file, text_field=text_field or dcfg.text_field, label_field=label_field or dcfg.label_field
    )
    report = evaluate_classifier(classifier, data.texts, data.labels)
    if output_dir is not None:
        report.save(output_dir, extra={"model": str(model_dir), "eval_file": str(data_file)})
    return report


def cross_validate_file(
    data_file: str | Path,
    output_dir: str | Path,
    config: Config,
    *,
    folds: int = 5,
    callbacks: Sequence[Callback] = (),
    on_fold: Any = None,
) -> CrossValResult:
    """Stratified k-fold cross-validation of one labelled file (see :func:`intentune.crossval.cross_validate`).

    Writes the report files of all out-of-fold predictions to ``output_dir`` (``metrics.json`` with the per-fold
    accuracies, their mean and standard deviation; ``report.md``, ``errors.jsonl``, ``confusion_matrix.png``),
    ``oof_predictions.csv`` and ``config.toml``. Folds are seeded with ``data.split_seed``.

    Returns:
        The :class:`intentune.crossval.CrossValResult`.
    """
    from .crossval import cross_validate

    examples = load_for_config(str(data_file), config)
    seed = config.data.split_seed
    result = cross_validate(examples, config, folds=folds, seed=seed, callbacks=callbacks, on_fold=on_fold)
    result.save(output_dir, extra={"environment": environment()})
    save_config(config, Path(output_dir) / "config.toml")
    return result


def learning_curve_file(
    data_file: str | Path,
    eval_file: str | Path,
    output_dir: str | Path,
    config: Config,
    *,
    fractions: Sequence[float] = (0.1, 0.25, 0.5, 1.0),
    callbacks: Sequence[Callback] = (),
    on_point: Any = None,
) -> LearningCurve:
    """Fine-tune on growing stratified shares of a training file and score each on ``eval_file``
    (see :func:`intentune.learning_curves.learning_curve`); early stopping uses ``data.validation_file`` if set.

    Writes ``learning_curve.json``, ``learning_curve.png`` and ``config.toml`` to ``output_dir``.

    Returns:
        The :class:`intentune.learning_curves.LearningCurve`.
    """
    from .learning_curves import learning_curve

    train, evaluation = load_for_config(str(data_file), config), load_for_config(str(eval_file), config)
    validation = load_for_config(config.data.validation_file, config) if config.data.validation_file else None
    curve = learning_curve(
        train, evaluation, config, fractions=fractions, validation=validation, seed=config.data.split_seed,
        callbacks=callbacks, on_point=on_point,
    )  # fmt: skip
    curve.save(output_dir)
    save_config(config, Path(output_dir) / "config.toml")
    return curve


def environment() -> dict[str, str]:
    """Versions and machine, recorded with every run."""
    import torch
    import transformers

    return {
        "intentune": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none",
    }
