"""The old training rows a continued run replays (``intentune train --init-from``).

Where a run keeps the rows its model trained on and validated on (:data:`TRAIN_SPLIT`, :data:`VALIDATION_SPLIT`,
:func:`save_run_rows`), how they are found, also for runs written before those files (:func:`find_run_rows`),
the seeded per-intent sample drawn from them (:func:`sample_replay`) and the record of what a run replayed
(:class:`Replay`). :mod:`intentune.extend` uses them to start a new model from an old one.
"""

from __future__ import annotations

import csv
import io
import json
import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._io import write_file_atomic
from .data import Examples, load_examples
from .preprocess import normalize_for_matching

TRAIN_SPLIT = Path("splits") / "train.csv"  # in a run folder: the rows its model trained on (what replay reads)
VALIDATION_SPLIT = Path("splits") / "validation.csv"  # in a run folder: its validation rows, never trained on
SPLIT_FILES = {"train": TRAIN_SPLIT, "validation": VALIDATION_SPLIT}


@dataclass
class Replay:
    """The old training rows mixed into a run: how many, of which intents, from where."""

    rows: int
    per_intent: dict[str, int]
    source: str | None
    requested_per_intent: int
    validation_rows: int = 0  # the old run's validation rows in the new run's validation set
    validation_source: str | None = None
    resampled: bool = False  # ``rows`` is every old row, of which each epoch draws requested_per_intent per intent

    def to_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "intents": len(self.per_intent), "source": self.source,
                "replay_per_intent": self.requested_per_intent, "resampled_each_epoch": self.resampled,
                "validation_rows": self.validation_rows, "validation_source": self.validation_source}  # fmt: skip


def find_run_rows(run_dir: Path, split: str, text_field: str, label_field: str) -> tuple[Examples | None, str | None]:
    """The rows a run trained on (``split="train"``) or validated on (``"validation"``): its ``splits/`` file; for
    runs written before that file, the data file its ``manifest.json`` names for the split (the training file for
    rows split off it), when that file's hash is unchanged, less the rows of the other split.

    Returns:
        ``(rows, where they were read from)``, or ``(None, None)``.
    """
    from .manifest import file_sha256, row_id

    saved = run_dir / SPLIT_FILES[split]
    if saved.is_file():
        return load_examples(saved), str(saved)
    try:
        manifest = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
        files = manifest["data_files"]
        recorded = files[split] if split in files else files["train"]
        if file_sha256(recorded["path"]) != recorded["sha256"]:
            return None, None
    except (OSError, ValueError, KeyError, TypeError):
        return None, None
    rows = load_examples(recorded["path"], text_field=text_field, label_field=label_field)
    ids = set(manifest.get("splits", {}).get(split, {}).get("row_ids", []))
    if ids:
        rows = rows.subset([i for i, (t, y) in enumerate(zip(rows.texts, rows.labels)) if row_id(t, y) in ids])
    return rows, recorded["path"]


def sample_replay(
    pool: Examples, intents: Sequence[str], per_intent: int, seed: int, skip_texts: Sequence[str] = ()
) -> Examples:
    """Up to ``per_intent`` rows of each of ``intents`` from ``pool``, drawn with ``random.Random(seed)``; rows of
    other intents, and rows whose text matches one of ``skip_texts`` ignoring case and punctuation, are left out.
    Rows keep their order in ``pool`` within each intent; intents come in sorted order."""
    skip = {normalize_for_matching(t) for t in skip_texts}
    wanted = set(intents)
    by_intent: dict[str, list[int]] = defaultdict(list)
    for i, (text, label) in enumerate(zip(pool.texts, pool.labels)):
        if label in wanted and normalize_for_matching(text) not in skip:
            by_intent[label].append(i)
    rng = random.Random(seed)
    chosen: list[int] = []
    for intent in sorted(by_intent):
        rows = by_intent[intent]
        chosen += rows if len(rows) <= per_intent else sorted(rng.sample(rows, per_intent))
    return pool.subset(chosen)


def save_run_rows(rows: Examples, run_dir: Path, split: str) -> None:
    """Write the rows a run trains on (``split="train"``) or validates on (``"validation"``) to its ``splits/``
    file (atomically), where :func:`find_run_rows` finds them later."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["text", "intent"])
    writer.writerows(zip(rows.texts, rows.labels))
    write_file_atomic(run_dir / SPLIT_FILES[split], buffer.getvalue())


__all__ = [
    "TRAIN_SPLIT",
    "VALIDATION_SPLIT",
    "Replay",
    "SPLIT_FILES",
    "find_run_rows",
    "sample_replay",
    "save_run_rows",
]
