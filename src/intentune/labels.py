"""Intent labels of messages that may carry more than one intent: a label such as ``cancel_order+refund`` names
the intents joined by ``data.multi_label_separator`` (Rasa's ``intent_split_symbol`` convention).

Every reader keeps the label as the file has it; these functions turn it into intents when a model is multi-label
(``model.multi_label``). Parts are stripped, empty parts dropped and repeats counted once, and a combination is the
same whatever its order (``refund+cancel_order`` is ``cancel_order+refund``). The out-of-scope label is no intent:
a row labelled only with it has an empty set of intents.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np


def split_intents(label: str, separator: str, oos_label: str | None = None) -> tuple[str, ...]:
    """The intents of one label, sorted, without repeats or the out-of-scope label (``()`` for an out-of-scope
    row). An empty ``separator`` makes every label one intent."""
    parts = label.split(separator) if separator else [label]
    return tuple(sorted({p.strip() for p in parts if p.strip() and p.strip() != oos_label}))


def join_intents(intents: Iterable[str], separator: str, oos_label: str) -> str:
    """The label of a set of intents (sorted and joined), or ``oos_label`` for none."""
    names = sorted(set(intents))
    return separator.join(names) if names else oos_label


def is_combination(label: str, separator: str) -> bool:
    """Whether a label names more than one distinct intent."""
    return len(split_intents(label, separator)) > 1


def wants_multi_label(setting: bool | str, labels: Sequence[str], separator: str) -> bool:
    """What ``model.multi_label`` means for these training labels: its value when true or false; for ``auto``,
    whether any label names more than one intent."""
    if isinstance(setting, bool):
        return setting
    return any(is_combination(label, separator) for label in set(labels))


def intent_sets(labels: Sequence[str], separator: str, oos_label: str) -> list[tuple[str, ...]]:
    """:func:`split_intents` of every label."""
    cache = {y: split_intents(y, separator, oos_label) for y in set(labels)}
    return [cache[y] for y in labels]


def multi_hot(sets: Sequence[Iterable[str]], classes: Sequence[str]) -> np.ndarray:
    """A ``(len(sets), len(classes))`` float32 matrix with 1 where a row has the intent; intents not in
    ``classes`` are left out (a row of only such intents is all zeros)."""
    index = {c: i for i, c in enumerate(classes)}
    out = np.zeros((len(sets), len(classes)), dtype=np.float32)
    for row, intents in enumerate(sets):
        for intent in intents:
            if intent in index:
                out[row, index[intent]] = 1.0
    return out
