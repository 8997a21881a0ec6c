"""Data doctor: rows whose label is probably wrong, and intents that overlap, found from out-of-fold probabilities
(each row scored by a model that never saw it).

Out-of-fold probabilities come one of two ways:

- ``embeddings`` (default, fast): sentence vectors from a frozen backbone (tokenized and pooled as the classifier
  does it, by ``model.pooling``: ``auto`` is mean for encoders, the last token of the wrapped text for decoders;
  L2-normalised), then a scikit-learn logistic regression in stratified k-fold.
- ``finetune``: :func:`intentune.crossval.cross_validate` with the given config (k fine-tunes; slow, but it
  sees the data the way the real model will).

The rule for a suspect row (given intent ``i``, out-of-fold probabilities ``p``): let ``s`` be the most probable
other intent. The row is a suspect when ``p[s] > p[i]``, i.e. the held-out model prefers another intent (cleanlab's
``predicted_neq_given``), by at least 0.0001 (the precision the margin is reported with); suspects are ranked by the
margin ``p[s] - p[i]``, largest first (cleanlab's normalised-margin ranking). A suspect is also marked ``confident``
when ``p[s]`` reaches the suggested intent's threshold ``t[s]``, the mean probability that the rows labelled ``s``
get for ``s``: such a row lies off the diagonal of the confident joint of confident learning (Northcutt, Jiang and
Chuang, JAIR 2021) and is the strongest kind of suspect.

Overlapping intents are pairs whose rows the out-of-fold predictions mix up: the count each way, the rate each
way (over the true intent's rows) and the share of both intents' rows that went to the other one.

The findings and their files are :mod:`intentune.doctor_report` (whose classes this module also exports).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .config import Config
from .data import Examples
from .doctor_report import DoctorReport, Overlap, Suspect
from .errors import ConfigError

__all__ = [
    "DEFAULT_EMBEDDING_BACKBONE",
    "METHODS",
    "DoctorReport",
    "Overlap",
    "Suspect",
    "diagnose_examples",
    "embed_texts",
    "embedding_oof_probabilities",
    "find_label_issues",
    "find_overlaps",
]

METHODS = ("embeddings", "finetune")
DEFAULT_EMBEDDING_BACKBONE = "minilm-l6"


# ------------------------------------------------------------- the rules
def find_label_issues(
    examples: Examples, probabilities: np.ndarray, classes: Sequence[str]
) -> tuple[list[Suspect], dict[str, float]]:
    """Rows whose given intent the out-of-fold model disagrees with (the rule is in the module docstring).

    Args:
        examples: the rows.
        probabilities: ``(len(examples), len(classes))`` out-of-fold probabilities.
        classes: the intents, in column order.

    Returns:
        The suspects, most suspicious first, and each intent's threshold (mean self-confidence).
    """
    classes = list(classes)
    classes_at = range(len(classes))
    given = np.array([classes.index(label) for label in examples.labels])
    rows = np.arange(len(given))
    # Confident learning's per-intent threshold: the mean probability that the rows labelled j get for j.
    thresholds = np.array([probabilities[given == j, j].mean() if (given == j).any() else 1.0 for j in classes_at])
    others = probabilities.copy()
    others[rows, given] = -np.inf
    suggested = others.argmax(axis=1)
    p_given, p_suggested = probabilities[rows, given], probabilities[rows, suggested]
    margin = p_suggested - p_given
    suspects = [
        Suspect(
            row=int(i),
            line=examples.lines[i],
            text=examples.texts[i],
            given=classes[given[i]],
            suggested=classes[suggested[i]],
            p_given=round(float(p_given[i]), 4),
            p_suggested=round(float(p_suggested[i]), 4),
            margin=round(float(margin[i]), 4),
            confident=bool(p_suggested[i] >= thresholds[suggested[i]]),
        )  # fmt: skip
        for i in np.argsort(-margin, kind="stable")
        if round(float(margin[i]), 4) > 0  # a tie at the 4 decimals shown is no disagreement
    ]
    return suspects, {c: round(float(t), 4) for c, t in zip(classes, thresholds)}


def find_overlaps(
    examples: Examples,
    probabilities: np.ndarray,
    classes: Sequence[str],
    *,
    min_share: float = 0.05,
    min_count: int = 2,
    examples_per_direction: int = 2,
) -> list[Overlap]:
    """Intent pairs that the out-of-fold predictions mix up.

    A pair is listed when at least ``min_count`` of its rows went to the other intent and they are at least
    ``min_share`` of both intents' rows together.

    Returns:
        The pairs, largest share first.
    """
    classes = list(classes)
    given = np.array([classes.index(label) for label in examples.labels])
    predicted = probabilities.argmax(axis=1)
    confusion = np.zeros((len(classes), len(classes)), dtype=int)  # rows: given, columns: predicted
    np.add.at(confusion, (given, predicted), 1)
    support = confusion.sum(axis=1)

    def mixed_rows(a: int, b: int) -> list[dict[str, Any]]:
        """Rows labelled ``a`` predicted as ``b``, surest first."""
        found = np.flatnonzero((given == a) & (predicted == b))
        found = found[np.argsort(-probabilities[found, b], kind="stable")][:examples_per_direction]
        return [
            {"row": int(i), "line": examples.lines[i], "text": examples.texts[i], "given": classes[a],
             "predicted": classes[b], "confidence": round(float(probabilities[i, b]), 4)}
            for i in found
        ]  # fmt: skip

    overlaps = []
    for a in range(len(classes)):
        for b in range(a + 1, len(classes)):
            mixed = int(confusion[a, b] + confusion[b, a])
            share = mixed / max(1, support[a] + support[b])
            if mixed >= min_count and share >= min_share:
                overlaps.append(Overlap(
                    classes[a], classes[b], int(confusion[a, b]), int(confusion[b, a]), int(support[a]),
                    int(support[b]), round(float(share), 4), [*mixed_rows(a, b), *mixed_rows(b, a)],
                ))  # fmt: skip
    overlaps.sort(key=lambda o: (-o.share, -(o.a_as_b + o.b_as_a), o.intent_a, o.intent_b))
    return overlaps


# ------------------------------------------------- out-of-fold probabilities
def embed_texts(
    texts: Sequence[str],
    backbone: str = DEFAULT_EMBEDDING_BACKBONE,
    *,
    kind: str = "auto",
    max_length: int = 64,
    batch_size: int = 64,
    pooling: str = "auto",
    prompt_template: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Sentence vectors from a frozen backbone, tokenized and pooled as the classifier does it, L2-normalised.

    Args:
        texts: the utterances.
        backbone: anything :func:`intentune.backbones.load_backbone` accepts.
        kind: ``auto``, ``decoder`` or ``encoder``.
        max_length: texts are truncated to this many tokens.
        batch_size: texts per forward pass.
        pooling: ``model.pooling`` (see :func:`intentune.net.resolve_pooling`).
        prompt_template: the template texts are wrapped in when ``pooling`` is ``prompt``.
        progress: called with the number of texts done after each batch.

    Returns:
        ``(len(texts), hidden)`` float32 vectors of length 1.

    Raises:
        ConfigError: for ``prompt`` pooling on an encoder, or a template that leaves no room for the text.
    """
    import torch

    from .backbones import load_backbone
    from .net import PROMPT, embed, resolve_pooling
    from .preprocess import encode_texts, pad_batch

    model, tokenizer, kind = load_backbone(backbone, kind=kind)
    pooling = resolve_pooling(pooling, kind)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model.to(device).eval()
    ids = encode_texts(tokenizer, list(texts), max_length, prompt_template if pooling == PROMPT else None)
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))  # similar lengths per batch: little padding
    out = np.zeros((len(ids), model.config.hidden_size), dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            batch = pad_batch([ids[i] for i in chunk], int(tokenizer.pad_token_id), side=tokenizer.padding_side)
            mask = batch["attention_mask"].to(device)  # (batch, seq)
            pooled = embed(model, batch["input_ids"].to(device), mask, kind=kind, pooling=pooling)  # (batch, hidden)
            out[chunk] = torch.nn.functional.normalize(pooled.float(), dim=-1).cpu().numpy()
            if progress is not None:
                progress(len(chunk))
    del model
    return out


def embedding_oof_probabilities(
    examples: Examples, vectors: np.ndarray, *, folds: int = 5, seed: int = 13
) -> tuple[np.ndarray, list[str]]:
    """Out-of-fold probabilities of a logistic regression on sentence vectors, in stratified k-fold.

    Returns:
        ``(len(examples), len(classes))`` probabilities and the classes (sorted intents).

    Raises:
        DataError: if an intent has fewer rows than folds.
    """
    from sklearn.linear_model import LogisticRegression

    from .crossval import assign_folds

    fold_of = assign_folds(examples, folds, seed=seed)
    classes = sorted(set(examples.labels))
    y = np.array([classes.index(label) for label in examples.labels])
    probabilities = np.zeros((len(y), len(classes)))
    for k in range(1, folds + 1):
        train, held_out = fold_of != k, fold_of == k
        model = LogisticRegression(C=1.0, max_iter=1000).fit(vectors[train], y[train])
        probabilities[np.ix_(held_out, model.classes_)] = model.predict_proba(vectors[held_out])
    return probabilities, classes


def diagnose_examples(
    examples: Examples,
    *,
    method: str = "embeddings",
    config: Config | None = None,
    backbone: str | None = None,
    folds: int = 5,
    seed: int = 13,
    callbacks: Sequence[Any] = (),
    progress: Callable[[int], None] | None = None,
) -> DoctorReport:
    """Find probably mislabelled rows and overlapping intents (rules in the module docstring).

    Args:
        examples: the labelled rows.
        method: ``embeddings`` (frozen sentence vectors + logistic regression) or ``finetune`` (cross-validated
            fine-tuning with ``config``).
        config: for ``finetune``, the config of each fine-tune; for ``embeddings``, only ``model.max_length``,
            ``model.pooling`` and ``model.prompt_template``.
        backbone: overrides the backbone: for ``embeddings`` default ``minilm-l6``, for ``finetune`` default
            ``config.model.backbone``.
        folds: how many folds.
        seed: the fold seed.
        callbacks: training callbacks for ``finetune``.
        progress: for ``embeddings``, called with the number of texts embedded after each batch.

    Raises:
        ConfigError: for an unknown method or fewer than 2 folds, or ``model.pooling = prompt`` with an encoder.
        DataError: if an intent has too few rows for the folds.
    """
    if method not in METHODS:
        raise ConfigError(f"unknown doctor method {method!r}; use one of: {', '.join(METHODS)}")
    config = copy.deepcopy(config) if config is not None else Config()
    if method == "finetune":
        from .crossval import cross_validate

        config.model.backbone = backbone or config.model.backbone
        result = cross_validate(examples, config, folds=folds, seed=seed, callbacks=callbacks)
        probabilities, classes, used = result.probabilities, result.classes, config.model.backbone
    else:
        from .crossval import assign_folds

        assign_folds(examples, folds, seed=seed)  # fail on too-small intents before loading a backbone
        used = backbone or DEFAULT_EMBEDDING_BACKBONE
        mcfg = config.model
        vectors = embed_texts(
            examples.texts, used, max_length=mcfg.max_length, pooling=mcfg.pooling,
            prompt_template=mcfg.prompt_template, progress=progress,
        )  # fmt: skip
        probabilities, classes = embedding_oof_probabilities(examples, vectors, folds=folds, seed=seed)
    suspects, thresholds = find_label_issues(examples, probabilities, classes)
    truth = np.array([classes.index(label) for label in examples.labels])
    return DoctorReport(
        source=examples.source, rows=len(examples), intents=len(classes), method=method, backbone=used, folds=folds,
        oof_accuracy=float((probabilities.argmax(axis=1) == truth).mean()), suspects=suspects,
        overlaps=find_overlaps(examples, probabilities, classes), thresholds=thresholds,
    )  # fmt: skip
