"""Read, check, split and write labelled utterances (formats: :mod:`intentune.formats`).

Every problem found in a file is reported with the file, the line and the field, and what to change.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import DataError
from .formats import check_data_file, detect_format, read_rows, write_rows

if TYPE_CHECKING:
    from .config import Config, DataConfig


@dataclass
class Examples:
    """Labelled utterances, with the line each came from (for error messages).

    Attributes:
        texts: the utterances.
        labels: one intent per utterance.
        lines: the 1-based line of each row in ``source`` (0 when made in memory).
        source: the file the rows were read from, if any.
        sources: where each row came from: ``real`` (default), ``template`` or ``generated``.
    """

    texts: list[str]
    labels: list[str]
    lines: list[int] = field(default_factory=list)
    source: str = "<memory>"
    sources: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if len(self.texts) != len(self.labels):
            raise DataError(f"{self.source}: {len(self.texts)} texts but {len(self.labels)} labels")
        if not self.lines:
            self.lines = [0] * len(self.texts)
        if not self.sources:
            self.sources = ["real"] * len(self.texts)

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, indices: list[int]) -> Examples:
        """The rows at ``indices``, in that order."""
        return Examples(
            [self.texts[i] for i in indices],
            [self.labels[i] for i in indices],
            [self.lines[i] for i in indices],
            self.source,
            [self.sources[i] for i in indices],
        )

    def extend(self, other: Examples) -> Examples:
        """Append ``other``'s rows in place; returns ``self``."""
        self.texts += other.texts
        self.labels += other.labels
        self.lines += other.lines
        self.sources += other.sources
        return self

    def counts(self) -> dict[str, int]:
        """Examples per intent, sorted by intent name."""
        return dict(sorted(Counter(self.labels).items()))


def load_examples(
    path: str | Path,
    *,
    text_field: str = "text",
    label_field: str = "intent",
    fmt: str | None = None,
    split: str = "train",
    strict: bool = True,
) -> Examples:
    """Read labelled utterances from any supported format (see :mod:`intentune.formats`).

    Args:
        path: a ``.csv``, ``.jsonl`` (plain or OpenAI chat), ``.yml`` (Rasa NLU) or ``.json`` (CLINC150) file.
        text_field: the column or JSON key holding the utterance (CSV and JSONL).
        label_field: the column or JSON key holding the intent (CSV and JSONL).
        fmt: the format; detected from the file if omitted.
        split: for the CLINC150 layout, which list to read (``train`` also reads ``oos_train``).
        strict: raise on an empty text or intent; with ``strict=False`` such rows are kept (for validation).

    Returns:
        The rows (texts stripped of surrounding white space), with their line numbers.

    Raises:
        DataError: if the file is missing, a directory, empty, malformed, lacks a field, or (strict) has an empty
            text or label.
    """
    path = Path(path)
    check_data_file(path)
    fmt = fmt or detect_format(path)
    rows = read_rows(path, fmt, text_field=text_field, label_field=label_field, split=split)
    source = f"{path}#{split}" if fmt == "clinc" else str(path)
    examples = Examples([], [], [], source)
    for line, text, label, origin in rows:
        if strict and not text.strip():
            raise DataError(f"{source}:{line}: empty text in field {text_field!r}; remove the row or fill it in")
        if strict and not label.strip():
            raise DataError(f"{source}:{line}: empty intent in field {label_field!r}; label the row or remove it")
        examples.texts.append(text.strip())
        examples.labels.append(label.strip())
        examples.lines.append(line)
        examples.sources.append(origin)
    if not examples.texts:
        raise DataError(f"{path}: no examples found; expected rows with a text and an intent")
    return examples


def load_for_config(path: str, config: Config) -> Examples:
    """:func:`load_examples` with the config's field names (``data.text_field``, ``data.label_field``)."""
    return load_examples(path, text_field=config.data.text_field, label_field=config.data.label_field)


def write_examples(
    examples: Examples,
    path: str | Path,
    *,
    text_field: str = "text",
    label_field: str = "intent",
    fmt: str | None = None,
) -> None:
    """Write rows as CSV, JSONL, Rasa NLU YAML or OpenAI chat JSONL, creating parent folders; the file is replaced
    whole (a temporary sibling renamed into place), so a failed write leaves an existing file as it was.

    The format comes from ``fmt`` or the extension (``.jsonl`` means plain JSONL unless ``fmt="openai"``).
    """
    path = Path(path)
    fmt = fmt or detect_format(path)
    sources = examples.sources if any(s != "real" for s in examples.sources) else None
    write_rows(
        path, fmt, examples.texts, examples.labels, text_field=text_field, label_field=label_field, sources=sources
    )


