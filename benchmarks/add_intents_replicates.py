"""Replicates of the adding-intents benchmark: one draw of held-out intents, several ``train.seed`` values.

    .venv/bin/python -m benchmarks.add_intents_replicates [--records DIR] [--before-rejection]

Reads the ``add_intents.py`` records in ``benchmarks/results/add_intents_replicates/`` (default), each named
``seed{N}-{label}.json``: ``N`` is the ``train.seed`` of its runs (``--train-seed``), ``label`` names the training
code or settings of its ``extend`` run (``previous``: the ``--init-from`` defaults before validation was held out
and early stopping judged accuracy; ``current``: the defaults after that, with one replay sample for the run;
anything else: a variant, such as ``resample``, the replay rows taking turns, or ``replay-distill``, resample
with the old model's answers kept on every row). Its ``v1`` and
``full`` runs do not depend on the label: a seed's ``v1`` and ``full`` come from whichever of its records has them
(the same seed gives the same numbers; the script checks). Prints a Markdown table: one row per seed with v1's
accuracy on the old intents' test rows, the full retrain's and each label's ``extend`` accuracy on the whole test
file, then the mean and the sample standard deviation of each column over the seeds that have it, and the mean
difference of each ``extend`` label against ``full`` over the seeds that have both. ``--before-rejection``: the
same table of the test accuracy before out-of-scope rejection (every row answered with its most probable intent),
from the records that have it.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
from pathlib import Path
from typing import Any

from benchmarks.common import ROOT

RECORDS = ROOT / "benchmarks" / "results" / "add_intents_replicates"
NAME = re.compile(r"^seed(\d+)-([a-z0-9-]+)\.json$")
LABEL_ORDER = ("previous", "current")


def collect(records: Path, metric: str = "accuracy") -> tuple[dict[int, dict[str, float]], list[str]]:
    """Per seed, the test accuracy of ``v1``, ``full`` and each label's ``extend`` (``metric``: ``accuracy``, or
    ``accuracy_without_rejection``; a run without it is left out); and the labels in table order (``previous``,
    ``current``, then the others sorted)."""
    table: dict[int, dict[str, float]] = {}
    labels: set[str] = set()
    for path in sorted(records.glob("*.json")):
        match = NAME.match(path.name)
        if not match:
            raise SystemExit(f"{path}: name it seed<N>-<label>.json")
        seed, label = int(match.group(1)), match.group(2)
        record: dict[str, Any] = json.loads(path.read_text())
        if record.get("train_seed") != seed:
            raise SystemExit(f"{path}: its train_seed is {record.get('train_seed')}, its name says {seed}")
        row = table.setdefault(seed, {})
        for run, result in record["results"].items():
            if result.get(metric) is None:
                continue
            column = f"extend {label}" if run == "extend" else run
            if run == "extend":
                labels.add(label)
            value = result[metric]
            if column in row and row[column] != value:
                raise SystemExit(f"{path}: {run} of seed {seed} is {value}, another record says {row[column]}")
            row[column] = value
    ordered = [label for label in LABEL_ORDER if label in labels] + sorted(labels - set(LABEL_ORDER))
    return table, ordered


def markdown(table: dict[int, dict[str, float]], labels: list[str]) -> str:
    columns = ["v1", "full", *(f"extend {label}" for label in labels)]
    headers = ["v1 (old intents)", "full retrain", *(f"extend, {label}" for label in labels)]

    def f(value: float | None) -> str:
        return "-" if value is None else f"{value:.4f}"

    lines = ["| train.seed | " + " | ".join(headers) + " |", "|---:|" + "---:|" * len(headers)]
    for seed in sorted(table):
        lines.append(f"| {seed} | " + " | ".join(f(table[seed].get(c)) for c in columns) + " |")
    means, spreads = [], []
    for column in columns:
        values = [table[s][column] for s in table if column in table[s]]
        means.append(f"{statistics.mean(values):.4f} ({len(values)})" if values else "-")
        spreads.append(f"{statistics.stdev(values):.4f}" if len(values) > 1 else "-")
    lines.append("| mean (seeds) | " + " | ".join(means) + " |")
    lines.append("| sd | " + " | ".join(spreads) + " |")
    gaps = ["", ""]
    for label in labels:
        pairs = [t[f"extend {label}"] - t["full"] for t in table.values() if f"extend {label}" in t and "full" in t]
        gaps.append(f"{statistics.mean(pairs):+.4f} ({len(pairs)})" if pairs else "-")
    lines.append("| extend − full, mean (seeds) | " + " | ".join(gaps) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=Path, default=RECORDS, help="Folder of seed<N>-<label>.json records.")
    parser.add_argument("--before-rejection", action="store_true", help="Accuracy before out-of-scope rejection.")
    args = parser.parse_args()
    table, labels = collect(args.records, "accuracy_without_rejection" if args.before_rejection else "accuracy")
    if not table:
        raise SystemExit(f"{args.records}: no records")
    print(markdown(table, labels))


if __name__ == "__main__":
    main()
