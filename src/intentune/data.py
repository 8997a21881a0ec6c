"""Read, check, split and write labelled utterances (CSV and JSONL).

Every problem found in a file is reported with the file, the line and the field, and what to change.
"""

from __future__ import annotations

import csv
import json
import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from .errors import DataError

FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}


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


def load_examples(path: str | Path, *, text_field: str = "text", label_field: str = "intent") -> Examples:
    """Read a CSV (with a header row) or JSONL file of labelled utterances.

    Args:
        path: a ``.csv``, ``.jsonl`` or ``.ndjson`` file.
        text_field: the column or JSON key holding the utterance.
        label_field: the column or JSON key holding the intent.

    Returns:
        The rows, with their line numbers.

    Raises:
        DataError: if the file is missing, empty, malformed, lacks a field, or has an empty text or label.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise DataError(f"{path}: unknown file type {path.suffix!r}; use .csv (with a header row) or .jsonl")
    rows = _read_csv(path) if fmt == "csv" else _read_jsonl(path)
    examples = Examples([], [], [], str(path))
    for line, row in rows:
        text, label = _field(row, text_field, "text", path, line), _field(row, label_field, "label", path, line)
        if not text.strip():
            raise DataError(f"{path}:{line}: empty text in field {text_field!r}; remove the row or fill it in")
        if not label.strip():
            raise DataError(f"{path}:{line}: empty intent in field {label_field!r}; label the row or remove it")
        examples.texts.append(text.strip())
        examples.labels.append(label.strip())
        examples.lines.append(line)
    if not examples.texts:
        raise DataError(f"{path}: no examples found; expected rows with fields {text_field!r} and {label_field!r}")
    return examples


def write_examples(
    examples: Examples, path: str | Path, *, text_field: str = "text", label_field: str = "intent"
) -> None:
    """Write rows as CSV or JSONL (by the file's extension), creating parent folders."""
    path = Path(path)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise DataError(f"{path}: unknown file type {path.suffix!r}; use .csv or .jsonl")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        if fmt == "csv":
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow([text_field, label_field])
            writer.writerows(zip(examples.texts, examples.labels))
        else:
            for text, label in zip(examples.texts, examples.labels):
                handle.write(json.dumps({text_field: text, label_field: label}, ensure_ascii=False) + "\n")


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


def _field(row: dict[str, object], name: str, what: str, path: Path, line: int) -> str:
    if name not in row:
        found = ", ".join(map(str, row)) or "none"
        setting = "data.text_field" if what == "text" else "data.label_field"
        raise DataError(f"{path}:{line}: missing field {name!r} (fields found: {found}); set {setting}")
    value = row[name]
    if value is None:
        return ""
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise DataError(f"{path}:{line}: field {name!r} must be text, found {type(value).__name__}")
    return str(value)


def _read_csv(path: Path) -> list[tuple[int, dict[str, object]]]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames:
            raise DataError(f"{path}: empty file; expected a header row such as 'text,intent' and data rows")
        rows = []
        try:
            for row in reader:
                if None in row:
                    raise DataError(
                        f"{path}:{reader.line_num}: more values than header columns; quote texts that contain commas"
                    )
                if any(v for v in row.values()):  # skip blank lines
                    rows.append((reader.line_num, row))
        except csv.Error as exc:
            raise DataError(f"{path}:{reader.line_num}: malformed CSV: {exc}") from None
        except UnicodeDecodeError:
            raise DataError(f"{path}: not UTF-8 text; save the file as UTF-8") from None
    return rows


def _read_jsonl(path: Path) -> list[tuple[int, dict[str, object]]]:
    rows = []
    try:
        with path.open(encoding="utf-8-sig") as handle:
            for line_no, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DataError(f"{path}:{line_no}: not valid JSON ({exc.msg}); one JSON object per line") from None
                if not isinstance(row, dict):
                    raise DataError(f"{path}:{line_no}: expected a JSON object, found {type(row).__name__}")
                rows.append((line_no, row))
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text; save the file as UTF-8") from None
    if not rows:
        raise DataError(f"{path}: empty file; expected one JSON object per line with a text and an intent")
    return rows
