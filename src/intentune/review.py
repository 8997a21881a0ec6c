"""What to label next: rank unlabelled messages (a prediction log, a text file, a data file) by how much labelling
them would teach the model, and write them as a CSV queue to label.

Each message gets an informativeness score from one pass of the model (calibrated probabilities, the answer after
rejection, the pooled vector):

    score = (1 - margin) + REJECTED_WEIGHT * rejected + DISAGREE_WEIGHT * disagree

where ``margin`` is the difference between the two highest calibrated probabilities, ``rejected`` is 1 when the
model answered out of scope, and ``disagree`` is 1 when a second model (another version, or the same folder in
another runtime) answers with a different intent.

Before ranking, messages that match ignoring case, accents and punctuation (``normalize_for_matching``) are
counted once, and messages already in the model's data (the run folder's training, validation and test rows) or
in ``exclude`` files are dropped. The queue is then picked by score-weighted k-center greedy on the pooled vectors
(L2-normalised; cosine distance ``d = 1 - cos``):

1. the first pick is the message with the highest score;
2. each next pick is the message with the highest ``score * d_nearest``, where ``d_nearest`` is its distance to
   the nearest message already picked, among messages whose cosine similarity to every picked one is below
   ``max_similarity`` (near-duplicates of a picked message are never picked);
3. picking stops after ``n`` messages or when no message is left.

So an uncertain message far from everything picked comes before an equally uncertain one next to a picked
message, and the queue spreads over the embedding space instead of repeating one confusion. The queue is written
in pick order, with an empty intent column to fill in; the filled file is training data
(:func:`intentune.data.load_examples` reads the text and intent columns and ignores the others).
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ._io import write_file_atomic
from .data import load_examples
from .errors import DataError
from .messages import (
    Messages,
    Scored,
    load_scoring_model,
    match_key,
    model_data_fields,
    read_messages,
    score_messages,
    unit_rows,
    usable,
)

logger = logging.getLogger(__name__)

REJECTED_WEIGHT = 0.5  # an out-of-scope answer: a new intent, an unclear message, or a threshold set too strict
DISAGREE_WEIGHT = 1.0  # two models disagree: at least one of them is wrong
DEFAULT_MAX_SIMILARITY = 0.95  # pooled vectors closer than this (cosine) count as near-duplicates
QUEUE_COLUMNS = ("predicted_intent", "confidence", "reason", "score", "count")


@dataclass
class ReviewResult:
    """What :func:`review_messages` picked and why.

    Attributes:
        rows: the queue in pick order; each dict has ``text``, ``predicted_intent``, ``confidence``, ``reason``,
            ``score`` and ``count``.
        read: messages read, repeats included.
        unique: distinct messages among them.
        known: distinct messages left out because the model's data or an ``exclude`` file has them.
        unusable: distinct messages left out because they are empty after the model's preprocessing.
        output: the CSV written, if any.
        notes: lines for the reader (why the queue is empty).
    """

    rows: list[dict[str, Any]]
    read: int
    unique: int
    known: int
    unusable: int = 0
    output: Path | None = None
    notes: list[str] = field(default_factory=list)

    def to_text(self) -> str:
        """A few lines for the command line: the counts, and the first rows of the queue."""
        lines = [
            f"{self.read} messages read, {self.unique} distinct; {self.known} already labelled"
            + (f", {self.unusable} empty after preprocessing" if self.unusable else "")
            + f"; {len(self.rows)} in the queue",
            *self.notes,
        ]
        for row in self.rows[:10]:
            lines.append(f"  {row['score']:.3f}  {row['reason']:<40}  {_short(row['text'])}")
        if len(self.rows) > 10:
            lines.append(f"  ... ({len(self.rows) - 10} more)")
        return "\n".join(lines)


def informativeness(scored: Scored, other_answers: Sequence[str] | None = None) -> np.ndarray:
    """The score of each message (see the module docstring): ``(1 - margin) + REJECTED_WEIGHT * rejected +
    DISAGREE_WEIGHT * disagree``."""
    score = 1.0 - scored.margins + REJECTED_WEIGHT * scored.rejected.astype(float)
    if other_answers is not None:
        disagree = np.array([a != b for a, b in zip(scored.answers, other_answers)], dtype=float)
        score = score + DISAGREE_WEIGHT * disagree
    return score


def select_diverse(
    vectors: np.ndarray, scores: np.ndarray, n: int, *, max_similarity: float = DEFAULT_MAX_SIMILARITY
) -> list[int]:
    """Score-weighted k-center greedy (see the module docstring): up to ``n`` positions, in pick order.

    Args:
        vectors: ``(m, hidden)`` pooled vectors (normalised here).
        scores: ``(m,)`` informativeness, 0 or more.
        n: how many to pick.
        max_similarity: a message whose cosine similarity to a picked one reaches this is never picked.
    """
    if len(scores) == 0 or n <= 0:
        return []
    unit = unit_rows(vectors)
    scores = np.asarray(scores, dtype=np.float64)
    picked = [int(np.argmax(scores))]
    nearest = 1.0 - unit @ unit[picked[0]]  # (m,) cosine distance to the nearest picked message
    limit = 1.0 - max_similarity
    while len(picked) < n:
        eligible = nearest > limit
        eligible[picked] = False
        if not eligible.any():
            break
        priority = np.where(eligible, scores * np.clip(nearest, 0.0, 2.0), -1.0)
        best = int(np.argmax(priority))
        picked.append(best)
        nearest = np.minimum(nearest, 1.0 - unit @ unit[best])
    return picked


def labelled_keys(
    model_dir: str | Path, extra_files: Sequence[str | Path] = (), *, own_data: bool = True
) -> tuple[set[str], set[str]]:
    """What counts as already labelled for a model: the :func:`match_key` of every text in ``extra_files`` and,
    with ``own_data``, in the model's data files (those the run folder's ``manifest.json`` and the model's config
    name, and the run folder's ``splits/``), plus the ids (``row_id``) of the run's split rows, which find exact
    repeats when a data file has moved since training.

    Returns:
        ``(keys, row ids)``.

    Raises:
        DataError: if an ``extra_files`` file cannot be read.
    """
    from .folder import read_metadata, resolve_model_dir

    directory = resolve_model_dir(model_dir)
    data = read_metadata(directory).get("config", {}).get("data", {})
    text_field, label_field = model_data_fields(directory)
    keys = {match_key(t) for path in extra_files for t in read_messages(path, text_field=text_field)}
    if not own_data:
        return keys, set()
    manifest = _manifest(directory.parent)
    paths = [info.get("path") for info in manifest.get("data_files", {}).values()]
    paths += [data.get(key) for key in ("train_file", "validation_file", "test_file")]
    paths += sorted((directory.parent / "splits").glob("*.csv")) if manifest else []
    for path in dict.fromkeys(p for p in paths if p):
        if not Path(path).is_file():
            logger.info("%s: not found; its rows are recognised by their ids in manifest.json only", path)
            continue
        try:
            found = load_examples(path, text_field=text_field, label_field=label_field, strict=False).texts
        except DataError as exc:
            logger.warning("%s", exc)
            continue
        keys.update(match_key(t) for t in found)
    ids = {i for split in manifest.get("splits", {}).values() for i in split.get("row_ids", [])}
    return keys, ids


def _manifest(run: Path) -> dict[str, Any]:
    """The run folder's ``manifest.json``, or ``{}`` when the model folder is not inside a run folder."""
    path = run / "manifest.json"
    if not path.is_file():
        return {}
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        logger.warning("%s: unreadable; the texts already labelled are found from the model's config only", path)
        return {}
    return manifest if isinstance(manifest, dict) else {}


