"""What the data doctor found, and how it is shown: the suspect rows, the overlapping intent pairs, and the report
that holds them (as text, Markdown, JSON and CSV files). Finding them is :mod:`intentune.doctor`.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ._io import write_file_atomic


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
        ``doctor.json`` (everything) into ``directory`` (created if missing), each file whole or not at all."""
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
        write_file_atomic(paths["doctor.md"], self.to_markdown(top))
        write_file_atomic(paths["doctor.json"], self.to_json())
        return paths

    def _where(self, row: int, line: int) -> str:
        return f"{self.source}:{line}" if line else f"row {row}"

    def _confident(self) -> int:
        return sum(s.confident for s in self.suspects)

    @staticmethod
    def _shown(total: int, top: int) -> str:
        return f", top {top} shown" if total > top else ""


def _write_csv(path: Path, rows: list[dict[str, Any]], columns: list[str]) -> None:
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    write_file_atomic(path, buffer.getvalue())


def _short(text: str, width: int = 70) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def _cell(text: str) -> str:
    return _short(text, 80).replace("|", "\\|").replace("\n", " ")
