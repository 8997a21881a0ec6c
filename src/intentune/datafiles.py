"""The data-file commands (``intentune data ...``), each one importable function: split a labelled file into
train/validation/test files, convert it between formats, add two-intent rows joined from single-intent ones, check
data files before training, and find probably mislabelled rows and overlapping intents (the data doctor).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import Config
from .data import Examples, load_examples, load_for_config, split_examples, write_examples
from .errors import ConfigError
from .validate import ValidationReport, validate_examples

if TYPE_CHECKING:
    from .doctor import DoctorReport
    from .train.callbacks import Callback


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


def join_data(
    data_file: str | Path,
    output: str | Path,
    *,
    count: int,
    groups_file: str | Path | None = None,
    connectors: Sequence[str] | None = None,
    seed: int = 0,
    only_joined: bool = False,
    config: Config | None = None,
) -> tuple[Examples, Examples]:
    """Add ``count`` two-intent rows joined from a file's single-intent rows
    (:func:`intentune.multi_intent.join_intent_pairs`) and write the file's rows and them (or, with
    ``only_joined``, them alone) to ``output``, in the format its extension names. ``output`` is written whole or
    not at all, and may be ``data_file`` itself.

    Fields, separator and out-of-scope label come from ``config`` (``data.text_field``, ``data.label_field``,
    ``data.multi_label_separator``, ``oos.label``).

    Returns:
        The rows written and the joined rows among them.
    """
    from .multi_intent import DEFAULT_CONNECTORS, join_intent_pairs, load_groups

    config = config or Config()
    examples = load_for_config(str(data_file), config)
    groups = load_groups(groups_file) if groups_file is not None else None
    joined = join_intent_pairs(
        examples, count, groups=groups, connectors=connectors or DEFAULT_CONNECTORS, seed=seed,
        separator=config.data.multi_label_separator, oos_label=config.oos.label,
    )  # fmt: skip
    written = joined if only_joined else Examples(
        examples.texts + joined.texts, examples.labels + joined.labels, sources=examples.sources + joined.sources
    )  # fmt: skip
    write_examples(written, output, text_field=config.data.text_field, label_field=config.data.label_field)
    return written, joined


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
    examples = load_for_config(str(data_file), config)
    report = diagnose_examples(
        examples, method=method, config=config, backbone=backbone, folds=folds, seed=config.data.split_seed,
        callbacks=callbacks, progress=progress,
    )  # fmt: skip
    report.save(output_dir, top=top)
    return report


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