def is_labelled(text: str, keys: set[str], ids: set[str], labels: Sequence[str]) -> bool:
    """Whether ``text`` matches a labelled text: its key is in ``keys``, or it is, exactly, a row of ``ids``
    under one of ``labels``."""
    from .manifest import row_id

    return match_key(text) in keys or (bool(ids) and any(row_id(text, label) in ids for label in labels))


def review_messages(
    source: str | Path,
    model_dir: str | Path,
    output: str | Path | None = None,
    *,
    n: int = 200,
    compare_model: str | Path | None = None,
    runtime: str = "auto",
    compare_runtime: str = "auto",
    exclude: Sequence[str | Path] = (),
    text_field: str | None = None,
    max_similarity: float = DEFAULT_MAX_SIMILARITY,
    use_training_data: bool = True,
) -> ReviewResult:
    """Rank unlabelled messages by what labelling them would teach the model; write the queue as CSV.

    Args:
        source: the messages (see :func:`read_messages`).
        model_dir: the model (or its run folder).
        output: the CSV to write (atomically); None writes nothing.
        n: the queue's length at most.
        compare_model: a second model (or the same folder, with another ``compare_runtime``); messages the two
            answer differently score higher.
        runtime, compare_runtime: the runtimes of the two models (:func:`intentune.inference.load_predictor`).
        exclude: files of texts that count as labelled too (any :func:`read_messages` format).
        text_field: the text field of ``source``; default: the model's ``data.text_field``.
        max_similarity: the near-duplicate threshold on the cosine similarity of pooled vectors.
        use_training_data: leave out messages in the model's own data files (the run folder's).

    Returns:
        The queue and its counts.

    Raises:
        DataError: if the source has no messages.
        ModelError: if a model folder cannot be loaded.
        ConfigError: for an unknown runtime.
    """
    if n < 1:
        raise DataError(f"the queue's length must be 1 or more, found {n}")
    fields = model_data_fields(model_dir)
    texts = read_messages(source, text_field=text_field or fields[0])
    labelled = labelled_keys(model_dir, exclude, own_data=use_training_data)
    predictor = load_scoring_model(model_dir, runtime)
    other = load_scoring_model(compare_model, compare_runtime) if compare_model is not None else None
    result = build_queue(predictor, texts, n=n, labelled=labelled, other=other, max_similarity=max_similarity)
    if output is not None:
        write_queue(result.rows, output, text_field=fields[0], label_field=fields[1])
        result.output = Path(output)
    return result


