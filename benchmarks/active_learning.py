"""What to label next on BANKING77: the review queue against a random pick, five rounds of 500 messages.

    python -m benchmarks.active_learning [--backbone minilm-l6] [--rounds 5] [--per-round 500] [--seed 0] [--quick]

Round 0 trains on BANKING77's 10-shot file (770 rows). The pool is the rest of ``train.csv`` with its labels
hidden. Each later round adds ``--per-round`` pool messages, labelled from ``train.csv`` (an oracle: the labels a
person would write), to the previous round's rows, and trains anew from the pretrained backbone:

- **review**: the messages ``intentune review POOL --model ROUND_RUN -n N --exclude LABELLED`` queues, in its
  order, from the previous round's model;
- **random**: ``N`` messages drawn from the remaining pool with ``random.Random(seed + round)``.

Every run is ``intentune train LABELLED --test test.csv`` with default settings (its validation rows split off its
own training file, as a user would run it); the test accuracy (3,080 rows, rejected rows count as wrong) is read
from the run's ``metrics.json``. Round 0 is shared. After every run the record
``benchmarks/results/active_learning_banking77.json`` is written; a rerun skips the runs it already holds (their
run folders and label files are kept under ``runs/``), so the benchmark can go in pieces. ``--quick`` proves the
script on a slice (a few rows per intent, a few steps; written under ``runs/``): its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import sys
from pathlib import Path
from typing import Any

from .common import ROOT, SHARED, first_per_intent, machine, read_rows, relative, run, write_rows

DATA = SHARED / "banking77"
ARMS = ("review", "random")
# --quick: pool rows per intent, test rows per intent, the first round's rows per intent, optimizer steps per run.
QUICK = {"pool": 6, "test": 2, "start": 3, "steps": 4}


def read_queue(path: Path) -> list[str]:
    """The texts of a review queue, in its order."""
    with path.open(encoding="utf-8", newline="") as handle:
        return [row["text"] for row in csv.DictReader(handle)]


def pick_random(pool: list[str], labelled: set[str], count: int, seed: int) -> list[str]:
    """``count`` distinct pool texts not yet labelled, drawn with ``random.Random(seed)``."""
    remaining = sorted({t for t in pool if t not in labelled})
    return random.Random(seed).sample(remaining, min(count, len(remaining)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="minilm-l6")
    parser.add_argument("--rounds", type=int, default=5, help="Rounds after round 0.")
    parser.add_argument("--per-round", type=int, default=500, help="Messages labelled per round.")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the random arm's draws.")
    parser.add_argument("--quick", action="store_true", help="A few rows and steps, to check the script works.")
    parser.add_argument("--out", default=None, help="Default: benchmarks/results/active_learning_banking77.json.")
    args = parser.parse_args()
    work = ROOT / "runs" / ("bench-al-quick" if args.quick else f"bench-al-{args.backbone}")
    default_out = (work if args.quick else ROOT / "benchmarks" / "results") / "active_learning_banking77.json"
    out = Path(args.out) if args.out else default_out
    # Texts as the review queue writes them back (stripped), so a queued text finds its label.
    train, test, start = ([(t.strip(), y) for t, y in read_rows(DATA / name)]
                          for name in ("train.csv", "test.csv", "train_10shot.csv"))  # fmt: skip
    per_round, sets = args.per_round, []
    if args.quick:
        train, test = first_per_intent(train, QUICK["pool"]), first_per_intent(test, QUICK["test"])
        start, per_round = first_per_intent(train, QUICK["start"]), 20
        sets = ["--set", f"train.max_steps={QUICK['steps']}"]
    label_of = {text: intent for text, intent in train}
    started = {text for text, _ in start}
    pool = [text for text, _ in train if text not in started]
    files = {"test": write_rows(work / "data" / "test.csv", test),
             "pool": write_rows(work / "data" / "pool.csv", [(t, "") for t in pool])}  # fmt: skip
    record: dict[str, Any] = json.loads(out.read_text()) if out.is_file() else {}
    runs: dict[str, dict[str, Any]] = record.get("runs", {})
    for r in range(args.rounds + 1):
        for arm in ARMS if r else ("start",):
            name = f"{arm}-{r}"
            if name in runs:
                continue
            previous = "start-0" if r == 1 else f"{arm}-{r - 1}"
            labelled = start if r == 0 else read_rows(work / previous / "labelled.csv")
            picked: list[str] = []
            if r:
                done = {t for t, _ in labelled}
                if arm == "review":
                    queue = work / name / "queue.csv"
                    command = [sys.executable, "-m", "intentune.cli", "review", str(files["pool"]), "--model",
                               str(work / previous / "run"), "-n", str(per_round), "-o", str(queue),
                               "--exclude", str(work / previous / "labelled.csv")]  # fmt: skip
                    run(command)
                    picked = [t for t in read_queue(queue) if t not in done][:per_round]
                else:
                    picked = pick_random(pool, done, per_round, args.seed + r)
            rows = labelled + [(t, label_of[t]) for t in picked]
            labelled_file = write_rows(work / name / "labelled.csv", rows)
            command = [sys.executable, "-m", "intentune.cli", "train", str(labelled_file), "--test", str(files["test"]),
                       "--backbone", args.backbone, "-o", str(work / name / "run"), "--quiet", *sets]  # fmt: skip
            stats = run(command)
            metrics = json.loads((work / name / "run" / "metrics.json").read_text())
            runs[name] = {"arm": arm, "round": r, "labelled": len(rows), "picked": len(picked),
                          "accuracy": round(metrics["accuracy"], 4), "train": stats,
                          "command": relative(command)}  # fmt: skip
            record = {"benchmark": "active_learning_banking77", "quick": args.quick, "backbone": args.backbone,
                      "seed": args.seed, "per_round": per_round, "machine": machine(), "runs": runs}  # fmt: skip
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(record, indent=2) + "\n")
            print(f"{name}: {len(rows)} labelled, test accuracy {runs[name]['accuracy']:.4f}", flush=True)
    print(markdown(runs, args.rounds))
    print(f"written: {out}")


def markdown(runs: dict[str, dict[str, Any]], rounds: int) -> str:
    """One row per round: labelled rows and test accuracy of each arm."""
    lines = ["| round | labelled rows | review: test acc. | random: test acc. |", "|---:|---:|---:|---:|"]
    for r in range(rounds + 1):
        cells = [runs.get("start-0" if r == 0 else f"{arm}-{r}") for arm in ARMS]
        size = next((c["labelled"] for c in cells if c), "-")
        accuracies = [f"{c['accuracy']:.4f}" if c else "-" for c in cells]
        lines.append(f"| {r} | {size} | {' | '.join(accuracies)} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
