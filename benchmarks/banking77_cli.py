"""BANKING77 through the CLI, as a user would run it: train on the 10-shot file (validation split off it),
evaluate on the 3,080-row test file. Records accuracy, macro-F1, wall time and peak memory of each command.

    .venv/bin/python benchmarks/banking77_cli.py [--backbone smollm2-135m minilm-l6] [--train FILE]

Writes ``benchmarks/results/banking77_cli.json`` and prints a Markdown table for ``benchmarks/RESULTS.md``.
Peak memory is the maximum resident set size of each command's process (``os.wait4``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, SHARED, machine, relative, run  # noqa: E402

DATA = SHARED / "banking77"
BIN = Path(sys.executable).parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", nargs="+", default=["minilm-l6", "smollm2-135m"])
    parser.add_argument("--train", default=str(DATA / "train_10shot.csv"))
    parser.add_argument("--test", default=str(DATA / "test.csv"))
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "banking77_cli.json"))
    args = parser.parse_args()
    results = []
    for backbone in args.backbone:
        run_dir = ROOT / "runs" / f"bench-banking77-{backbone}"
        train_cmd = [str(BIN / "intentune"), "train", args.train, "--backbone", backbone, "-o", str(run_dir), "--quiet"]
        eval_cmd = [str(BIN / "intentune"), "evaluate", str(run_dir), args.test, "-o", str(run_dir / "test")]
        train_stats = run(train_cmd)
        eval_stats = run(eval_cmd)
        metrics = json.loads((run_dir / "test" / "metrics.json").read_text())
        results.append(
            {
                "backbone": backbone,
                "train_file": os.path.relpath(args.train, ROOT),
                "test_file": os.path.relpath(args.test, ROOT),
                "accuracy": round(metrics["accuracy"], 4),
                "macro_f1": round(metrics["report"]["macro avg"]["f1-score"], 4),
                "train": train_stats,
                "evaluate": eval_stats,
                "training": json.loads((run_dir / "metrics.json").read_text())["training"],
                "commands": [relative(c) for c in (train_cmd, eval_cmd)],
            }
        )
    record = {"benchmark": "banking77_cli", "machine": machine(), "results": results}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=2) + "\n")
    columns = ["backbone", "train file", "test accuracy", "macro-F1", "train wall s", "train peak MiB"]
    print("| " + " | ".join([*columns, "eval wall s", "eval peak MiB"]) + " |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(
            f"| {r['backbone']} | {Path(r['train_file']).name} | {r['accuracy']:.4f} | {r['macro_f1']:.4f} | "
            f"{r['train']['wall_s']} | {r['train']['peak_rss_mib']} | {r['evaluate']['wall_s']} | "
            f"{r['evaluate']['peak_rss_mib']} |"
        )


if __name__ == "__main__":
    main()
