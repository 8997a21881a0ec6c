"""New intents in what the model rejects: cluster the messages a model answered out of scope (or with low
confidence) and propose each cluster as an intent to add, named by its most distinctive words and shown by its
most central messages.

Steps:

1. read the messages (:func:`intentune.messages.read_messages`), count repeats once (``normalize_for_matching``),
   and keep those the model rejects or answers with a confidence below ``max_confidence``;
2. embed them: the model's pooled vectors, L2-normalised;
3. cluster them: scikit-learn's ``HDBSCAN`` (``min_cluster_size``; messages in no dense group are noise), or
   average-linkage agglomerative clustering on the cosine distance cut at ``distance_threshold`` (clusters
   smaller than ``min_cluster_size`` become noise);
4. describe each cluster: its messages most similar to the cluster's mean direction, and its most distinctive
   words by c-TF-IDF: a word's share of the cluster's words times ``log(1 + A / f)``, where ``f`` is the word's
   count over all selected messages and ``A`` the average number of words per cluster (English stop words and
   one-letter words left out); the proposed name joins the two most distinctive words.

Outputs (:func:`~intentune.discover_report.write_discovery`, each file written atomically): ``clusters.csv`` (one
row per cluster), ``messages.csv`` (every selected message with its cluster and an empty intent column to label),
and ``discover.html``, one self-contained page with every text escaped. The settings, the clusters and the files
are :mod:`intentune.discover_report`, whose names this module also exports.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .discover_report import METHODS, NOISE, Cluster, DiscoverSettings, Discovery, render_html, write_discovery
from .messages import Messages, load_scoring_model, model_data_fields, read_messages, score_messages, unit_rows, usable

__all__ = [
    "METHODS",
    "NOISE",
    "Cluster",
    "DiscoverSettings",
    "Discovery",
    "cluster_vectors",
    "describe_clusters",
    "discover_intents",
    "distinctive_words",
    "find_intents",
    "propose_names",
    "render_html",
    "renumber_by_size",
    "select_uncertain",
    "words",
    "write_discovery",
]

_WORD = re.compile(r"[^\W\d_]{2,}")


def select_uncertain(confidences: np.ndarray, rejected: np.ndarray, max_confidence: float) -> list[int]:
    """The positions of messages the model rejected or answered with a confidence below ``max_confidence``."""
    return [i for i in range(len(confidences)) if rejected[i] or confidences[i] < max_confidence]


def cluster_vectors(vectors: np.ndarray, settings: DiscoverSettings) -> np.ndarray:
    """Cluster ids of vectors (L2-normalised here), numbered by size (0 = largest); ``-1`` for noise.

    Raises:
        ConfigError: for a bad setting (:meth:`DiscoverSettings.check`).
    """
    settings.check()
    unit = unit_rows(vectors)
    size = settings.min_cluster_size
    if len(unit) < size:
        return np.full(len(unit), NOISE)
    if settings.method == "hdbscan":
        from sklearn.cluster import HDBSCAN

        # On unit vectors the Euclidean distance orders pairs as the cosine distance does.
        labels = HDBSCAN(min_cluster_size=size, metric="euclidean", copy=True).fit_predict(unit)
    else:
        from sklearn.cluster import AgglomerativeClustering

        clustering = AgglomerativeClustering(
            n_clusters=None, distance_threshold=settings.distance_threshold, metric="cosine", linkage="average"
        )
        labels = clustering.fit_predict(unit)
        sizes = Counter(labels.tolist())
        labels = np.array([label if sizes[label] >= size else NOISE for label in labels])
    return renumber_by_size(labels)


def renumber_by_size(labels: np.ndarray) -> np.ndarray:
    """Cluster ids renumbered 0, 1, ... from the largest cluster down (ties: the one seen first); noise stays -1."""
    sizes = Counter(int(label) for label in labels if label != NOISE)
    first = {}
    for i, label in enumerate(labels):
        first.setdefault(int(label), i)
    order = sorted(sizes, key=lambda label: (-sizes[label], first[label]))
    new = {old: i for i, old in enumerate(order)}
    return np.array([new.get(int(label), NOISE) for label in labels], dtype=int)


def words(text: str) -> list[str]:
    """The words of ``text`` that can describe a cluster: lower-cased letters only, two or more, no English stop
    words (scikit-learn's list)."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return [w for w in _WORD.findall(text.lower()) if w not in ENGLISH_STOP_WORDS]


def distinctive_words(
    cluster_texts: Sequence[Sequence[str]], all_texts: Sequence[str], top: int = 5
) -> list[list[str]]:
    """The ``top`` most distinctive words of each cluster by c-TF-IDF (see the module docstring); ties by word.

    Args:
        cluster_texts: the distinct messages of each cluster.
        all_texts: every selected distinct message (clustered or not): the background word frequencies.
        top: words per cluster.
    """
    background = Counter(w for text in all_texts for w in words(text))
    counts = [Counter(w for text in texts for w in words(text)) for texts in cluster_texts]
    average = sum(sum(c.values()) for c in counts) / max(1, len(counts))  # A: words per cluster
    result = []
    for count in counts:
        total = sum(count.values()) or 1
        weight = {w: n / total * math.log(1 + average / max(background[w], n)) for w, n in count.items()}
        result.append(sorted(weight, key=lambda w: (-weight[w], w))[:top])
    return result


def propose_names(top_words: Sequence[Sequence[str]]) -> list[str]:
    """An intent name per cluster: its two most distinctive words joined by ``_`` (``cluster_N`` when it has
    none); a name already taken gets the cluster number appended."""
    names: list[str] = []
    for i, found in enumerate(top_words):
        name = "_".join(found[:2]) or f"cluster_{i}"
        names.append(name if name not in names else f"{name}_{i}")
    return names


def discover_intents(
    source: str | Path,
    model_dir: str | Path,
    output_dir: str | Path | None = None,
    settings: DiscoverSettings | None = None,
    *,
    runtime: str = "auto",
    text_field: str | None = None,
) -> Discovery:
    """Cluster the messages a model rejects (or answers with low confidence) into proposed new intents.

    Args:
        source: the messages (see :func:`intentune.messages.read_messages`).
        model_dir: the model (or its run folder).
        output_dir: where :func:`write_discovery` writes its files; None writes nothing.
        settings: selection and clustering; default: :class:`DiscoverSettings`' defaults.
        runtime: the model's runtime (:func:`intentune.inference.load_predictor`).
        text_field: the text field of ``source``; default: the model's ``data.text_field``.

    Returns:
        The clusters and every selected message. With no message selected, both are empty (not an error: the
        model rejected nothing), and the files are written all the same.

    Raises:
        DataError: if the source has no messages.
        ConfigError: for a bad setting or an unknown runtime.
        ModelError: if the model folder cannot be loaded.
    """
    settings = settings or DiscoverSettings()
    settings.check()
    fields = model_data_fields(model_dir)
    texts = read_messages(source, text_field=text_field or fields[0])
    discovery = find_intents(load_scoring_model(model_dir, runtime), texts, settings)
    if output_dir is not None:
        write_discovery(discovery, output_dir, text_field=fields[0], label_field=fields[1])
    return discovery


def find_intents(predictor: Any, texts: Sequence[str], settings: DiscoverSettings) -> Discovery:
    """What :func:`discover_intents` finds, from a loaded model (:func:`~intentune.messages.load_scoring_model`)
    and the messages read (repeats included)."""
    messages = Messages.group(texts)
    kept = messages.subset(usable(predictor, messages.texts))
    discovery = Discovery([], [], messages.read, len(messages.texts), 0, settings)
    if not kept.texts:
        return discovery
    scored = score_messages(predictor, kept.texts)
    chosen = select_uncertain(scored.confidences, scored.rejected, settings.max_confidence)
    discovery.selected = len(chosen)
    if chosen:
        rows = [{"text": kept.texts[i], "count": kept.counts[i], "predicted_intent": scored.answers[i],
                 "confidence": round(float(scored.confidences[i]), 4)} for i in chosen]  # fmt: skip
        labels = cluster_vectors(scored.vectors[chosen], settings)
        discovery.clusters, discovery.messages = describe_clusters(
            rows, scored.vectors[chosen], labels, settings.examples
        )
    return discovery


def describe_clusters(
    rows: list[dict[str, Any]], vectors: np.ndarray, labels: np.ndarray, examples: int = 5
) -> tuple[list[Cluster], list[dict[str, Any]]]:
    """The clusters (name, words, central examples) and the message rows in order (by cluster, noise last; most
    central first), each row given its ``cluster``, ``cluster_name`` and ``similarity``.

    Args:
        rows: one dict per message with at least ``text`` and ``count``.
        vectors: ``(len(rows), hidden)`` pooled vectors.
        labels: cluster ids from :func:`cluster_vectors`.
        examples: central messages kept per cluster.
    """
    unit = unit_rows(vectors)
    count = int(labels.max()) + 1 if len(labels) else 0
    members = [np.flatnonzero(labels == c) for c in range(count)]
    similarity = np.zeros(len(rows))
    for index in members:
        centre = unit_rows(unit[index].mean(axis=0, keepdims=True))[0]
        similarity[index] = unit[index] @ centre
    central = [sorted(index.tolist(), key=lambda i: (-similarity[i], i)) for index in members]
    top_words = distinctive_words([[rows[i]["text"] for i in index] for index in central], [r["text"] for r in rows])
    names = propose_names(top_words)
    clusters = [
        Cluster(c, sum(rows[i]["count"] for i in central[c]), len(central[c]), names[c], top_words[c],
                [rows[i]["text"] for i in central[c][:examples]])
        for c in range(count)
    ]  # fmt: skip
    ordered = []
    for c, index in enumerate(central):
        ordered += [{**rows[i], "cluster": c, "cluster_name": names[c], "similarity": round(float(similarity[i]), 4)}
                    for i in index]  # fmt: skip
    ordered += [{**rows[i], "cluster": NOISE, "cluster_name": "", "similarity": ""}
                for i in np.flatnonzero(labels == NOISE)]  # fmt: skip
    return clusters, ordered
