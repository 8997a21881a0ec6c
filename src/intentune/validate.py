"""Data checks that find problems before training: empty texts, duplicates, conflicting labels, leakage between
splits, intents with too few examples, imbalance, and texts longer than ``max_length`` tokens.

Training data whose labels join several intents (``cancel_order+refund``, see :mod:`intentune.labels`) gets three
more findings: how many rows have several intents (an ``info`` note: ``model.multi_label = auto`` then trains a
multi-label model), intents that occur only inside combinations, and combinations that occur only once. With
combinations present, an intent's examples are the rows that contain it, and validation or test labels are
checked intent by intent.

Every finding names its rows as ``file:line``. Errors make ``intentune data validate`` exit non-zero; warnings
and notes do not.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .data import Examples
from .labels import is_combination, split_intents
from .preprocess import normalize_for_matching

ERROR, WARNING, INFO = "error", "warning", "info"


@dataclass
class Finding:
    """One problem (or, at level ``info``, a note): its level, a short code, a sentence, and the rows it concerns
    (``file:line``)."""

    level: str
    code: str
    message: str
    rows: list[str] = field(default_factory=list)


@dataclass
class ValidationReport:
    """What :func:`validate_examples` found."""

    files: dict[str, int]
    counts: dict[str, int]
    imbalance_ratio: float
    token_lengths: dict[str, float] | None
    findings: list[Finding]

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.level == ERROR]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.level == WARNING]

    def to_dict(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "intents": len(self.counts),
            "counts": self.counts,
            "imbalance_ratio": self.imbalance_ratio,
            "token_lengths": self.token_lengths,
            "num_errors": len(self.errors),
            "num_warnings": len(self.warnings),
            "findings": [asdict(f) for f in self.findings],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False)

    def to_text(self, max_rows: int = 8) -> str:
        """A summary, then each finding with up to ``max_rows`` of its rows."""
        smallest = min(self.counts, key=lambda k: self.counts[k])
        largest = max(self.counts, key=lambda k: self.counts[k])
        lines = [f"{name}: {n} rows" for name, n in self.files.items()]
        lines.append(
            f"training intents: {len(self.counts)}; examples per intent {self.counts[smallest]} ({smallest}) "
            f"to {self.counts[largest]} ({largest}); imbalance ratio {self.imbalance_ratio:.1f}"
        )
        if self.token_lengths:
            t = self.token_lengths
            lines.append(
                f"tokens per text: mean {t['mean']:.1f}, median {t['p50']:.0f}, 95th percentile {t['p95']:.0f}, "
                f"max {t['max']:.0f}; {t['over_max_length']:.0f} over max_length {t['max_length']:.0f}"
            )
        lines.append(f"{len(self.errors)} errors, {len(self.warnings)} warnings")
        for finding in self.findings:
            lines.append(f"{finding.level}: {finding.message}")
            shown = finding.rows[:max_rows]
            more = f" (+{len(finding.rows) - len(shown)} more)" if len(finding.rows) > len(shown) else ""
            if shown:
                lines.append(f"    {', '.join(shown)}{more}")
        return "\n".join(lines)


def validate_examples(
    train: Examples,
    *,
    validation: Examples | None = None,
    test: Examples | None = None,
    min_per_intent: int = 5,
    max_imbalance: float = 10.0,
    tokenizer: Any = None,
    max_length: int = 64,
    separator: str = "+",
) -> ValidationReport:
    """Check training data (and optional validation and test data) for problems.

    Args:
        train: the training rows.
        validation: validation rows, checked too and compared with training for leakage.
        test: test rows, likewise.
        min_per_intent: training intents with fewer examples get a warning (fewer than 2: an error).
        max_imbalance: a largest-to-smallest intent ratio above this gets a warning.
        tokenizer: a Hugging Face tokenizer for token-length statistics; skipped when None.
        max_length: the token limit texts are truncated to (``model.max_length``).
        separator: joins the intents of a label with several (``data.multi_label_separator``); empty makes every
            label one intent. When a training label joins several intents, ``report.counts`` and the small-intent
            and imbalance checks count an intent's examples as the rows that contain it.

    Returns:
        The report; ``report.errors`` is empty when the data can be trained on as it is.
    """
    splits = {"train": train, "validation": validation, "test": test}
    present = {name: data for name, data in splits.items() if data is not None}
    findings: list[Finding] = []
    for data in present.values():
        findings += _empty_rows(data) + _duplicates_and_conflicts(data, separator)
    findings += _leakage(present)
    combined = any(is_combination(y, separator) for data in present.values() for y in set(data.labels))
    findings += _unknown_intents(present, separator if combined else "")
    multi = any(is_combination(y, separator) for y in set(train.labels))
    sets = _intent_sets(train, separator if multi else "")
    counts = dict(sorted(Counter(intent for intents in sets for intent in intents).items()))
    findings += _small_intents(train, sets, counts, min_per_intent)
    if multi:
        findings += _combinations(train, sets, separator)
    ratio = max(counts.values()) / max(min(counts.values()), 1) if counts else 0.0
    if ratio > max_imbalance:
        findings.append(
            Finding(
                WARNING,
                "imbalance",
                f"imbalance ratio {ratio:.1f} is above {max_imbalance:g}; add examples to the smallest intents",
            )  # fmt: skip
        )
    lengths = None
    if tokenizer is not None:
        lengths, long_finding = _token_lengths(present, tokenizer, max_length)
        findings += long_finding
    order = {ERROR: 0, WARNING: 1, INFO: 2}
    findings.sort(key=lambda f: order.get(f.level, 2))
    return ValidationReport({d.source: len(d) for d in present.values()}, counts, round(ratio, 3), lengths, findings)


def _row(data: Examples, index: int) -> str:
    return f"{data.source}:{data.lines[index]}"


def _empty_rows(data: Examples) -> list[Finding]:
    findings = []
    empty_text = [_row(data, i) for i, t in enumerate(data.texts) if not t.strip()]
    empty_label = [_row(data, i) for i, label in enumerate(data.labels) if not label.strip()]
    if empty_text:
        findings.append(Finding(ERROR, "empty_text", f"{data.source}: {len(empty_text)} empty texts", empty_text))
    if empty_label:
        findings.append(Finding(ERROR, "empty_intent", f"{data.source}: {len(empty_label)} empty intents", empty_label))
    return findings


def _intent_sets(data: Examples, separator: str) -> list[tuple[str, ...]]:
    """The intents of each row: its label split at ``separator`` (order-insensitive), or the label itself when
    ``separator`` is empty; an empty label has none."""
    if not separator:
        return [(label,) if label else () for label in data.labels]
    cache = {y: split_intents(y, separator) for y in set(data.labels)}
    return [cache[y] for y in data.labels]


def _canonical(label: str, separator: str) -> str:
    """A label with the intents of a combination sorted, so ``b+a`` and ``a+b`` are one label; others as they are."""
    return separator.join(split_intents(label, separator)) if is_combination(label, separator) else label


def _duplicates_and_conflicts(data: Examples, separator: str) -> list[Finding]:
    groups: dict[str, list[int]] = defaultdict(list)
    for i, text in enumerate(data.texts):
        if text.strip():
            groups[normalize_for_matching(text)].append(i)
    findings = []
    for key, members in groups.items():
        if len(members) < 2:
            continue
        intents = sorted({_canonical(data.labels[i], separator) for i in members})
        rows = [_row(data, i) for i in members]
        if len(intents) > 1:
            message = f"{data.source}: the same text {data.texts[members[0]]!r} is labelled {', '.join(intents)}"
            findings.append(Finding(ERROR, "conflict", message, rows))
            continue
        by_text: dict[str, list[int]] = defaultdict(list)
        for i in members:
            by_text[data.texts[i]].append(i)
        for text, same in by_text.items():
            if len(same) > 1:
                message = f"{data.source}: exact duplicate {text!r} ({intents[0]}), {len(same)} times"
                findings.append(Finding(WARNING, "duplicate", message, [_row(data, i) for i in same]))
        if len(by_text) > 1:
            message = f"{data.source}: near duplicates of {key!r} ({intents[0]}) differing in case or punctuation"
            findings.append(Finding(WARNING, "near_duplicate", message, rows))
    return findings


def _leakage(present: dict[str, Examples]) -> list[Finding]:
    """Texts shared between splits: equal ignoring case and white space, then equal only once punctuation goes."""
    findings = []
    names = list(present)
    for a_pos, a in enumerate(names):
        for b in names[a_pos + 1 :]:
            exact = _shared(present[a], present[b], lambda t: " ".join(t.casefold().split()))
            loose = _shared(present[a], present[b], normalize_for_matching)
            seen = set(exact)
            loose = [pair for pair in loose if pair not in seen]
            if exact:
                rows = [f"{_row(present[a], i)} = {_row(present[b], j)}" for i, j in exact]
                message = f"{len(exact)} texts appear in both {a} and {b} (ignoring case and white space)"
                findings.append(Finding(WARNING, "leakage", message, rows))
            if loose:
                rows = [f"{_row(present[a], i)} = {_row(present[b], j)}" for i, j in loose]
                message = f"{len(loose)} more texts in both {a} and {b} differ only in punctuation"
                findings.append(Finding(WARNING, "near_leakage", message, rows))
    return findings


def _shared(a: Examples, b: Examples, key: Callable[[str], str]) -> list[tuple[int, int]]:
    """Index pairs of texts of ``a`` and ``b`` with the same key (the first of each key in ``b``)."""
    index: dict[str, int] = {}
    for j, text in enumerate(b.texts):
        if text.strip():
            index.setdefault(key(text), j)
    return [(i, index[key(t)]) for i, t in enumerate(a.texts) if t.strip() and key(t) in index]


def _unknown_intents(present: dict[str, Examples], separator: str) -> list[Finding]:
    """Validation or test intents that training lacks; with a ``separator``, compared intent by intent."""
    known = {intent for intents in _intent_sets(present["train"], separator) for intent in intents}
    findings = []
    for name, data in present.items():
        sets = _intent_sets(data, separator)
        unknown = sorted({intent for intents in sets for intent in intents} - known)
        if name != "train" and unknown:
            rows = [_row(data, i) for i, intents in enumerate(sets) if set(intents) & set(unknown)]
            message = f"{name} has intents that training lacks: {', '.join(unknown)}"
            findings.append(Finding(ERROR, "unknown_intent", message, rows))
    return findings


def _small_intents(
    train: Examples, sets: list[tuple[str, ...]], counts: dict[str, int], min_per_intent: int
) -> list[Finding]:
    findings = []
    if len(counts) < 2:
        findings.append(Finding(ERROR, "one_intent", f"{train.source}: {len(counts)} intent; a classifier needs two"))
    for intent, n in sorted(counts.items(), key=lambda kv: kv[1]):
        if n >= min_per_intent:
            break
        rows = [_row(train, i) for i, intents in enumerate(sets) if intent in intents]
        level = ERROR if n < 2 else WARNING
        message = f"intent {intent!r} has {n} training examples (fewer than {min_per_intent})"
        findings.append(Finding(level, "few_examples", message, rows))
    return findings


def _combinations(train: Examples, sets: list[tuple[str, ...]], separator: str) -> list[Finding]:
    """Notes on training rows with several intents: how many there are, intents never seen alone, and
    combinations seen once in a labelled row (a joined or generated row's label is no slip to check)."""
    multi = [i for i, intents in enumerate(sets) if len(intents) > 1]
    combos = Counter(sets[i] for i in multi)
    alone = {intents[0] for intents in sets if len(intents) == 1}
    only = sorted({intent for i in multi for intent in sets[i]} - alone)
    labelled = {sets[i] for i in multi if train.sources[i] == "real"}
    rare = sorted(combo for combo, n in combos.items() if n == 1 and combo in labelled)
    once = set(rare)
    message = (
        f"{train.source}: {len(multi)} of {len(train)} training rows have several intents "
        f"({_plural(len(combos), 'combination')}); with model.multi_label = auto (the default) training fits a "
        "multi-label model, a yes-or-no answer per intent"
    )
    findings = [Finding(INFO, "multi_intent_rows", message, [_row(train, i) for i in multi])]
    if only:
        rows = [_row(train, i) for i in multi if set(sets[i]) & set(only)]
        message = (
            f"intents that occur only in combinations, never alone: {', '.join(only)}; the model sees no message "
            "with only that intent, so add some"
        )
        findings.append(Finding(WARNING, "combination_only_intents", message, rows))
    if rare:
        names = ", ".join(separator.join(combo) for combo in rare)
        rows = [_row(train, i) for i in multi if sets[i] in once]
        occur = "occurs" if len(rare) == 1 else "occur"
        message = f"{_plural(len(rare), 'combination')} {occur} once in training: {names}; check their labels"
        message += " or add examples"
        findings.append(Finding(WARNING, "rare_combinations", message, rows))
    return findings


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _token_lengths(
    present: dict[str, Examples], tokenizer: Any, max_length: int
) -> tuple[dict[str, float], list[Finding]]:
    rows: list[str] = []
    counts: list[int] = []
    for data in present.values():
        encoded = tokenizer(list(data.texts), add_special_tokens=True, truncation=False)["input_ids"]
        for i, ids in enumerate(encoded):
            counts.append(len(ids))
            if len(ids) > max_length:
                rows.append(f"{_row(data, i)} ({len(ids)} tokens)")
    values = np.array(counts)
    stats = {
        "mean": round(float(values.mean()), 2),
        "p50": float(np.percentile(values, 50)),
        "p95": float(np.percentile(values, 95)),
        "max": float(values.max()),
        "over_max_length": float(len(rows)),
        "max_length": float(max_length),
    }
    findings = []
    if rows:
        message = f"{len(rows)} texts are longer than max_length {max_length} tokens and will be truncated"
        findings.append(Finding(WARNING, "too_long", message, rows))
    return stats, findings
