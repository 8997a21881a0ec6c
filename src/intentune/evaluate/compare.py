"""Compare two evaluations intent by intent: a regression gate for a chatbot team's CI.

``intentune compare RUN_A RUN_B`` reads the ``metrics.json`` of two runs (or evaluation folders), lists the
per-intent F1 differences, and exits non-zero when any intent's F1 drops by more than ``max_drop``.

An out-of-scope row with no examples in the data (it appears when rejection fires on data without out-of-scope
rows) is no intent to compare: it is skipped, and a macro F1 that an older intentune averaged over it is
recomputed without it, so turning rejection on does not look like a macro-F1 drop.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import DataError

AVERAGE_KEYS = ("accuracy", "micro avg", "macro avg", "weighted avg", "samples avg")
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
    rows_a, rows_b = _intent_rows(a), _intent_rows(b)
    intents = [*rows_a, *(k for k in rows_b if k not in rows_a)]
    per_intent = {i: _diff(_f1(rows_a.get(i)), _f1(rows_b.get(i))) for i in intents}
    summary = {name: _diff(_get(a, keys), _get(b, keys)) for name, keys in SUMMARY_KEYS}
    summary["macro_f1"] = _diff(_macro_f1(a), _macro_f1(b))
    summary = {k: v for k, v in summary.items() if v["a"] is not None or v["b"] is not None}
    regressions = [
        i for i, row in per_intent.items() if row["difference"] is not None and row["difference"] < -max_drop - 1e-12
    ]
    notes = [f"{name}: {warning}" for name, m in zip(names, (a, b)) for warning in m.get("warnings") or []]
    for name, m in zip(names, (a, b)):
        if _macro_f1(m) != _get(m, ("report", "macro avg", "f1-score")):
            notes.append(
                f"{name}: macro F1 recomputed without the empty out-of-scope row {_empty_oos(m)!r} "
                "(metrics.json from an older intentune)"
            )
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


def _empty_oos(metrics: dict[str, Any]) -> str | None:
    """The out-of-scope label when the report has a row for it with no examples (rejection fired on data without
    out-of-scope rows), else None."""
    oos = metrics.get("oos")
    label = oos.get("label") if isinstance(oos, dict) else None
    row = metrics["report"].get(label) if isinstance(label, str) else None
    return label if isinstance(row, dict) and row.get("support") == 0 else None


def _intent_rows(metrics: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The per-label rows of the report, without the averages and an empty out-of-scope row."""
    skip = {*AVERAGE_KEYS, _empty_oos(metrics)}
    return {k: row for k, row in metrics["report"].items() if k not in skip and isinstance(row, dict)}


def _macro_f1(metrics: dict[str, Any]) -> float | None:
    """The macro-average F1. A ``metrics.json`` whose average includes an empty out-of-scope row (intentune
    before ``averages_leave_out``) gets it recomputed over the other rows, as scikit-learn averages: the mean of
    the per-label F1 scores."""
    stored = _get(metrics, ("report", "macro avg", "f1-score"))
    label = _empty_oos(metrics)
    if stored is None or label is None or label in (metrics.get("averages_leave_out") or []):
        return stored
    scores = [_f1(row) for row in _intent_rows(metrics).values()]
    return round(sum(scores) / len(scores), 6) if scores and None not in scores else stored


def _f1(row: dict[str, Any] | None) -> float | None:
    value = row.get("f1-score") if isinstance(row, dict) else None
    return float(value) if isinstance(value, (int, float)) else None


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
