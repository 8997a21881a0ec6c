"""Unlabelled messages from production, the input of ``intentune review`` (:mod:`intentune.review`) and
``intentune discover`` (:mod:`intentune.discover`): read them (a prediction log, a text file, a data file), count
repeats once, and score them with a model in one pass (calibrated probabilities, the answer after rejection, the
pooled vectors).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .batch import read_chunks
from .data import load_examples
from .errors import DataError, ModelError
from .formats import check_data_file
from .preprocess import clean_text, normalize_for_matching

logger = logging.getLogger(__name__)

MESSAGE_KINDS = "prediction log (.jsonl), .csv, .txt (one message per line), .yml or .json"


@dataclass
class Scored:
    """One pass of a model over messages.

    Attributes:
        probs: calibrated probabilities ``(n, len(classes))``.
        answers: the answered intent of each message (the out-of-scope label when rejected).
        confidences: the top calibrated probability ``(n,)``.
        rejected: whether each answer is out of scope ``(n,)``.
        vectors: the pooled vectors the dense layer reads ``(n, hidden)``.
        margins: the difference between the two highest probabilities ``(n,)`` (1 with one intent).
    """

    probs: np.ndarray
    answers: list[str]
    confidences: np.ndarray
    rejected: np.ndarray
    vectors: np.ndarray
    margins: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        # The difference between the two highest probabilities of each message (1 with one intent).
        if self.probs.shape[1] < 2:
            self.margins = np.ones(len(self.probs))
        else:
            top2 = np.sort(self.probs, axis=1)[:, -2:]
            self.margins = top2[:, 1] - top2[:, 0]


@dataclass
class Messages:
    """Unlabelled messages, each counted once: the first spelling seen of each ``normalize_for_matching`` key.

    Attributes:
        texts: the distinct messages, in order of first appearance.
        counts: how often each appeared (spellings that match ignoring case, accents and punctuation count together).
        read: the number of messages read, repeats included.
    """

    texts: list[str]
    counts: list[int]
    read: int

    @classmethod
    def group(cls, texts: Sequence[str]) -> Messages:
        """Count repeats of ``texts`` (see the class docstring)."""
        index: dict[str, int] = {}
        unique: list[str] = []
        counts: list[int] = []
        for text in texts:
            key = match_key(text)
            if key in index:
                counts[index[key]] += 1
            else:
                index[key] = len(unique)
                unique.append(text)
                counts.append(1)
        return cls(unique, counts, len(texts))

    def subset(self, keep: Sequence[int]) -> Messages:
        """The messages at ``keep``, in that order (``read`` unchanged)."""
        return Messages([self.texts[i] for i in keep], [self.counts[i] for i in keep], self.read)


def match_key(text: str) -> str:
    """The key duplicates are found by: :func:`~intentune.preprocess.normalize_for_matching`, or the stripped text
    when nothing is left of it (a message of punctuation only)."""
    return normalize_for_matching(text) or text.strip()


def read_messages(path: str | Path, *, text_field: str = "text") -> list[str]:
    """Read unlabelled messages, in file order, repeats kept.

    ``.jsonl``/``.ndjson`` files are read as a prediction log (:func:`intentune.serve.predlog.read_prediction_log`:
    its rotated files too, oldest first, and a last line cut short skipped), or any JSON lines with a text field;
    ``.csv`` row by row from ``text_field``; ``.yml``/``.yaml`` (Rasa NLU) and ``.json`` (CLINC150 layout) through
    :func:`intentune.data.load_examples`; anything else is plain text, one message per non-blank line. Log lines
    that hold only a hash of their text (``serve.log_texts = false``) are skipped.

    Raises:
        DataError: if the file is missing, unreadable, lacks the text field, or holds no message.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        texts = _log_texts(path, text_field)
    else:
        check_data_file(path, kinds=MESSAGE_KINDS)
        if suffix == ".csv":
            texts = [str(row[text_field]) for chunk in read_chunks(path, text_field) for _, row in chunk]
        elif suffix in (".yml", ".yaml", ".json"):
            texts = load_examples(path, text_field=text_field, strict=False).texts
        else:
            try:
                texts = path.read_text(encoding="utf-8-sig").splitlines()
            except UnicodeDecodeError:
                raise DataError(f"{path}: not UTF-8 text; save the file as UTF-8") from None
    texts = [t.strip() for t in texts if t.strip()]
    if not texts:
        raise DataError(f"{path}: no messages found; give a {MESSAGE_KINDS} file with at least one text")
    return texts


