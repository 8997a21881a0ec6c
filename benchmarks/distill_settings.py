"""Distillation settings on validation: one teacher, the student distilled at each temperature and teacher's share.

    .venv/bin/python -m benchmarks.distill_settings [--data 10shot|full|clinc150] [--temperatures 1,2,4]
                                                    [--alphas 0.5,0.8] [--render]

The teacher is ``benchmarks.distill``'s (its run folder ``runs/bench-distill-mpnet-base-minilm-l6[-DATA]/teacher``,
made first by ``benchmarks.distill --data DATA --only teacher``), and so are the data files. For each temperature
``T`` and share ``A``: ``intentune distill TEACHER --student minilm-l6 --set train.distill_temperature=T --set
train.distill_alpha=A`` on the labelled training rows only (no unlabelled pool), every other setting the default.
The record keeps each run's best validation accuracy (what chooses a setting), its test accuracy (rejected rows
count as wrong) and its agreement with the teacher; it is written to ``benchmarks/results/distill_settings_DATA.json``
after every run, and a rerun skips the runs whose folders hold results.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from .common import ROOT, machine, relative, run
from .distill import BIN, outcome, work_dir


def run_name(temperature: str, alpha: str) -> str:
    return f"distilled-T{temperature}-a{alpha}"


def best_validation(run_dir: Path) -> float:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return round(metrics["training"]["best_validation"]["val_accuracy"], 4)


def markdown(record: dict[str, Any]) -> str:
    """The record as a Markdown table, the setting validation chooses in bold."""
    runs = record["results"]
    chosen = max(runs, key=lambda name: (runs[name]["validation_accuracy"], -runs[name]["order"]), default=None)
    lines = ["| temperature | teacher's share | validation acc. | test acc. | same answer as teacher | train s |",
             "|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for name, r in sorted(runs.items(), key=lambda item: item[1]["order"]):
        mark = "**" if name == chosen else ""
        cells = [f"{r['temperature']}", f"{r['alpha']}", f"{mark}{r['validation_accuracy']:.4f}{mark}",
                 f"{r['accuracy']:.4f}", f"{r['agreement_with_teacher']:.4f}", f"{r['train_seconds']:.0f}"]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", choices=("10shot", "full", "clinc150"), default="10shot")
    parser.add_argument("--temperatures", default="1,2,4")
    parser.add_argument("--alphas", default="0.5,0.8")
    parser.add_argument("--render", action="store_true", help="print the record's table; run nothing")
    args = parser.parse_args()
    out = ROOT / "benchmarks" / "results" / f"distill_settings_{args.data}.json"
    if args.render:
        print(markdown(json.loads(out.read_text())))
        return
    work = work_dir(args.data, "mpnet-base", "minilm-l6")
    teacher = work / "teacher"
    if not (teacher / "metrics.json").is_file():
        raise SystemExit(f"no teacher in {teacher}: run `python -m benchmarks.distill --data {args.data} --only "
                         "teacher` first")  # fmt: skip
    record: dict[str, Any] = json.loads(out.read_text()) if out.is_file() else {"results": {}}
    record |= {"benchmark": "distill_settings", "data": args.data, "teacher": relative([str(teacher)])}
    grid = [(t, a) for t in args.temperatures.split(",") for a in args.alphas.split(",")]
    for order, (temperature, alpha) in enumerate(grid):
        name = run_name(temperature, alpha)
        if name in record["results"] and (work / name / "metrics.json").is_file():
            print(f"{name}: done before, skipped")
            continue
        command = [str(BIN / "intentune"), "distill", str(teacher), "--student", "minilm-l6", "--quiet",
                   "--set", f"train.distill_temperature={temperature}", "--set", f"train.distill_alpha={alpha}",
                   "-o", str(work / name)]  # fmt: skip
        result = outcome(work / name, run(command))
        record["results"][name] = {
            "temperature": float(temperature), "alpha": float(alpha), "order": order,
            "validation_accuracy": best_validation(work / name),
            **{k: result[k] for k in ("accuracy", "macro_f1", "train_seconds", "agreement_with_teacher", "wall_s")},
            "command": relative(command), "machine": machine(),
        }  # fmt: skip
        out.write_text(json.dumps(record, indent=2) + "\n")
        print(
            f"{name}: validation {record['results'][name]['validation_accuracy']}, test {result['accuracy']}",
            flush=True,
        )
    print(markdown(record))
    print(f"written: {out}")


if __name__ == "__main__":
    main()
