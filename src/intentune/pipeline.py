"""Whole jobs, each one importable function that the CLI (and Python users) call:
train a run folder, evaluate a model on a file, split a data file, predict texts.
"""

from __future__ import annotations

import json
import logging
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__
from .config import Config, save_config
from .data import Examples, load_examples, split_examples, split_validation, write_examples
from .errors import ConfigError, DataError
from .evaluate import EvalReport, evaluate_classifier
from .labels import intent_sets, wants_multi_label
from .model import IntentClassifier
from .train.callbacks import Callback, JsonlLogger
from .validate import ValidationReport, validate_examples

logger = logging.getLogger(__name__)

if TYPE_CHECKING:
    from .crossval import CrossValResult, LearningCurve
    from .doctor import DoctorReport
    from .evaluate.bootstrap import Interval
    from .evaluate.compare import Comparison
    from .extend import PreviousModel


@dataclass
class RunResult:
    """What :func:`train_run` produced."""

    classifier: IntentClassifier
    report: EvalReport
    eval_split: str  # "test", or "validation" when no test file was given
    output_dir: Path
    model_dir: Path
    comparison: Comparison | None = None  # with init_from and a test file: the old model against the new one


def train_run(
    config: Config,
    output_dir: str | Path,
    *,
    callbacks: Sequence[Callback] = (),
    resume: bool = False,
    init_from: PreviousModel | str | Path | None = None,
) -> RunResult | None:
    """Train, save and evaluate: the main job.

    Reads ``config.data.train_file`` (and the validation and test files if set; otherwise a stratified
    validation split is taken from the training data), fine-tunes, writes the model folder atomically and
    evaluates on the test file (or, without one, on the validation data).

    The run folder gets ``model/``, ``config.toml`` (fully resolved), ``manifest.json`` (seed, versions, data
    hashes, split membership, device), ``train_log.jsonl``, ``splits/`` (``train.csv``, the rows trained on, and
    ``validation.csv`` when split off),
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
            ``compare_with_previous.json`` and ``.md`` compare the two (see :mod:`intentune.extend`).

    Raises:
        ConfigError: if no training file is set, or ``resume`` finds no checkpoint for this data and config, or the
            config contradicts the ``init_from`` model's backbone, pooling, lengths or preprocessing.
        DataError: for unreadable or unfit data.
    """
    from .extend import compare_with_previous, load_previous, resume_previous, save_training_rows
    from .manifest import build_manifest, record_resume, write_manifest
    from .modelcard import run_card_options, write_model_card
    from .train.runtime import is_main_process

    dcfg = config.data
    out = Path(output_dir)
    main = is_main_process()
    checkpoint_dir = out / "checkpoint" if config.train.checkpoint_every_steps != 0 else None
    if resume and checkpoint_dir is None:
        raise ConfigError("--resume needs checkpoints, but train.checkpoint_every_steps = 0 turns them off")
    if isinstance(init_from, str | Path):
        init_from = load_previous(init_from)
    if resume:
        init_from = resume_previous(out, init_from)
    if init_from is not None:  # before any data is read: a contradicting config is the one error to report
        init_from.check_config(config)
    train, validation, test, split_off = read_run_data(config, init_from=init_from)
    files = {"train": dcfg.train_file, "validation": dcfg.validation_file, "test": dcfg.test_file}
    splits = {"train": (train.texts, train.labels), "validation": (validation.texts, validation.labels)}
    if test is not None:
        splits["test"] = (test.texts, test.labels)

    def write_run_folder() -> None:
        """The run folder's files that describe the run, written once training can start."""
        if not main:
            return
        out.mkdir(parents=True, exist_ok=True)
        save_training_rows(train, out)
        if split_off:
            write_examples(validation, out / "splits" / "validation.csv")
        if not resume:  # a resumed run keeps its manifest and records the resume when it ends
            record = init_from.record() if init_from is not None else None
            write_manifest(out / "manifest.json", build_manifest(config, files, splits, init_from=record))
            save_config(config, out / "config.toml")

    started = time.perf_counter()
    classifier = IntentClassifier(config).fit(
        train.texts,
        train.labels,
        validation=(validation.texts, validation.labels),
        callbacks=[JsonlLogger(out / "train_log.jsonl"), *callbacks],
        checkpoint_dir=checkpoint_dir,
        resume=resume,
        on_ready=write_run_folder,
        init_from=init_from,
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
    return RunResult(classifier, report, eval_split, out, model_dir, comparison)


def read_run_data(
    config: Config, *, init_from: PreviousModel | None = None
) -> tuple[Examples, Examples, Examples | None, bool]:
    """Read and check every data file of a run before anything is trained or written.

    With ``init_from``, a sample of the old model's training rows joins the training rows before the validation
    split (:meth:`intentune.extend.PreviousModel.with_replay`), so a split-off validation set holds old intents too.

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
    train = _load(dcfg.train_file, config)
    validation = _load(dcfg.validation_file, config) if dcfg.validation_file else None
    test = _load(dcfg.test_file, config) if dcfg.test_file else None
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


def split_data(
    data_file: str | Path,
    output_dir: str | Path,
    *,
    fractions: dict[str, float] | None = None,
    seed: int | None = None,
    text_field: str | None = None,
    label_field: str | None = None,
    config: Config | None = None,
) -> dict[str, Examples]:
    """Stratified split of one file into ``train``/``validation``/``test`` files in ``output_dir``.

    Args:
        fractions: shares of ``train`` (0.6-0.8), ``validation`` (0.1-0.2) and ``test`` (0.1-0.2), summing to 1.
            A share not given comes from ``config``: ``data.validation_fraction``, ``data.test_fraction``, and for
            ``train`` what the other two leave.
        seed: the shuffle seed; default ``data.split_seed``.
        text_field: default ``data.text_field``.
        label_field: default ``data.label_field``.
        config: where the defaults come from; default ``Config()``.

    Raises:
        ConfigError: if a share is outside its range.
        DataError: if the data cannot be split (see :func:`intentune.data.split_examples`).
    """
    fractions, seed, text_field, label_field = _split_settings(fractions, seed, text_field, label_field, config)
    ranges = {"train": (0.6, 0.8), "validation": (0.1, 0.2), "test": (0.1, 0.2)}
    for name, (low, high) in ranges.items():
        share = fractions.get(name, 0.0)
        if not low - 1e-9 <= share <= high + 1e-9:
            raise ConfigError(f"{name} share must be between {low} and {high}, found {share}")
    if abs(sum(fractions.values()) - 1.0) > 1e-6:
        raise ConfigError(f"train + validation + test shares must sum to 1, found {sum(fractions.values()):.3f}")
    data = load_examples(data_file, text_field=text_field, label_field=label_field)
    separator = (config or Config()).data.multi_label_separator
    parts = split_examples(data, fractions, seed=seed, separator=separator)
    suffix = Path(data_file).suffix.lower()
    for name, part in parts.items():
        write_examples(part, Path(output_dir) / f"{name}{suffix}", text_field=text_field, label_field=label_field)
    return parts


def convert_data(
    source: str | Path,
    target: str | Path,
    *,
    source_format: str | None = None,
    target_format: str | None = None,
    text_field: str = "text",
    label_field: str = "intent",
    split: str = "train",
) -> Examples:
    """Convert a data file between formats (CSV, JSONL, Rasa NLU YAML, OpenAI chat JSONL; CLINC150 JSON in).

    Formats come from the file extensions unless given (``.jsonl`` is written as plain JSONL unless
    ``target_format="openai"``). ``text_field``/``label_field`` name the CSV/JSONL fields on both sides.
    """
    data = load_examples(source, text_field=text_field, label_field=label_field, fmt=source_format, split=split)
    write_examples(data, target, text_field=text_field, label_field=label_field, fmt=target_format)
    return data


def validate_data(
    train_file: str | Path,
    *,
    validation_file: str | Path | None = None,
    test_file: str | Path | None = None,
    text_field: str = "text",
    label_field: str = "intent",
    min_per_intent: int = 5,
    backbone: str | None = None,
    max_length: int = 64,
    separator: str = "+",
) -> ValidationReport:
    """Check data files before training (see :func:`intentune.validate.validate_examples`).

    Args:
        backbone: whose tokenizer measures token lengths against ``max_length``; None skips that check.
        separator: joins the intents of a label with several (``data.multi_label_separator``).
    """
    from .backbones import load_tokenizer

    def read(path: str | Path) -> Examples:
        return load_examples(path, text_field=text_field, label_field=label_field, strict=False)

    return validate_examples(
        read(train_file),
        validation=read(validation_file) if validation_file else None,
        test=read(test_file) if test_file else None,
        min_per_intent=min_per_intent,
        tokenizer=load_tokenizer(backbone) if backbone else None,
        max_length=max_length,
        separator=separator,
    )


@dataclass
class AugmentResult:
    """What :func:`augment_data` produced."""

    combined: Examples
    synthetic: Examples
    output_dir: Path
    comparison: dict[str, Any] | None = None


def augment_data(
    train_file: str | Path,
    output_dir: str | Path,
    *,
    config: Config | None = None,
    templates: str | Path | None = None,
    generate: bool = False,
    synthetic_files: Sequence[str | Path] = (),
    ratio: float | None = None,
    cap_per_intent: int | None = None,
    evaluate: bool = False,
    filter_model: str | Path | None = None,
    callbacks: Sequence[Callback] = (),
    progress: Any = None,
) -> AugmentResult:
    """Add synthetic rows (templates, LM paraphrases, or given files) to real training data, and optionally prove
    whether they help.

    Writes ``train_augmented.csv`` (real + synthetic rows with a ``source`` column) and, when generating,
    ``generated.csv`` (resumable) to ``output_dir``. With ``evaluate``, trains one model on the real rows and one
    on the augmented rows, with the same config, seed and real validation data (``data.validation_file``, else a
    stratified split of the real rows), evaluates both on the validation data and on ``data.test_file`` if set,
    and writes ``comparison.json`` and ``comparison.md``, each difference with a 95% paired-bootstrap interval over
    the evaluation rows. The real-data model also filters the generated paraphrases unless ``filter_model`` names
    another model. Synthetic rows that repeat a real training, validation or test text (ignoring case and
    punctuation) are dropped.

    Raises:
        ConfigError: if nothing synthetic is asked for.
    """
    from .synth import combine_examples, expand_templates, generate_paraphrases, load_templates, make_paraphraser

    if not (templates or generate or synthetic_files):
        raise ConfigError("nothing to add: pass --templates SPEC, --generate, or --synthetic FILE")
    config = config or Config()
    dcfg = config.data
    out = Path(output_dir)
    real = _load(str(train_file), config)
    validation = _load(dcfg.validation_file, config) if dcfg.validation_file else None
    if validation is None and evaluate:
        real, validation = split_validation(real, dcfg)
    test = _load(dcfg.test_file, config) if dcfg.test_file else None
    # Synthetic copies of evaluation texts would leak them into training.
    heldout = [*(validation.texts if validation is not None else []), *(test.texts if test is not None else [])]
    baseline, seconds = None, {}
    started = time.perf_counter()
    if evaluate:
        baseline = IntentClassifier(config).fit(
            real.texts, real.labels, validation=(validation.texts, validation.labels), callbacks=callbacks
        )
        seconds["train_real_only"] = round(time.perf_counter() - started, 1)
    synthetic = Examples([], [], [], "synthetic")
    if templates:
        synthetic.extend(expand_templates(load_templates(templates), seed=dcfg.split_seed))
    for path in synthetic_files:
        synthetic.extend(_load(str(path), config))
    if generate:
        judge = IntentClassifier.load(filter_model) if filter_model else baseline
        started = time.perf_counter()
        paraphraser = make_paraphraser(config.generate)
        generated = generate_paraphrases(
            real,
            paraphraser,
            config.generate,
            out / "generated.csv",
            classifier=judge,
            heldout=heldout,
            progress=progress,
        )
        seconds["generate"] = round(time.perf_counter() - started, 1)
        synthetic.extend(generated)
    combined = combine_examples(
        real, synthetic, ratio=ratio, cap_per_intent=cap_per_intent, seed=dcfg.split_seed, heldout=heldout
    )
    write_examples(combined, out / "train_augmented.csv")
    result = AugmentResult(combined, synthetic, out)
    if evaluate:
        started = time.perf_counter()
        augmented = IntentClassifier(config).fit(
            combined.texts, combined.labels, validation=(validation.texts, validation.labels), callbacks=callbacks
        )
        seconds["train_augmented"] = round(time.perf_counter() - started, 1)
        result.comparison = compare_models(baseline, augmented, validation, test, len(real), len(combined) - len(real))
        result.comparison["seconds"] = seconds
        (out / "comparison.json").write_text(json.dumps(result.comparison, indent=2), encoding="utf-8")
        (out / "comparison.md").write_text(comparison_markdown(result.comparison), encoding="utf-8")
    return result


def compare_models(
    baseline: IntentClassifier,
    augmented: IntentClassifier,
    validation: Examples,
    test: Examples | None,
    real_rows: int,
    synthetic_rows: int,
) -> dict[str, Any]:
    """Accuracy, macro-F1 and per-intent F1 of two models on the same real data, and their differences.

    Each difference carries a paired-bootstrap ``interval`` (95%, resampling the evaluation rows, which both models
    predict) and ``within_noise``: true when the interval contains 0, so one training run per side cannot tell
    the models apart on that metric.
    """
    from .evaluate.bootstrap import paired_bootstrap

    result: dict[str, Any] = {"real_rows": real_rows, "synthetic_rows": synthetic_rows}
    for name, data in (("validation", validation), ("test", test)):
        if data is None:
            continue
        evals = [evaluate_classifier(model, data.texts, data.labels) for model in (baseline, augmented)]
        a, b = (e.report for e in evals)
        # The labels the reports' macro averages are over, so the bootstrap's macro F1 is the reported one (the
        # union differs from either side only when synthetic rows bring an intent the real rows lack).
        averaged = [[x for x in e.labels if x not in e.averages_leave_out] for e in evals]
        labels = list(dict.fromkeys([*averaged[0], *averaged[1]]))
        noise = paired_bootstrap(data.labels, *(_answers(e, data.labels) for e in evals), labels)
        result["bootstrap"] = {"resamples": noise.resamples, "confidence": noise.confidence, "seed": noise.seed}
        per_intent = {
            intent: _diff(a[intent]["f1-score"], b[intent]["f1-score"], noise.per_intent_f1[intent])
            for intent in baseline.classes_
        }
        result[name] = {
            "rows": len(data),
            "accuracy": _diff(a["accuracy"], b["accuracy"], noise.accuracy),
            "macro_f1": _diff(a["macro avg"]["f1-score"], b["macro avg"]["f1-score"], noise.macro_f1),
            "per_intent_f1": per_intent,
        }
    return result


def _answers(evaluation: EvalReport, y_true: Sequence[str]) -> list[str]:
    """Each row's answer, rebuilt from the report: the true intent except at the rows it lists as errors."""
    answers = list(y_true)
    for error in evaluation.errors:
        answers[error["index"]] = error["predicted"]
    return answers


def _diff(real_only: float, augmented: float, noise: Interval | None = None) -> dict[str, Any]:
    """Both values and their difference; with ``noise``, its bootstrap interval and whether it contains 0."""
    diff: dict[str, Any] = {"real_only": real_only, "augmented": augmented}
    diff["difference"] = round(augmented - real_only, 6)
    if noise is not None:
        diff.update(interval=[noise.low, noise.high], within_noise=noise.within_noise)
    return diff


def comparison_markdown(comparison: dict[str, Any], top: int = 10) -> str:
    """The comparison as Markdown: overall numbers per split, then the intents that changed most, each difference
    with its bootstrap interval and 'within noise' where the interval contains 0."""
    lines = [
        "# Real data versus real + synthetic",
        "",
        f"Training rows: {comparison['real_rows']} real, plus {comparison['synthetic_rows']} synthetic.",
        "",
        "| data | metric | real only | augmented | difference | 95% interval |",
        "|---|---|---:|---:|---:|---|",
    ]
    for name in ("validation", "test"):
        if name in comparison:
            for metric in ("accuracy", "macro_f1"):
                m = comparison[name][metric]
                lines.append(
                    f"| {name} ({comparison[name]['rows']}) | {metric} | {m['real_only']:.4f} | "
                    f"{m['augmented']:.4f} | {m['difference']:+.4f} | {_noise_cell(m, 4)} |"
                )
    name = "test" if "test" in comparison else "validation"
    changes = sorted(comparison[name]["per_intent_f1"].items(), key=lambda kv: kv[1]["difference"])
    lines += ["", f"Per-intent F1 on {name}, largest drops and gains:", ""]
    lines += ["| intent | real only | augmented | difference | 95% interval |", "|---|---:|---:|---:|---|"]
    shown = [*changes[:top], *changes[-top:]] if len(changes) > 2 * top else changes
    for intent, m in shown:
        lines.append(
            f"| `{intent}` | {m['real_only']:.3f} | {m['augmented']:.3f} | {m['difference']:+.3f} | "
            f"{_noise_cell(m, 3)} |"
        )
    if "bootstrap" in comparison:
        boot = comparison["bootstrap"]
        lines += [
            "",
            f"Intervals: {boot['confidence']:.0%} paired bootstrap over the evaluation rows ({boot['resamples']} "
            f"resamples, seed {boot['seed']}). 'within noise': the interval contains 0, so these rows do not show "
            "which model is better.",
        ]
    return "\n".join(lines) + "\n"


def _noise_cell(diff: dict[str, Any], digits: int) -> str:
    """``[low, high]``, plus 'within noise' when the interval contains 0; empty without an interval."""
    if "interval" not in diff:
        return ""
    low, high = diff["interval"]
    return f"[{low:+.{digits}f}, {high:+.{digits}f}]" + (" within noise" if diff["within_noise"] else "")


def predict_texts(
    model_dir: str | Path, texts: Sequence[str], *, top_k: int = 1, runtime: str = "auto"
) -> list[dict[str, Any]]:
    """Predict intents for texts with a saved model.

    Args:
        runtime: ``auto``, ``torch``, ``onnx`` or ``onnx-int8`` (see :func:`intentune.inference.load_predictor`).

    Returns:
        One dict per text: ``text``, ``intent`` (the out-of-scope label when rejected), ``confidence``,
        ``is_out_of_scope`` and ``top`` (the ``top_k`` best intents with their calibrated probabilities).
    """
    from .inference import load_predictor

    if not texts:
        raise DataError("no texts to predict; pass texts, --file, or pipe lines on standard input")
    details = load_predictor(model_dir, runtime=runtime).predict_details(list(texts), top_k=top_k)
    return [{"text": text, **d} for text, d in zip(texts, details)]


def predict_file(
    model_dir: str | Path,
    input_file: str | Path,
    output_file: str | Path,
    *,
    text_field: str | None = None,
    runtime: str = "auto",
    top_k: int = 1,
    chunk_size: int | None = None,
    progress: bool = False,
) -> int:
    """Predict every row of a CSV or JSONL file of any size, streaming it in chunks (``intentune predict --input``).

    The output (CSV or JSONL, by its extension) keeps every input field and adds ``intent``, ``confidence`` and
    ``is_out_of_scope`` (``intents``, every intent found as JSON, for a multi-label model; and ``top``, the ``top_k``
    best intents as JSON, when ``top_k > 1``); when the input
    already has one of these fields (a labelled file's ``intent``), all added fields get the prefix
    ``predicted_``. It is written to a temporary file and renamed into place when complete.

    Args:
        text_field: the field holding the text; default: the model's ``data.text_field``.
        runtime: see :func:`intentune.inference.load_predictor`.
        chunk_size: rows read, predicted and written at a time (default :data:`intentune.batch.CHUNK_ROWS`).
        progress: show a progress bar on standard error.

    Returns:
        The number of rows written (one per input row).

    Raises:
        DataError: if the input is missing, a directory, unreadable, malformed, has no rows, or a row lacks the text
            (naming the line); nothing is written then.
    """
    import sys

    from tqdm import tqdm

    from .batch import RowWriter, count_lines, read_chunks, stream_format
    from .formats import check_data_file
    from .inference import load_predictor
    from .preprocess import clean_text

    input_file, output_file = Path(input_file), Path(output_file)
    check_data_file(input_file, kinds=".csv or .jsonl")  # a missing file or a folder fails before the model loads
    for path in (input_file, output_file):
        stream_format(path)  # and so does an unknown extension
    if output_file.is_dir():
        raise DataError(f"{output_file}/ is a directory; pass an output file name ending in .csv or .jsonl")
    predictor = load_predictor(model_dir, runtime=runtime)
    dcfg = predictor.config.data
    field = text_field or dcfg.text_field
    writer, written = RowWriter(output_file), 0
    bar = tqdm(total=count_lines(input_file), unit="rows", file=sys.stderr, disable=not progress, leave=False)
    try:
        for chunk in read_chunks(input_file, field, chunk_size=chunk_size):
            texts = [str(row[field]) for _, row in chunk]
            for (line, _), text in zip(chunk, texts):
                if not clean_text(text, lowercase=dcfg.lowercase, remove_special_chars=dcfg.remove_special_chars):
                    raise DataError(f"{input_file}:{line}: field {field!r} is empty after data.remove_special_chars")
            details = predictor.predict_details(texts, top_k=top_k)
            multi = predictor.is_multi_label
            writer.write([_with_prediction(row, d, top_k, multi) for (_, row), d in zip(chunk, details)])
            written += len(chunk)
            bar.update(chunk[-1][0] - bar.n)
        writer.commit()
    except BaseException:
        writer.discard()
        raise
    finally:
        bar.close()
    return written


def _with_prediction(row: dict[str, Any], details: dict[str, Any], top_k: int, multi_label: bool) -> dict[str, Any]:
    added = {k: details[k] for k in ("intent", "confidence", "is_out_of_scope")}
    if multi_label:
        added["intents"] = details["intents"]
    if top_k > 1:
        added["top"] = details["top"]
    prefix = "predicted_" if any(k in row for k in added) else ""
    return {**row, **{prefix + k: v for k, v in added.items()}}


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

    examples = _load(str(data_file), config)
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
    (see :func:`intentune.crossval.learning_curve`); early stopping uses ``data.validation_file`` if set.

    Writes ``learning_curve.json``, ``learning_curve.png`` and ``config.toml`` to ``output_dir``.

    Returns:
        The :class:`intentune.crossval.LearningCurve`.
    """
    from .crossval import learning_curve

    train, evaluation = _load(str(data_file), config), _load(str(eval_file), config)
    validation = _load(config.data.validation_file, config) if config.data.validation_file else None
    curve = learning_curve(
        train, evaluation, config, fractions=fractions, validation=validation, seed=config.data.split_seed,
        callbacks=callbacks, on_point=on_point,
    )  # fmt: skip
    curve.save(output_dir)
    save_config(config, Path(output_dir) / "config.toml")
    return curve


def doctor_data(
    data_file: str | Path,
    output_dir: str | Path,
    *,
    config: Config | None = None,
    method: str = "embeddings",
    backbone: str | None = None,
    folds: int = 5,
    top: int = 50,
    callbacks: Sequence[Callback] = (),
    progress: Any = None,
) -> DoctorReport:
    """Find probably mislabelled rows and overlapping intents in a labelled file
    (see :func:`intentune.doctor.diagnose_examples`).

    Writes ``suspects.csv``, ``overlaps.csv``, ``doctor.md`` (the ``top`` of each) and ``doctor.json`` to
    ``output_dir``. Folds are seeded with ``data.split_seed``.

    Returns:
        The :class:`intentune.doctor.DoctorReport`.
    """
    from .doctor import diagnose_examples

    config = config or Config()
    examples = _load(str(data_file), config)
    report = diagnose_examples(
        examples, method=method, config=config, backbone=backbone, folds=folds, seed=config.data.split_seed,
        callbacks=callbacks, progress=progress,
    )  # fmt: skip
    report.save(output_dir, top=top)
    return report


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


def _load(path: str, config: Config) -> Examples:
    return load_examples(path, text_field=config.data.text_field, label_field=config.data.label_field)


def _split_settings(
    fractions: dict[str, float] | None,
    seed: int | None,
    text_field: str | None,
    label_field: str | None,
    config: Config | None,
) -> tuple[dict[str, float], int, str, str]:
    """:func:`split_data`'s arguments with the ones not given taken from the config (train first: it takes what
    rounding leaves)."""
    data = (config or Config()).data
    given = fractions or {}
    validation = given.get("validation", data.validation_fraction)
    test = given.get("test", data.test_fraction)
    train = given.get("train", round(1.0 - validation - test, 10))
    shares = {"train": train, "validation": validation, "test": test, **given}
    return (
        shares,
        data.split_seed if seed is None else seed,
        text_field or data.text_field,
        label_field or data.label_field,
    )