def _log_texts(path: Path, text_field: str) -> list[str]:
    """The texts of a prediction log (or other JSON lines); rows with only ``text_sha256`` are skipped."""
    from .serve.predlog import read_prediction_log

    texts, hashed = [], 0
    for row in read_prediction_log(path):
        value = row.get(text_field)
        if value is None and "text_sha256" in row:
            hashed += 1
            continue
        if not isinstance(value, str):
            found = ", ".join(map(str, row)) or "none"
            what = f"no text field {text_field!r} (fields found: {found})" if value is None else (
                f"a {type(value).__name__} in field {text_field!r}")  # fmt: skip
            raise DataError(f"{path}: a row has {what}; set --text-field")
        texts.append(value)
    if hashed and not texts:
        raise DataError(f"{path}: the log holds hashes of its texts only (serve.log_texts = false); nothing to read")
    if hashed:
        logger.warning("%s: %d lines hold only a hash of their text (serve.log_texts = false) and are skipped",
                       path, hashed)  # fmt: skip
    return texts


def model_data_fields(model_dir: str | Path) -> tuple[str, str]:
    """The ``data.text_field`` and ``data.label_field`` a model was trained with, read from its folder without
    loading it (so a bad input file is reported before the model loads).

    Raises:
        ModelError: if the folder is not an intentune model folder.
    """
    from .folder import read_metadata, resolve_model_dir

    data = read_metadata(resolve_model_dir(model_dir)).get("config", {}).get("data", {})
    return data.get("text_field", "text"), data.get("label_field", "intent")


def load_scoring_model(model_dir: str | Path, runtime: str = "auto") -> Any:
    """A model loaded for :func:`score_messages` (:func:`intentune.inference.load_predictor`), checked to give
    pooled vectors.

    Raises:
        ModelError: if the folder is not a model, or its ONNX export has no ``pooled`` output.
    """
    from .inference import load_predictor

    predictor = load_predictor(model_dir, runtime=runtime)
    session = getattr(predictor.runner_, "session", None)
    if session is not None and "pooled" not in {o.name for o in session.get_outputs()}:
        raise ModelError(
            f"the ONNX export of {model_dir} has no 'pooled' output; export it again "
            f"(`intentune export {model_dir} --format onnx`) or use --runtime torch"
        )
    return predictor


def usable(predictor: Any, texts: Sequence[str]) -> list[int]:
    """The positions of ``texts`` that the model's preprocessing (``data.lowercase``,
    ``data.remove_special_chars``) leaves non-empty."""
    dcfg = predictor.config.data
    return [
        i
        for i, text in enumerate(texts)
        if clean_text(text, lowercase=dcfg.lowercase, remove_special_chars=dcfg.remove_special_chars).strip()
    ]


def score_messages(predictor: Any, texts: Sequence[str], *, batch_size: int | None = None) -> Scored:
    """Probabilities, answers (with the model's rejection) and pooled vectors of ``texts`` in one pass."""
    from .evaluate.calibration import softmax
    from .evaluate.oos import apply_rejection

    logits, vectors = predictor.forward(list(texts), batch_size=batch_size, pooled=True)
    probs = softmax(logits, getattr(predictor, "temperature_", 1.0))
    distance = getattr(predictor, "distance_", None)
    distances = distance.distances(vectors) if distance is not None else None
    answers, confidences, rejected = apply_rejection(
        predictor.classes_, probs, predictor.thresholds, predictor.config.oos.label, distances
    )
    if vectors is None:  # no text to score
        vectors = np.zeros((len(texts), 0), dtype=np.float32)
    return Scored(probs, answers, np.asarray(confidences), np.asarray(rejected, dtype=bool), vectors)


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Each row divided by its length (rows of length 0 stay 0)."""
    vectors = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1.0)
