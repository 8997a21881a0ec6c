"""Adding intents to a trained model against retraining on everything: BANKING77, 67 intents first, then 10 more.

    .venv/bin/python benchmarks/add_intents.py [--backbone minilm-l6] [--seed 0] [--replay-per-intent N]
                                               [--set KEY=VALUE ...] [--targeted-replay BASE] [--train-seed N]
                                               [--runs v1,extend,full] [--out FILE] [--quick] [--render]

Ten of BANKING77's 77 intents are held out, drawn with ``random.Random(seed)`` from the sorted intent names (listed
in the output). Three runs through the CLI, each with its validation rows split off its own training file:

1. ``v1``: the 67 other intents' training rows, tested on their test rows;
2. ``extend``: ``intentune train NEW10 --init-from v1``: the 10 intents' training rows plus replay
   (``train.replay_per_intent`` rows of each old intent from ``v1/splits/train.csv``);
3. ``full``: a retrain from the pretrained backbone on all 77 intents' training rows.

``extend`` and ``full`` are tested on the whole 3,080-row test file: accuracy overall, on the 67 old intents' rows
and on the 10 new ones' (rejected rows count as wrong), the command's wall time and the training loop's seconds.
``--replay-per-intent`` sets ``train.replay_per_intent`` for ``extend`` (default: the config's), ``--set`` any other
setting of ``extend``, ``--targeted-replay BASE`` a replay file of BASE rows per old intent plus one for every new
training row v1 answers with that intent; ``--train-seed`` sets ``train.seed`` of all three runs (a replicate of
the same draw); ``--runs`` makes only some of the runs (``extend`` needs ``v1``'s folder). Writes
``benchmarks/results/add_intents.json``. ``--quick`` proves the script on a slice (a few rows per intent, a few
steps; written under ``runs/``, not to the results): its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, SHARED, first_per_intent, machine, read_rows, relative, run, write_rows  # noqa: E402

DATA = SHARED / "banking77"
BIN = Path(sys.executable).parent
HELD_OUT = 10
# --quick: rows per intent (training, test) and optimizer steps per run; enough to go through every code path.
QUICK_ROWS = (8, 3)
QUICK_STEPS = 6


def hold_out(intents: list[str], count: int, seed: int) -> list[str]:
    """``count`` intents drawn with ``random.Random(seed)`` from the sorted names, returned sorted."""
    return sorted(random.Random(seed).sample(sorted(set(intents)), count))


def group_accuracy(report: dict[str, Any], intents: list[str]) -> float | None:
    """Accuracy on the rows of ``intents`` from a ``metrics.json`` report: the sum of each intent's recall times
    its support (its right answers) over the sum of the supports."""
    rows = [report[i] for i in intents if isinstance(report.get(i), dict) and report[i]["support"]]
    support = sum(r["support"] for r in rows)
    return round(sum(r["recall"] * r["support"] for r in rows) / support, 4) if support else None


def outcome(run_dir: Path, stats: dict[str, float], old: list[str], new: list[str]) -> dict[str, Any]:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    training = metrics["training"]
    return {
        **stats,
        "train_seconds": training["train_seconds"],
        "steps": training["steps"],
        "train_rows": metrics["data_sizes"]["train"],
        "accuracy": round(metrics["accuracy"], 4),
        "accuracy_old": group_accuracy(metrics["report"], old),
        "accuracy_new": group_accuracy(metrics["report"], new),
        "accuracy_without_rejection": round(metrics["oos"]["without_rejection"]["in_scope_accuracy"], 4),
    }


def write_targeted_replay(work: Path, base: int, seed: int) -> Path:
    """Write ``data/replay_targeted.csv``: for each old intent, ``base`` rows of v1's training split plus one more for
    every new training row that v1 answers with that intent (all its rows at most), drawn with
    ``random.Random(seed)``: the old intents the new ones resemble keep more of their rows."""
    import csv
    from collections import Counter, defaultdict

    from intentune import load_predictor

    predictor = load_predictor(work / "v1" / "model")
    new_texts = [text for text, _ in read_rows(work / "data" / "new_train.csv")]
    classes = list(predictor.classes_)
    confused = Counter(classes[i] for i in predictor.predict_proba(new_texts).argmax(axis=1))
    with open(work / "v1" / "splits" / "train.csv", newline="", encoding="utf-8") as f:
        by_intent: dict[str, list[tuple[str, str]]] = defaultdict(list)
        for row in csv.DictReader(f):
            by_intent[row["intent"]].append((row["text"], row["intent"]))
    rng, rows = random.Random(seed), []
    for intent in sorted(by_intent):
        pool = by_intent[intent]
        rows += rng.sample(pool, min(len(pool), base + confused.get(intent, 0)))
    return write_rows(work / "data" / "replay_targeted.csv", rows)


def markdown(record: dict[str, Any]) -> str:
    """One row per run: rows trained on, steps, training seconds, test accuracy overall, on the old and the new
    intents' rows, and overall before the out-of-scope rejection (where the record has it)."""

    def f(value: float | None) -> str:
        return "-" if value is None else f"{value:.4f}"

    lines = [
        "| run | trained on (rows) | test rows | steps | training loop s | command wall s | test acc. "
        "| old intents' rows | new intents' rows | test acc. without rejection |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    tests = {"v1": record["rows"]["old_test"], "extend": record["rows"]["test"], "full": record["rows"]["test"]}
    for name, r in record["results"].items():
        lines.append(
            f"| {name} | {r['train_rows']:,} | {tests[name]:,} | {r['steps']:,} | {r['train_seconds']:.0f} "
            f"| {r['wall_s']:.0f} | {f(r['accuracy'])} | {f(r['accuracy_old'])} | {f(r['accuracy_new'])} "
            f"| {f(r.get('accuracy_without_rejection'))} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="minilm-l6")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the draw of the held-out intents.")
    parser.add_argument("--quick", action="store_true", help="A few rows and steps, to check the script works.")
    parser.add_argument("--out", default=None, help="Default: benchmarks/results/add_intents.json.")
    parser.add_argument("--render", action="store_true", help="Print the table of the record in --out; run nothing.")
    parser.add_argument("--replay-per-intent", type=int, default=None, help="train.replay_per_intent for extend.")
    parser.add_argument("--runs", default="v1,extend,full", help="Which runs to make, comma-separated.")
    parser.add_argument("--train-seed", type=int, default=None, help="train.seed of every run (default: the config's).")
    parser.add_argument(
        "--set",
        dest="extend_sets",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="A config setting for extend (repeatable), as intentune train --set takes it.",
    )
    parser.add_argument(
        "--targeted-replay",
        type=int,
        default=None,
        metavar="BASE",
        help="extend replays BASE rows per old intent plus one per new row v1 answers with it (--replay FILE).",
    )
    args = parser.parse_args()
    if args.render:
        print(markdown(json.loads(Path(args.out or ROOT / "benchmarks" / "results" / "add_intents.json").read_text())))
        return
    work = ROOT / "runs" / ("bench-add-intents-quick" if args.quick else f"bench-add-intents-{args.backbone}")
    out = Path(args.out) if args.out else (work if args.quick else ROOT / "benchmarks" / "results") / "add_intents.json"
    train, test = read_rows(DATA / "train.csv"), read_rows(DATA / "test.csv")
    if args.quick:
        train, test = first_per_intent(train, QUICK_ROWS[0]), first_per_intent(test, QUICK_ROWS[1])
    new = hold_out([intent for _, intent in train], HELD_OUT, args.seed)
    old = sorted({intent for _, intent in train} - set(new))
    files = {
        "old_train": write_rows(work / "data" / "old_train.csv", [r for r in train if r[1] not in new]),
        "old_test": write_rows(work / "data" / "old_test.csv", [r for r in test if r[1] not in new]),
        "new_train": write_rows(work / "data" / "new_train.csv", [r for r in train if r[1] in new]),
        "all_train": write_rows(work / "data" / "all_train.csv", train),
        "test": write_rows(work / "data" / "test.csv", test),
    }
    sets = ["--set", f"train.max_steps={QUICK_STEPS}"] if args.quick else []
    sets += ["--set", f"train.seed={args.train_seed}"] if args.train_seed is not None else []
    intentune = [str(BIN / "intentune"), "train", "--quiet", *sets]
    replay_count = [] if args.replay_per_intent is None else [f"train.replay_per_intent={args.replay_per_intent}"]
    extend_options = [part for assignment in replay_count for part in ("--set", assignment)]
    extend_options += [part for assignment in args.extend_sets for part in ("--set", assignment)]
    if args.targeted_replay is not None:  # the file is written once v1 is trained, before extend runs
        targeted = work / "data" / "replay_targeted.csv"
        extend_options += ["--replay", str(targeted), "--set", "train.replay_per_intent=100000"]
    commands = {
        "v1": [*intentune, str(files["old_train"]), "--backbone", args.backbone, "--test", str(files["old_test"]),
               "-o", str(work / "v1")],
        "extend": [*intentune, str(files["new_train"]), "--init-from", str(work / "v1"), "--test", str(files["test"]),
                   "-o", str(work / "extend"), *extend_options],
        "full": [*intentune, str(files["all_train"]), "--backbone", args.backbone, "--test", str(files["test"]),
                 "-o", str(work / "full")],
    }  # fmt: skip
    results: dict[str, Any] = {}
    chosen = args.runs.split(",")
    for name, command in commands.items():
        if name in chosen:
            if name == "extend" and args.targeted_replay is not None:
                write_targeted_replay(work, args.targeted_replay, args.seed)
            results[name] = outcome(work / name, run(command), old, new)
    comparison = {"summary": None, "regressions": None}
    if "extend" in results:
        results["extend"]["init_from"] = json.loads((work / "extend" / "manifest.json").read_text())["init_from"]
        comparison = json.loads((work / "extend" / "compare_with_previous.json").read_text())
    record = {
        "benchmark": "add_intents",
        "quick": args.quick,
        "machine": machine(),
        "backbone": args.backbone,
        "seed": args.seed,
        "train_seed": args.train_seed,
        "replay_per_intent": args.replay_per_intent,
        "extend_settings": args.extend_sets,
        "targeted_replay": args.targeted_replay,
        "held_out_intents": new,
        "rows": {name: len(read_rows(path)) for name, path in files.items()},
        "results": results,
        "compare_with_previous": {"summary": comparison["summary"], "regressions": comparison["regressions"]},
        "commands": {name: relative(command) for name, command in commands.items() if name in chosen},
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps({k: record[k] for k in ("held_out_intents", "rows", "results")}, indent=2))
    print(f"written: {out}")


if __name__ == "__main__":
    main()
