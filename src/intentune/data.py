"""Read, check, split and write labelled utterances (formats: :mod:`intentune.formats`).

Every problem found in a file is reported with the file, the line and the field, and what to change.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from .errors import DataError
from .formats import detect_format, read_rows, write_rows


@dataclass
class Examples:
    """Labelled utterances, with the line each came from (for error messages).

    Attributes:
        texts: the utterances.
        labels: one intent per utterance.
        lines: the 1-based line of each row in ``source`` (0 when made in memory).
        source: the file the rows were read from, if any.
    """

    texts: list[str]
    labels: list[str]
    lines: list[int] = field(default_factory=list)
    source: str = "<memory>"

    def __post_init__(self) -> None:
        if len(self.texts) != len(self.labels):
            raise DataError(f"{self.source}: {len(self.texts)} texts but {len(self.labels)} labels")
        if not self.lines:
            self.lines = [0] * len(self.texts)

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, indices: list[int]) -> Examples:
        """The rows at ``indices``, in that order."""
        return Examples(
            [self.texts[i] for i in indices],
            [self.labels[i] for i in indices],
            [self.lines[i] for i in indices],
            self.source,
        )

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
        DataError: if the file is missing, empty, malformed, lacks a field, or (strict) has an empty text or label.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    fmt = fmt or detect_format(path)
    rows = read_rows(path, fmt, text_field=text_field, label_field=label_field, split=split)
    source = f"{path}#{split}" if fmt == "clinc" else str(path)
    examples = Examples([], [], [], source)
    for line, text, label in rows:
        if strict and not text.strip():
            raise DataError(f"{source}:{line}: empty text in field {text_field!r}; remove the row or fill it in")
        if strict and not label.strip():
            raise DataError(f"{source}:{line}: empty intent in field {label_field!r}; label the row or remove it")
        examples.texts.append(text.strip())
        examples.labels.append(label.strip())
        examples.lines.append(line)
    if not examples.texts:
        raise DataError(f"{path}: no examples found; expected rows with a text and an intent")
    return examples


def write_examples(
    examples: Examples,
    path: str | Path,
    *,
    text_field: str = "text",
    label_field: str = "intent",
    fmt: str | None = None,
) -> None:
    """Write rows as CSV, JSONL, Rasa NLU YAML or OpenAI chat JSONL, creating parent folders.

    The format comes from ``fmt`` or the extension (``.jsonl`` means plain JSONL unless ``fmt="openai"``).
    """
    path = Path(path)
    fmt = fmt or detect_format(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_rows(path, fmt, examples.texts, examples.labels, text_field=text_field, label_field=label_field)


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


def split_examples(examples: Examples, fractions: dict[str, float], *, seed: int = 13) -> dict[str, Examples]:
    """Stratified split: each intent is divided in the given proportions, so every split sees every intent.

    Args:
        examples: the rows to split.
        fractions: split name -> share, for example ``{"train": 0.8, "validation": 0.1, "test": 0.1}``.
            Shares must sum to 1; the first split takes what rounding leaves.
        seed: the shuffle seed; the same seed and rows give the same split.

    Returns:
        Split name -> rows, each in a shuffled order.

    Raises:
        DataError: if an intent has fewer examples than there are splits, or if there is only one intent.
    """
    if abs(sum(fractions.values()) - 1.0) > 1e-6:
        raise DataError(f"split fractions must sum to 1, found {fractions}")
    names = [name for name, share in fractions.items() if share > 0]
    check_trainable(examples, min_per_intent=len(names))
    by_label: dict[str, list[int]] = defaultdict(list)
    for i, label in enumerate(examples.labels):
        by_label[label].append(i)
    rng = random.Random(seed)
    parts: dict[str, list[int]] = {name: [] for name in names}
    for label in sorted(by_label):
        indices = by_label[label]
        rng.shuffle(indices)
        sizes = {name: max(1, round(len(indices) * fractions[name])) for name in names[1:]}
        sizes[names[0]] = len(indices) - sum(sizes.values())
        if sizes[names[0]] < 1:  # tiny intent: give the first split one row, take it from the largest other
            largest = max(names[1:], key=lambda n: sizes[n])
            sizes[largest] -= 1
            sizes[names[0]] = 1
        start = 0
        for name in names:
            parts[name].extend(indices[start : start + sizes[name]])
            start += sizes[name]
    for name in names:
        rng.shuffle(parts[name])
    return {name: examples.subset(parts[name]) for name in names}


def _lines_of(examples: Examples, label: str) -> list[int]:
    return [line for line, lab in zip(examples.lines, examples.labels) if lab == label][:5]