def build_queue(
    predictor: Any,
    texts: Sequence[str],
    *,
    n: int = 200,
    labelled: tuple[set[str], set[str]] = (set(), set()),
    other: Any = None,
    max_similarity: float = DEFAULT_MAX_SIMILARITY,
) -> ReviewResult:
    """The queue of :func:`review_messages` from loaded models and read messages.

    Args:
        predictor: the model (:func:`~intentune.messages.load_scoring_model`).
        texts: the messages, repeats included.
        n: the queue's length at most.
        labelled: ``(keys, row ids)`` of texts already labelled (:func:`labelled_keys`).
        other: a second model to compare answers with, or None.
        max_similarity: the near-duplicate threshold on the cosine similarity of pooled vectors.
    """
    messages = Messages.group(texts)
    keys, ids = labelled
    labels = [*predictor.classes_, predictor.config.oos.label]
    fresh = [i for i, text in enumerate(messages.texts) if not is_labelled(text, keys, ids, labels)]
    kept = [fresh[i] for i in usable(predictor, [messages.texts[j] for j in fresh])]
    candidates = messages.subset(kept)
    result = ReviewResult(
        [], messages.read, len(messages.texts), len(messages.texts) - len(fresh), len(fresh) - len(kept)
    )
    if not candidates.texts:
        result.notes.append("nothing to review: every message is already labelled or empty after preprocessing")
        return result
    scored = score_messages(predictor, candidates.texts)
    answers = score_messages(other, candidates.texts).answers if other is not None else None
    scores = informativeness(scored, answers)
    picks = select_diverse(scored.vectors, scores, n, max_similarity=max_similarity)
    result.rows = [queue_row(candidates, scored, scores, answers, i) for i in picks]
    return result


def queue_row(
    messages: Messages, scored: Scored, scores: np.ndarray, other: Sequence[str] | None, i: int
) -> dict[str, Any]:
    """The queue's row for message ``i``: text, prediction, confidence, why it was chosen, score, count."""
    reasons = []
    if other is not None and other[i] != scored.answers[i]:
        reasons.append(f"models disagree: {scored.answers[i]} vs {other[i]}")
    if scored.rejected[i]:
        reasons.append("out of scope")
    reasons.append(f"margin {scored.margins[i]:.2f}")
    return {
        "text": messages.texts[i],
        "predicted_intent": scored.answers[i],
        "confidence": round(float(scored.confidences[i]), 4),
        "reason": "; ".join(reasons),
        "score": round(float(scores[i]), 4),
        "count": messages.counts[i],
    }


def write_queue(rows: Sequence[dict[str, Any]], path: str | Path, *, text_field: str, label_field: str) -> None:
    """Write the queue as CSV (atomically): the text column, :data:`QUEUE_COLUMNS`, and an empty ``label_field``
    column to fill in. Texts are written as they came; a spreadsheet may read a text starting with ``=`` as a
    formula."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([text_field, *QUEUE_COLUMNS, label_field])
    for row in rows:
        writer.writerow([row["text"], *(row[c] for c in QUEUE_COLUMNS), ""])
    write_file_atomic(path, buffer.getvalue())


def _short(text: str, width: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."