def check_trainable(examples: Examples, *, min_per_intent: int = 1) -> None:
    """Check that the rows can train a classifier: two intents or more, each with enough examples.

    Raises:
        DataError: naming the intents that fall short and the lines of their rows.
    """
    counts = examples.counts()
    if len(counts) < 2:
        only = next(iter(counts), "nothing")
        raise DataError(
            f"{examples.source}: only one intent ({only!r}) in {len(examples)} rows; "
            "a classifier needs at least two intents"
        )
    short = {label: n for label, n in counts.items() if n < min_per_intent}
    if short:
        details = "; ".join(
            f"{label!r} has {n} (line {', '.join(map(str, _lines_of(examples, label)))})" for label, n in short.items()
        )
        raise DataError(
            f"{examples.source}: intents with fewer than {min_per_intent} examples, too few to split "
            f"stratified: {details}; add examples or remove these intents"
        )


def split_examples(
    examples: Examples, fractions: dict[str, float], *, seed: int = 13, separator: str = "+"
) -> dict[str, Examples]:
    """Stratified split: each intent is divided in the given proportions, so every split sees every intent.

    A label that joins several intents (see :mod:`intentune.labels`) is divided like an intent of its own when it
    has a row for every split; combinations with fewer rows are divided together, as one group, since one row
    cannot go into every split.

    Args:
        examples: the rows to split.
        fractions: split name -> share, for example ``{"train": 0.8, "validation": 0.1, "test": 0.1}``.
            Shares must sum to 1; the first split takes what rounding leaves.
        seed: the shuffle seed; the same seed and rows give the same split.
        separator: joins the intents of a label with several (``data.multi_label_separator``); empty makes every
            label one intent.

    Returns:
        Split name -> rows, each in a shuffled order. Rows whose texts match ignoring case and punctuation stay
        together in one split; rows whose ``source`` is not ``real`` all go into the first split.

    Raises:
        DataError: if a label other than a combination has fewer examples than there are splits, or if there is
            only one label.
    """
    if abs(sum(fractions.values()) - 1.0) > 1e-6:
        raise DataError(f"split fractions must sum to 1, found {fractions}")
    from .labels import is_combination
    from .preprocess import normalize_for_matching

    names = [name for name, share in fractions.items() if share > 0]
    real = [i for i, source in enumerate(examples.sources) if source == "real"]
    counts = Counter(examples.labels[i] for i in real)
    rare = {y for y, n in counts.items() if n < len(names) and is_combination(y, separator)}
    check_trainable(examples.subset([i for i in real if examples.labels[i] not in rare]), min_per_intent=len(names))
    # Rows whose texts match ignoring case and punctuation form one group, which never straddles two splits.
    groups: dict[str, dict[str, list[int]]] = defaultdict(dict)
    pooled: dict[str, list[int]] = {}  # the rows of rare combinations, divided as one stratum
    for i in real:
        stratum = pooled if examples.labels[i] in rare else groups[examples.labels[i]]
        stratum.setdefault(normalize_for_matching(examples.texts[i]), []).append(i)
    rng = random.Random(seed)
    parts: dict[str, list[int]] = {name: [] for name in names}
    for stratum in [groups[label] for label in sorted(groups)] + ([pooled] if pooled else []):
        members = list(stratum.values())
        rng.shuffle(members)
        total = sum(len(m) for m in members)
        sizes = {name: max(1, round(total * fractions[name])) for name in names[1:]}
        sizes[names[0]] = total - sum(sizes.values())
        if sizes[names[0]] < 1:  # tiny intent: give the first split one row, take it from the largest other
            largest = max(names[1:], key=lambda n: sizes[n])
            sizes[largest] -= 1
            sizes[names[0]] = 1
        k, filled = 0, 0
        for group in members:  # fill the splits in order; a group may overfill one by a few rows
            while k < len(names) - 1 and filled >= sizes[names[k]]:
                k, filled = k + 1, 0
            parts[names[k]].extend(group)
            filled += len(group)
    synthetic = [i for i, source in enumerate(examples.sources) if source != "real"]
    parts[names[0]].extend(synthetic)  # synthetic rows only ever train
    for name in names:
        rng.shuffle(parts[name])
    return {name: examples.subset(parts[name]) for name in names}


def split_validation(examples: Examples, data: DataConfig) -> tuple[Examples, Examples]:
    """Split ``data.validation_fraction`` of ``examples`` off as validation data (stratified, ``data.split_seed``).

    The one place where training data without a validation file gets its validation split: training, tuning,
    augmentation, cross-validation and learning curves all call it, so they split alike.

    Returns:
        ``(train, validation)``.
    """
    share = data.validation_fraction
    parts = split_examples(
        examples, {"train": 1 - share, "validation": share}, seed=data.split_seed, separator=data.multi_label_separator
    )
    return parts["train"], parts["validation"]


def _lines_of(examples: Examples, label: str) -> list[int]:
    return [line for line, lab in zip(examples.lines, examples.labels) if lab == label][:5]
