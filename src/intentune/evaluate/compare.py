"""Compare two evaluations intent by intent: a regression gate for a chatbot team's CI.

``intentune compare RUN_A RUN_B`` reads the ``metrics.json`` of two runs (or evaluation folders), lists the
per-intent F1 differences, and exits non-zero when any intent's F1 drops by more than ``max_drop``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import DataError

SUMMARY_KEYS = (("accuracy", ("accuracy",)), ("macro_f1", ("report", "macro avg", "f1-score")),
                ("in_scope_accuracy", ("oos", "in_scope_accuracy")), ("oos_recall", ("oos", "oos_recall")),
                ("ece", ("calibration", "ece_after")))  # fmt: skip


@dataclass
class Comparison:
    """Per-intent F1 of a baseline (``a``) and a candidate (``b``), and which intents regressed."""

    a: str
    b: str
    max_drop: float
    summary: dict[str, dict[str, float | None]]
    per_intent: dict[str, dict[str, float | None]]
    regressions: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"a": self.a, "b": self.b, "max_drop": self.max_drop, "summary": self.summary,
                "per_intent_f1": self.per_intent, "regressions": self.regressions, "notes": self.notes}  # fmt: skip

    def to_text(self, top: int = 15) -> str:
        """The overall numbers, then the intents that changed most (drops first)."""
        lines = [f"A: {self.a}", f"B: {self.b}", "", f"{'metric':<20} {'A':>8} {'B':>8} {'B - A':>8}"]
        for name, row in self.summary.items():
            lines.append(f"{name:<20} {_fmt(row['a'])} {_fmt(row['b'])} {_fmt(row['difference'], signed=True)}")
        changed = sorted(
            (kv for kv in self.per_intent.items() if kv[1]["difference"] not in (None, 0.0)),
            key=lambda kv: kv[1]["difference"],
        )
        if changed:
            width = max(len(k) for k, _ in changed[:top]) + 2
            lines += ["", f"{'intent (F1)':<{width}} {'A':>8} {'B':>8} {'B - A':>8}"]
            for intent, row in changed[:top]:
                mark = "  REGRESSION" if intent in self.regressions else ""
                lines.append(
                    f"{intent:<{width}} {_fmt(row['a'])} {_fmt(row['b'])} {_fmt(row['difference'], signed=True)}{mark}"
                )
        lines += ["", *self.notes] if self.notes else []
        verdict = (
            f"FAIL: {len(self.regressions)} intent(s) dropped more than {self.max_drop:.3f} F1: "
            + ", ".join(self.regressions)
            if self.regressions
            else f"OK: no intent dropped more than {self.max_drop:.3f} F1"
        )
        return "\n".join([*lines, "", verdict])


def load_metrics(path: str | Path) -> dict[str, Any]:
    """Read ``metrics.json`` from a file, a run folder or an evaluation folder.

    Raises:
        DataError: if no metrics file is found or it has no per-intent report.
    """
    path = Path(path)
    candidates = [path] if path.is_file() else [path / "metrics.json", path / "eval" / "metrics.json"]
    for candidate in candidates:
        if candidate.is_file():
            try:
                metrics = json.loads(candidate.read_text(encoding="utf-8"))
            except json.JSONDecodeError as exc:
                raise DataError(f"{candidate}: not valid JSON ({exc.msg})") from None
            if not isinstance(metrics, dict) or "report" not in metrics:
                raise DataError(f"{candidate}: no per-intent report; pass a metrics.json written by intentune")
            return metrics
    raise DataError(
        f"no metrics.json in {path}; pass a run folder (intentune train -o) or an evaluation folder "
        "(intentune evaluate -o)"
    )


def compare_metrics(
    a: dict[str, Any], b: dict[str, Any], *, max_drop: float = 0.05, names: tuple[str, str] = ("A", "B")
) -> Comparison:
    """Compare two ``metrics.json`` dicts.

    Args:
        a: the baseline's metrics.
        b: the candidate's metrics.
        max_drop: an intent whose F1 falls by more than this (absolute, 0.05 = 5 points) is a regression.
        names: how to call the two in the output.
    """
    intents = [k for k in a["report"] if k not in ("accuracy", "macro avg", "weighted avg")]
    intents += [k for k in b["report"] if k not in ("accuracy", "macro avg", "weighted avg") and k not in intents]
    per_intent = {i: _diff(_get(a, ("report", i, "f1-score")), _get(b, ("report", i, "f1-score"))) for i in intents}
    summary = {name: _diff(_get(a, keys), _get(b, keys)) for name, keys in SUMMARY_KEYS}
    summary = {k: v for k, v in summary.items() if v["a"] is not None or v["b"] is not None}
    regressions = [
        i for i, row in per_intent.items() if row["difference"] is not None and row["difference"] < -max_drop - 1e-12
    ]
    notes = []
    only_a = [i for i, row in per_intent.items() if row["b"] is None]
    only_b = [i for i, row in per_intent.items() if row["a"] is None]
    if only_a:
        notes.append(f"intents only in A: {', '.join(only_a)}")
    if only_b:
        notes.append(f"intents only in B: {', '.join(only_b)}")
    if a.get("eval_file") and b.get("eval_file") and a["eval_file"] != b["eval_file"]:
        notes.append(f"note: evaluated on different files ({a['eval_file']} / {b['eval_file']})")
    return Comparison(names[0], names[1], max_drop, summary, per_intent, regressions, notes)


def compare_runs(a: str | Path, b: str | Path, *, max_drop: float = 0.05) -> Comparison:
    """Compare the evaluations of two runs (see :func:`load_metrics` for what a run may be)."""
    return compare_metrics(load_metrics(a), load_metrics(b), max_drop=max_drop, names=(str(a), str(b)))


def _get(metrics: dict[str, Any], keys: tuple[str, ...]) -> float | None:
    value: Any = metrics
    for key in keys:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return float(value) if isinstance(value, (int, float)) else None


def _diff(a: float | None, b: float | None) -> dict[str, float | None]:
    return {"a": a, "b": b, "difference": round(b - a, 6) if a is not None and b is not None else None}


def _fmt(value: float | None, signed: bool = False) -> str:
    if value is None:
        return f"{'-':>8}"
    return f"{value:>+8.4f}" if signed else f"{value:>8.4f}"
