"""Two-intent training rows made from single-intent ones (``intentune data join``).

A multi-label model learns to answer two intents from rows that carry two; one trained on single-intent rows alone
rarely fires twice. Few teams have such rows labelled, so they can be made: two single-intent messages of different
intents joined into one ("where is my order, and i want a refund"), labelled with both intents
(``ask_status+refund``). Optional groups of intents (an intent -> group mapping, CLINC150's domains say) keep
intents of one group from being joined, where a joined message of two near intents would teach little.

Rows are drawn uniformly, so an intent is joined about as often as it has rows. Joined rows carry
``source = "joined"``: like other synthetic rows they only ever train (:func:`intentune.data.split_examples`), so a
validation set gets its own joined rows from its own messages, and no message appears on both sides.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

from .data import Examples
from .errors import ConfigError, DataError
from .labels import join_intents, split_intents

JOINED = "joined"  # the source of a joined row
DEFAULT_CONNECTORS = (", and ", " and ", ". Also, ")  # several: a model that saw one leans on it (RESULTS.md)
MAX_DRAWS_PER_ROW = 50  # draws allowed per wanted row before the rows are called too few to join that many


def join_intent_pairs(
    examples: Examples,
    count: int,
    *,
    groups: Mapping[str, str] | None = None,
    connectors: Sequence[str] = DEFAULT_CONNECTORS,
    seed: int = 0,
    separator: str = "+",
    oos_label: str = "oos",
) -> Examples:
    """``count`` messages, each two single-intent rows of ``examples`` joined as ``A + connector + B``
    (:func:`join_texts`).

    Two rows are drawn at a time (uniformly, seeded) from the rows that name one intent (out-of-scope rows and
    combinations take no part) and kept when their intents differ, or with ``groups`` their groups; the connector
    is drawn from ``connectors`` (the one there is, without a draw). A text that repeats an earlier joined text
    or one of ``examples`` (ignoring case and punctuation) is drawn again. Labels join the two intents in sorted
    order with ``separator`` (``refund+track_order``).

    Args:
        groups: intent -> group; every intent of the rows must have one.
        connectors: what goes between the two messages, spaces included (``" y "`` for Spanish data); one is drawn
            per row.

    Raises:
        ConfigError: for a count below 1, no connector, or an empty separator (a label could not name two intents).
        DataError: when the rows have fewer than two intents (or groups) to join, an intent has no group, or they
            cannot make ``count`` distinct messages.
    """
    from .preprocess import normalize_for_matching

    if count < 1:
        raise ConfigError(f"count must be at least 1, found {count}")
    if not connectors or any(not c for c in connectors):
        raise ConfigError("connectors must be non-empty strings, for example ', and '")
    if not separator:
        raise ConfigError("data.multi_label_separator is empty, so a label cannot name two intents; set it (say '+')")
    rows = [(text, intents[0]) for text, label in zip(examples.texts, examples.labels)
            if len(intents := split_intents(label, separator, oos_label)) == 1]  # fmt: skip
    group_of = _group_map({intent for _, intent in rows}, groups, examples.source)
    sizes = Counter(group_of[intent] for _, intent in rows)
    if len(sizes) < 2:
        what = "groups" if groups is not None else "intents"
        found = len(sizes)
        raise DataError(f"{examples.source}: joining needs single-intent rows of two {what} or more, found {found}")
    possible = len(rows) ** 2 - sum(n * n for n in sizes.values())  # ordered pairs of rows from different groups
    if count > possible:
        raise DataError(f"{examples.source}: these rows make at most {possible} joined messages; ask for fewer")
    rng = random.Random(seed)
    seen = {normalize_for_matching(text) for text in examples.texts}
    texts: list[str] = []
    labels: list[str] = []
    for _ in range(MAX_DRAWS_PER_ROW * count + 1000):
        if len(texts) == count:
            break
        (a, x), (b, y) = rng.sample(rows, 2)
        if group_of[x] == group_of[y]:
            continue
        connector = connectors[0] if len(connectors) == 1 else rng.choice(connectors)
        text = join_texts(a, connector, b)
        key = normalize_for_matching(text)
        if key in seen:
            continue
        seen.add(key)
        texts.append(text)
        labels.append(join_intents((x, y), separator, oos_label))
    if len(texts) < count:
        found = len(texts)
        raise DataError(f"{examples.source}: found only {found} distinct joined messages of {count}; ask for fewer")
    return Examples(texts, labels, source=f"{examples.source} (joined)", sources=[JOINED] * count)


def join_texts(first: str, connector: str, second: str) -> str:
    """``first + connector + second``, with the first message's closing punctuation made to fit a connector that
    opens with a mark: a full stop gives way to it ("by Saturday." -> "by Saturday, and ..."), a question or
    exclamation mark stays and the connector's mark goes ("still pending? and ...")."""
    first = first.rstrip()
    if connector[:1] in ",.;:" and first[-1:] in ".?!":
        if first.endswith("."):
            first = first.rstrip(".")
        else:
            connector = " " + connector[1:].lstrip()
    return f"{first}{connector}{second.strip()}"


def load_groups(path: str | Path) -> dict[str, str]:
    """Intent groups from a JSON or YAML file mapping each group to its intents (``{"banking": ["balance",
    "transfer"], ...}``, the layout of CLINC150's ``domains.json``), as intent -> group.

    Raises:
        DataError: for a missing or unreadable file, another layout, or an intent in two groups.
    """
    import yaml

    path = Path(path)
    try:
        raw = path.read_text(encoding="utf-8")
        loaded = yaml.safe_load(raw) if path.suffix.lower() in (".yml", ".yaml") else json.loads(raw)
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError) as exc:
        raise DataError(f"{path}: cannot read intent groups ({str(exc).splitlines()[0]})") from None
    if not isinstance(loaded, dict) or not all(
        isinstance(intents, list) and all(isinstance(i, str) for i in intents) for intents in loaded.values()
    ):
        raise DataError(f"{path}: expected a mapping of each group to a list of its intents")
    group_of: dict[str, str] = {}
    for group, intents in loaded.items():
        for intent in intents:
            if group_of.setdefault(intent, str(group)) != str(group):
                raise DataError(f"{path}: intent {intent!r} is in two groups, {group_of[intent]!r} and {group!r}")
    return group_of


def _group_map(intents: set[str], groups: Mapping[str, str] | None, source: str) -> dict[str, str]:
    """Each intent's group: its own name without ``groups``."""
    if groups is None:
        return {intent: intent for intent in intents}
    missing = sorted(intents - set(groups))
    if missing:
        shown = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
        raise DataError(f"{source}: intents without a group: {shown}; add them to the groups file")
    return {intent: groups[intent] for intent in intents}
