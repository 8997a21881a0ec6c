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

Outputs (:func:`write_discovery`, each file written atomically): ``clusters.csv`` (one row per cluster),
``messages.csv`` (every selected message with its cluster and an empty intent column to label), and
``discover.html``, one self-contained page with every text escaped.
"""

from __future__ import annotations

import csv
import html
import io
import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ._io import write_file_atomic
from .errors import ConfigError
from .messages import Messages, load_scoring_model, model_data_fields, read_messages, score_messages, unit_rows, usable

METHODS = ("hdbscan", "agglomerative")
NOISE = -1
MESSAGE_COLUMNS = ("count", "cluster", "cluster_name", "predicted_intent", "confidence", "similarity")
_WORD = re.compile(r"[^\W\d_]{2,}")


@dataclass
class DiscoverSettings:
    """How messages are selected and clustered (the options of ``intentune discover``).

    Attributes:
        max_confidence: answered messages below this confidence are selected too (0: rejected ones only).
        method: ``hdbscan`` or ``agglomerative``.
        min_cluster_size: the fewest distinct messages a cluster has.
        distance_threshold: ``agglomerative`` only: the cosine distance at which clusters stop merging.
        examples: central messages listed per cluster in ``clusters.csv``.
    """

    max_confidence: float = 0.5
    method: str = "hdbscan"
    min_cluster_size: int = 5
    distance_threshold: float = 0.5
    examples: int = 5

    def check(self) -> None:
        """Raises:
        ConfigError: naming the setting that is out of range or unknown."""
        if self.method not in METHODS:
            raise ConfigError(f"unknown clustering method {self.method!r}; choose one of {', '.join(METHODS)}")
        if self.min_cluster_size < 2:
            raise ConfigError(f"the minimum cluster size must be 2 or more, found {self.min_cluster_size}")
        if not 0.0 <= self.max_confidence <= 1.0:
            raise ConfigError(f"max_confidence must be between 0 and 1, found {self.max_confidence}")
        if self.examples < 1:
            raise ConfigError(f"examples per cluster must be 1 or more, found {self.examples}")

    def describe(self) -> str:
        """The settings in words, for the page."""
        text = f"{self.method}, min cluster size {self.min_cluster_size}"
        return text + (f", distance threshold {self.distance_threshold:g}" if self.method == "agglomerative" else "")


@dataclass
class Cluster:
    """One proposed intent.

    Attributes:
        id: 0 for the largest cluster, 1 for the next, ...
        size: its messages, repeats included.
        unique: its distinct messages.
        name: the proposed intent name (its two most distinctive words).
        top_words: its most distinctive words, most distinctive first.
        examples: its most central messages, most central first.
    """

    id: int
    size: int
    unique: int
    name: str
    top_words: list[str]
    examples: list[str]


@dataclass
class Discovery:
    """What :func:`discover_intents` found.

    Attributes:
        clusters: the proposed intents, largest first.
        messages: every selected message, by cluster (noise last), most central first: ``text``, ``count``,
            ``cluster`` (-1: noise), ``cluster_name``, ``predicted_intent``, ``confidence``, ``similarity`` (cosine
            to its cluster's mean direction; empty for noise).
        read: messages read, repeats included.
        unique: distinct messages among them.
        selected: distinct messages rejected or answered below ``settings.max_confidence``.
        settings: how they were selected and clustered.
    """

    clusters: list[Cluster]
    messages: list[dict[str, Any]]
    read: int
    unique: int
    selected: int
    settings: DiscoverSettings = field(default_factory=DiscoverSettings)

    @property
    def noise(self) -> int:
        """Selected distinct messages in no cluster."""
        return sum(row["cluster"] == NOISE for row in self.messages)

    def to_text(self) -> str:
        """A few lines for the command line: the counts and one line per cluster."""
        lines = [
            f"{self.read} messages read, {self.unique} distinct; {self.selected} rejected or answered with "
            f"confidence below {self.settings.max_confidence:g}; {len(self.clusters)} clusters, {self.noise} in none"
        ]
        if not self.selected:
            lines.append("no message was rejected or answered with low confidence: nothing to discover")
        for cluster in self.clusters:
            example = cluster.examples[0] if cluster.examples else ""
            lines.append(f"  {cluster.id:>3}  {cluster.size:>5}  {cluster.name:<28}  {example[:60]}")
        return "\n".join(lines)


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


def write_discovery(discovery: Discovery, output_dir: str | Path, *, text_field: str = "text",
                    label_field: str = "intent") -> dict[str, Path]:  # fmt: skip
    """Write ``clusters.csv``, ``messages.csv`` (with an empty ``label_field`` column to fill in) and
    ``discover.html`` into ``output_dir`` (created if missing), each file atomically.

    Returns:
        The paths written, by name.
    """
    out = Path(output_dir)
    clusters = [["cluster", "size", "unique", "name", "top_words", "examples"]]
    clusters += [[c.id, c.size, c.unique, c.name, " ".join(c.top_words), " | ".join(c.examples)]
                 for c in discovery.clusters]  # fmt: skip
    messages = [[text_field, *MESSAGE_COLUMNS, label_field]]
    messages += [[row["text"], *(row[c] for c in MESSAGE_COLUMNS), ""] for row in discovery.messages]
    paths = {"clusters": out / "clusters.csv", "messages": out / "messages.csv", "html": out / "discover.html"}
    write_file_atomic(paths["clusters"], _csv_text(clusters))
    write_file_atomic(paths["messages"], _csv_text(messages))
    write_file_atomic(paths["html"], render_html(discovery))
    return paths


def _csv_text(rows: list[list[Any]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()


MAX_PAGE_ROWS = 100  # messages listed per cluster on the page (messages.csv has all)


def render_html(discovery: Discovery) -> str:
    """The proposed intents as one self-contained page (the evaluation report's style and Content-Security-Policy):
    the counts, then per cluster its name, words and messages (most central first), then the messages in no
    cluster. Every text is escaped."""
    from .evaluate.html import CSP, SCRIPT, STYLE

    title = "Discovered intents"
    numbers = [("messages read", discovery.read), ("distinct", discovery.unique), ("selected", discovery.selected),
               ("clusters", len(discovery.clusters)), ("in no cluster", discovery.noise)]  # fmt: skip
    cards = "".join(f'<div class="card"><div class="v">{v}</div><div class="k">{k}</div></div>' for k, v in numbers)
    intro = (
        f"Messages the model rejected or answered with confidence below {discovery.settings.max_confidence:g}, "
        f"clustered by their pooled vectors ({discovery.settings.describe()}). Each cluster is a proposed intent: "
        "check its messages, choose a name, and fill in the intent column of messages.csv (remove the rows you "
        "leave empty before training)."
    )
    body = [f"<h1>{title}</h1>", f'<div class="cards">{cards}</div>', f'<p class="note">{_escape(intro)}</p>']
    if not discovery.selected:
        body.append("<p>No message was rejected or answered with low confidence: nothing to discover.</p>")
    by_cluster: dict[int, list[dict[str, Any]]] = {}
    for row in discovery.messages:
        by_cluster.setdefault(row["cluster"], []).append(row)
    for cluster in discovery.clusters:
        about = (f"{cluster.size} messages ({cluster.unique} distinct); distinctive words: "
                 f"{', '.join(cluster.top_words) or 'none'}")  # fmt: skip
        heading = f"{cluster.id}. {cluster.name}"
        body.append(_section(heading, f'<p class="note">{_escape(about)}</p>' + _rows(by_cluster[cluster.id])))
    if by_cluster.get(NOISE):
        body.append(_section("In no cluster", _rows(by_cluster[NOISE])))
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{title}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n" + "\n".join(body) + "\n"
        f"<script>{SCRIPT}</script>\n</body>\n</html>\n"
    )


def _section(heading: str, content: str) -> str:
    return f"<section>\n<h2>{_escape(heading)}</h2>\n{content}\n</section>"


def _rows(rows: list[dict[str, Any]]) -> str:
    """A sortable table of messages (at most :data:`MAX_PAGE_ROWS`)."""
    shown = rows[:MAX_PAGE_ROWS]
    lines = [
        f'<tr><td class="t">{_escape(r["text"])}</td><td class="n">{r["count"]}</td>'
        f'<td>{_escape(r["predicted_intent"])}</td><td class="n">{r["confidence"]:.3f}</td></tr>'
        for r in shown
    ]
    head = "<tr><th>message</th><th>count</th><th>model's answer</th><th>confidence</th></tr>"
    table = f'<table class="sortable">\n<thead>{head}</thead>\n<tbody>\n' + "\n".join(lines) + "\n</tbody>\n</table>"
    more = f'<p class="note">{len(rows) - len(shown)} more in messages.csv.</p>' if len(rows) > len(shown) else ""
    return (f'<div class="scroll">{table}</div>' if len(shown) > 25 else table) + more


def _escape(text: Any) -> str:
    return html.escape(str(text))
