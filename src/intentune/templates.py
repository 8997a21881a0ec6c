"""Template expansion: training rows made by filling patterns with slot values.

Templates are a small YAML spec per intent. Quote every pattern, and any slot value holding ``#``: in YAML an
unquoted ``{`` opens a mapping inside ``[...]`` or at the start of a value, and `` #`` starts a comment.

```yaml
max_per_intent: 50          # cap per intent (optional; default 100)
slots:                      # values shared by every intent
  product: [TrailRunner 3, AeroBrew Mini]
intents:
  order_status:
    patterns:
      - "where is my order {order_id}"
      - "has {order_id} shipped yet"
    slots:
      order_id: ["#48213", "order 99120"]
  product_info:
    patterns: ["do you have the {product} in {colour}"]
    slots: {colour: [red, blue]}
```

Every row made here carries ``source = "template"``.
"""

from __future__ import annotations

import itertools
import math
import random
import re
from pathlib import Path
from typing import Any

from .data import Examples
from .errors import DataError

_SLOT = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def load_templates(path: str | Path) -> dict[str, Any]:
    """Read and check a template spec (see the module docstring).

    Raises:
        DataError: for invalid YAML, a missing ``intents`` table, an empty pattern list, or a pattern that
            uses a slot with no values.
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise DataError(f"{path}{f':{mark.line + 1}' if mark else ''}: not valid YAML") from None
    if not isinstance(spec, dict) or not isinstance(spec.get("intents"), dict) or not spec["intents"]:
        raise DataError(f"{path}: expected a table 'intents:' mapping each intent to its patterns and slots")
    shared = spec.get("slots") or {}
    for intent, body in spec["intents"].items():
        patterns = body.get("patterns") if isinstance(body, dict) else None
        if not isinstance(patterns, list) or not patterns:
            raise DataError(f"{path}: intent {intent!r} needs a non-empty 'patterns' list")
        slots = {**shared, **(body.get("slots") or {})}
        for pattern in patterns:
            for name in _SLOT.findall(str(pattern)):
                values = slots.get(name)
                if not isinstance(values, list) or not values:
                    raise DataError(
                        f"{path}: intent {intent!r}, pattern {pattern!r}: slot {{{name}}} has no values; "
                        f"add '{name}: [...]' under the intent's or the top-level 'slots'"
                    )
    return spec


def expand_templates(spec: dict[str, Any], *, seed: int = 13, max_per_intent: int | None = None) -> Examples:
    """Fill every pattern with slot values: all combinations, or a seeded sample of ``max_per_intent`` of them.

    Returns:
        Rows with ``source = "template"``, intents in spec order, no duplicate texts within an intent.
    """
    rng = random.Random(seed)
    cap = max_per_intent or int(spec.get("max_per_intent", 100))
    shared = spec.get("slots") or {}
    out = Examples([], [], [], "templates")
    for intent, body in spec["intents"].items():
        slots = {**shared, **(body.get("slots") or {})}
        texts = _fill(body["patterns"], slots, cap, rng)
        out.extend(Examples(texts, [intent] * len(texts), sources=["template"] * len(texts)))
    return out


def _fill(patterns: list[str], slots: dict[str, list[Any]], cap: int, rng: random.Random) -> list[str]:
    combos = []  # (pattern, slot names, value lists), lazily expanded
    total = 0
    for pattern in patterns:
        names = list(dict.fromkeys(_SLOT.findall(str(pattern))))
        values = [[str(v) for v in slots[n]] for n in names]
        combos.append((str(pattern), names, values))
        total += math.prod(len(v) for v in values)
    if total <= cap:
        chosen = [(p, n, c) for p, n, v in combos for c in itertools.product(*v)]
    else:  # sample distinct combinations without listing them all
        seen: set[tuple[int, tuple[int, ...]]] = set()
        chosen = []
        while len(chosen) < cap and len(seen) < total:
            k = rng.randrange(len(combos))
            pattern, names, values = combos[k]
            picks = tuple(rng.randrange(len(v)) for v in values)
            if (k, picks) not in seen:
                seen.add((k, picks))
                chosen.append((pattern, names, tuple(values[i][j] for i, j in enumerate(picks))))
    texts: list[str] = []
    for pattern, names, combo in chosen:
        filled = _SLOT.sub(lambda m, d=dict(zip(names, combo)): d[m.group(1)], pattern)
        text = " ".join(filled.split())
        if text not in texts:
            texts.append(text)
    return texts[:cap]
