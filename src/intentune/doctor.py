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
"""

from __future__ import annotations

import copy
import csv
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .config import Config
from .data import Examples
from .errors import ConfigError

METHODS = ("embeddings", "finetune")
DEFAULT_EMBEDDING_BACKBONE = "minilm-l6"


@dataclass
class Suspect:
    """A row whose given intent is probably wrong.

    Attributes:
        row: 0-based index of the row in the data.
        line: the row's line in its file (0 when made in memory).
        text: the utterance.
        given: the intent it is labelled with.
        suggested: the intent the out-of-fold model prefers.
        p_given: out-of-fold probability of ``given``.
        p_suggested: out-of-fold probability of ``suggested``.
        margin: ``p_suggested - p_given``; larger is more suspicious.
        confident: ``p_suggested`` reaches the suggested intent's mean self-confidence (confident learning).
    """

    row: int
    line: int
    text: str
    given: str
    suggested: str
    p_given: float
    p_suggested: float
    margin: float
    confident: bool


@dataclass
class Overlap:
    """Two intents whose rows are mixed up out of fold.

    Attributes:
        intent_a, intent_b: the pair (``intent_a`` sorts first).
        a_as_b: rows labelled ``intent_a`` predicted as ``intent_b``; ``b_as_a`` the other way.
        support_a, support_b: rows labelled with each intent.
        share: ``(a_as_b + b_as_a) / (support_a + support_b)``, the ranking key.
        examples: a few mixed-up rows each way (row, line, text, given, predicted, confidence), surest first.
    """

    intent_a: str
    intent_b: str
    a_as_b: int
    b_as_a: int
    support_a: int
    support_b: int
    share: float
    examples: list[dict[str, Any]] = field(default_factory=list)

    @property
    def rate_a_as_b(self) -> float:
        return self.a_as_b / self.support_a if self.support_a else 0.0

    @property
    def rate_b_as_a(self) -> float:
        return self.b_as_a / self.support_b if self.support_b else 0.0


@dataclass
class DoctorReport:
    """What the data doctor found.

    Attributes:
        source: the data file.
        rows, intents: the data's size.
        method: ``embeddings`` or ``finetune``.
        backbone: the backbone that produced the probabilities.
        folds: the number of folds.
        oof_accuracy: accuracy of the out-of-fold predictions against the given labels.
        suspects: every suspect row, most suspicious first.
        overlaps: overlapping intent pairs, largest share first.
        thresholds: each intent's mean self-confidence (the confident-learning threshold).
    """

    source: str
    rows: int
    intents: int
    method: str
    backbone: str
    folds: int
    oof_accuracy: float
    suspects: list[Suspect]
    overlaps: list[Overlap]
    thresholds: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Everything as JSON-ready values."""
        overlaps = [{**asdict(o), "rate_a_as_b": round(o.rate_a_as_b, 4), "rate_b_as_a": round(o.rate_b_as_a, 4)}
                    for o in self.overlaps]  # fmt: skip
        return {
            "data_file": self.source,
            "rows": self.rows,
            "intents": self.intents,
            "method": self.method,
            "backbone": self.backbone,
            "folds": self.folds,
            "oof_accuracy": round(self.oof_accuracy, 6),
            "num_suspects": len(self.suspects),
            "num_confident_suspects": sum(s.confident for s in self.suspects),
            "suspects": [asdict(s) for s in self.suspects],
            "overlaps": overlaps,
            "thresholds": self.thresholds,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False)

    def describe(self) -> str:
        """One sentence: data, method, folds and the out-of-fold accuracy."""
        how = "logistic regression on frozen embeddings" if self.method == "embeddings" else "fine-tuning"
        return (
            f"{self.source}: {self.rows} rows, {self.intents} intents; out-of-fold probabilities from {how} "
            f"({self.backbone}), {self.folds} folds; out-of-fold accuracy {self.oof_accuracy:.4f}"
        )

    def to_text(self, top: int = 20) -> str:
        """The summary, the ``top`` suspects and the ``top`` overlapping pairs."""
        found = f"Possibly mislabelled: {len(self.suspects)} rows ({self._confident()} confident, marked *)"
        lines = [self.describe(), "", found + self._shown(len(self.suspects), top)]
        for s in self.suspects[:top]:
            mark = "*" if s.confident else " "
            lines.append(
                f" {mark}{self._where(s.row, s.line)}  {s.given} ({s.p_given:.2f}) -> {s.suggested} "
                f"({s.p_suggested:.2f})  {_short(s.text)!r}"
            )
        lines += ["", f"Overlapping intents: {len(self.overlaps)} pairs" + self._shown(len(self.overlaps), top)]
        for o in self.overlaps[:top]:
            lines.append(
                f"  {o.intent_a} <-> {o.intent_b}: share {o.share:.3f}; {o.intent_a} as {o.intent_b} "
                f"{o.a_as_b}/{o.support_a}, {o.intent_b} as {o.intent_a} {o.b_as_a}/{o.support_b}"
            )
            for e in o.examples:
                where = self._where(e["row"], e["line"])
                lines.append(f"      {where}  {e['given']} -> {e['predicted']}  {_short(e['text'])!r}")
        return "\n".join(lines)

    def to_markdown(self, top: int = 50) -> str:
        """Markdown: the summary, a table of suspects and a table of overlapping pairs."""
        lines = ["# Data doctor", "", self.describe() + ".", "", "## Possibly mislabelled rows", ""]
        lines += [
            f"{len(self.suspects)} rows ({self._confident()} confident){self._shown(len(self.suspects), top)}. "
            "Rule: the held-out model prefers another intent; ranked by p(suggested) - p(given). Confident: "
            "p(suggested) reaches the mean self-confidence of the suggested intent.",
            "",
            "| row | line | text | given | p | suggested | p | confident |",
            "|---:|---:|---|---|---:|---|---:|---|",
        ]
        for s in self.suspects[:top]:
            lines.append(
                f"| {s.row} | {s.line} | {_cell(s.text)} | `{s.given}` | {s.p_given:.3f} | `{s.suggested}` | "
                f"{s.p_suggested:.3f} | {'yes' if s.confident else ''} |"
            )
        lines += ["", "## Overlapping intents", ""]
        lines += ["| intent a | intent b | a as b | b as a | share | examples |", "|---|---|---:|---:|---:|---|"]
        for o in self.overlaps[:top]:
            shown = "<br>".join(f"{_cell(e['text'])} (`{e['given']}` -> `{e['predicted']}`)" for e in o.examples)
            lines.append(
                f"| `{o.intent_a}` | `{o.intent_b}` | {o.a_as_b}/{o.support_a} | {o.b_as_a}/{o.support_b} | "
                f"{o.share:.3f} | {shown} |"
            )
        return "\n".join(lines) + "\n"

    def save(self, directory: str | Path, *, top: int = 50) -> dict[str, Path]:
        """Write ``suspects.csv`` and ``overlaps.csv`` (all rows), ``doctor.md`` (the ``top`` of each) and
        ``doctor.json`` (everything) into ``directory`` (created if missing)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        paths = {name: directory / name for name in ("suspects.csv", "overlaps.csv", "doctor.md", "doctor.json")}
        _write_csv(paths["suspects.csv"], [asdict(s) for s in self.suspects], list(Suspect.__dataclass_fields__))
        overlap_rows = [
            {**{k: v for k, v in d.items() if k != "examples"},
             "examples": " | ".join(e["text"] for e in d["examples"])}
            for d in self.to_dict()["overlaps"]
        ]  # fmt: skip
        columns = ["intent_a", "intent_b", "a_as_b", "b_as_a", "support_a", "support_b", "rate_a_as_b",
                   "rate_b_as_a", "share", "examples"]  # fmt: skip
        _write_csv(paths["overlaps.csv"], overlap_rows, columns)
        paths["doctor.md"].write_text(self.to_markdown(top), encoding="utf-8")
        paths["doctor.json"].write_text(self.to_json(), encoding="utf-8")
        return paths

    def _where(self, row: int, line: int) -> str:
        return f"{self.source}:{line}" if line else f"row {row}"

    def _confident(self) -> int:
        return sum(s.confident for s in self.suspects)

    @staticmethod
    def _shown(total: int, top: int) -> str:
        return f", top {top} shown" if total > top else ""


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


def _write_csv(path: Path, rows: list[dict[str, Any]], columns: list[str]) -> None:
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def _short(text: str, width: int = 70) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def _cell(text: str) -> str:
    return _short(text, 80).replace("|", "\\|").replace("\n", " ")
