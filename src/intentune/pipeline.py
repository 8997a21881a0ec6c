"""Whole jobs, each one importable function that the CLI (and Python users) call:
train a run folder, evaluate a model on a file, split a data file, predict texts.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import __version__
from .config import Config, save_config
from .data import Examples, load_examples, split_examples, write_examples
from .errors import ConfigError, DataError
from .evaluate import EvalReport, evaluate_classifier
from .model import IntentClassifier
from .train import Callback, JsonlLogger
from .validate import ValidationReport, validate_examples


@dataclass
class RunResult:
    """What :func:`train_run` produced."""

    classifier: IntentClassifier
    report: EvalReport
    eval_split: str  # "test", or "validation" when no test file was given
    output_dir: Path
    model_dir: Path


def train_run(config: Config, output_dir: str | Path, *, callbacks: Sequence[Callback] = ()) -> RunResult:
    """Train, save and evaluate: the main job.

    Reads ``config.data.train_file`` (and the validation and test files if set; otherwise a stratified
    validation split is taken from the training data), fine-tunes, writes the model folder atomically and
    evaluates on the test file (or, without one, on the validation data).

    The run folder gets ``model/``, ``config.toml`` (fully resolved), ``train_log.jsonl``, ``splits/``
    (the validation rows when split off), ``metrics.json``, ``report.md``, ``errors.jsonl`` and
    ``confusion_matrix.png``.

    Raises:
        ConfigError: if no training file is set.
        DataError: for unreadable or unfit data.
    """
    dcfg = config.data
    if not dcfg.train_file:
        raise ConfigError("no training data: pass a data file or set data.train_file")
    out = Path(output_dir)
    train = _load(dcfg.train_file, config)
    if dcfg.validation_file:
        validation = _load(dcfg.validation_file, config)
    else:
        parts = split_examples(
            train, {"train": 1 - dcfg.validation_fraction, "validation": dcfg.validation_fraction}, seed=dcfg.split_seed
        )
        train, validation = parts["train"], parts["validation"]
        write_examples(validation, out / "splits" / "validation.csv")
    test = _load(dcfg.test_file, config) if dcfg.test_file else None
    started = time.perf_counter()
    classifier = IntentClassifier(config).fit(
        train.texts,
        train.labels,
        validation=(validation.texts, validation.labels),
        callbacks=[JsonlLogger(out / "train_log.jsonl"), *callbacks],
    )
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
    save_config(config, out / "config.toml")
    return RunResult(classifier, report, eval_split, out, model_dir)


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
    fractions: dict[str, float],
    seed: int = 13,
    text_field: str = "text",
    label_field: str = "intent",
) -> dict[str, Examples]:
    """Stratified split of one file into ``train``/``validation``/``test`` files in ``output_dir``.

    Args:
        fractions: shares of ``train`` (0.6-0.8), ``validation`` (0.1-0.2) and ``test`` (0.1-0.2), summing to 1.

    Raises:
        ConfigError: if a share is outside its range.
        DataError: if the data cannot be split (see :func:`intentune.data.split_examples`).
    """
    ranges = {"train": (0.6, 0.8), "validation": (0.1, 0.2), "test": (0.1, 0.2)}
    for name, (low, high) in ranges.items():
        share = fractions.get(name, 0.0)
        if not low - 1e-9 <= share <= high + 1e-9:
            raise ConfigError(f"{name} share must be between {low} and {high}, found {share}")
    if abs(sum(fractions.values()) - 1.0) > 1e-6:
        raise ConfigError(f"train + validation + test shares must sum to 1, found {sum(fractions.values()):.3f}")
    data = load_examples(data_file, text_field=text_field, label_field=label_field)
    parts = split_examples(data, fractions, seed=seed)
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
) -> ValidationReport:
    """Check data files before training (see :func:`intentune.validate.validate_examples`).

    Args:
        backbone: whose tokenizer measures token lengths against ``max_length``; None skips that check.
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
    )


def predict_texts(model_dir: str | Path, texts: Sequence[str], *, top_k: int = 1) -> list[dict[str, Any]]:
    """Predict intents for texts with a saved model.

    Returns:
        One dict per text: ``text``, ``intent``, ``confidence`` and ``top`` (the ``top_k`` best intents with
        their probabilities).
    """
    if not texts:
        raise DataError("no texts to predict; pass texts, --file, or pipe lines on standard input")
    classifier = IntentClassifier.load(model_dir)
    probs = classifier.predict_proba(list(texts))
    results = []
    for text, row in zip(texts, probs):
        order = row.argsort()[::-1][: max(1, top_k)]
        top = [{"intent": classifier.classes_[i], "confidence": round(float(row[i]), 4)} for i in order]
        results.append({"text": text, "intent": top[0]["intent"], "confidence": top[0]["confidence"], "top": top})
    return results


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
