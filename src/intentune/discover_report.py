"""What intent discovery found, and how it is shown: the settings, the proposed intents (clusters), the selected
messages, and their files (``clusters.csv``, ``messages.csv``, ``discover.html``, each written atomically). Finding
them is :mod:`intentune.discover`.
"""

from __future__ import annotations

import csv
import html
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._io import write_file_atomic
from .errors import ConfigError

METHODS = ("hdbscan", "agglomerative")
NOISE = -1
MESSAGE_COLUMNS = ("count", "cluster", "cluster_name", "predicted_intent", "confidence", "similarity")


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
