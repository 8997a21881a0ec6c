"""Intent discovery on CLINC150: train without 10 intents, then cluster the test messages the model rejects.

    python -m benchmarks.discovery [--backbone minilm-l6] [--seed 0] [--device cpu|cuda] [--quick]

Ten of CLINC150's 150 in-scope intents are held out, drawn with ``random.Random(seed)`` from the sorted names. The
model trains through the CLI with default settings on CLINC150's ``small/`` training rows and its validation rows,
both without the held-out intents (the ``oos`` rows stay, as in the usual CLINC150 setting). Then
``intentune discover`` reads every test message (4,500 in-scope, 300 of them of held-out intents, and 1,000
``oos``) with each clustering method at its default settings, and each selected message is matched back to its
true intent by its text. Per method:

- per held-out intent: its test rows the model selected (rejected or answered below ``--max-confidence``), and
  its best cluster: the cluster whose most common true intent it is and that holds most of its rows; that
  cluster's purity (the share of its messages of that intent) and recall (the intent's test rows in it, of all
  its test rows);
- found: held-out intents whose best cluster is mostly that intent (purity at least 0.5);
- the clusters by what most of their messages are: a held-out intent, ``oos``, or an intent the model knows.

Writes ``benchmarks/results/discovery_clinc150.json`` and prints a Markdown table. ``--quick`` proves the script on
a slice (a few rows per intent, a few steps; written under ``runs/``): its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from .common import ROOT, SHARED, first_per_intent, machine, read_rows, relative, run, write_rows

DATA = SHARED / "clinc150"
HELD_OUT = 10
METHODS = ("hdbscan", "agglomerative")
FOUND_PURITY = 0.5
# --quick: rows per intent (training, validation, test) and optimizer steps; enough to go through every code path.
QUICK_ROWS = (6, 2, 6)
QUICK_STEPS = 6


def hold_out(intents: list[str], count: int, seed: int) -> list[str]:
    """``count`` in-scope intents drawn with ``random.Random(seed)`` from the sorted names, returned sorted."""
    return sorted(random.Random(seed).sample(sorted(set(intents) - {"oos"}), count))


def read_clusters(messages_csv: Path, truth: dict[str, Counter]) -> list[dict[str, Any]]:
    """The selected messages of a ``messages.csv`` as ``{cluster, intents}``: ``intents`` counts the true intents
    of the test rows with that text (a text asked twice counts twice)."""
    with messages_csv.open(encoding="utf-8", newline="") as handle:
        return [{"cluster": int(row["cluster"]), "intents": truth[row["text"]]} for row in csv.DictReader(handle)]


def score(selected: list[dict[str, Any]], held_out: list[str], test_counts: Counter) -> dict[str, Any]:
    """How well the clusters of one discovery run recover the held-out intents (see the module docstring)."""
    clusters: dict[int, Counter] = defaultdict(Counter)
    for row in selected:
        clusters[row["cluster"]].update(row["intents"])
    noise = clusters.pop(-1, Counter())
    majority = {c: counts.most_common(1)[0][0] for c, counts in clusters.items()}
    per_intent = {}
    for intent in held_out:
        selected_rows = sum(counts[intent] for counts in clusters.values()) + noise[intent]
        own = [c for c in clusters if majority[c] == intent]
        best = max(own, key=lambda c: clusters[c][intent], default=None)
        size = sum(clusters[best].values()) if best is not None else 0
        per_intent[intent] = {
            "test_rows": test_counts[intent],
            "selected": selected_rows,
            "clusters": len(own),
            "best_cluster": best,
            "purity": round(clusters[best][intent] / size, 4) if best is not None else None,
            "recall": round(clusters[best][intent] / test_counts[intent], 4) if best is not None else 0.0,
        }
    found = [i for i, r in per_intent.items() if r["purity"] is not None and r["purity"] >= FOUND_PURITY]
    kinds = Counter("held_out" if m in held_out else "oos" if m == "oos" else "known" for m in majority.values())
    return {
        "found": len(found),
        "found_intents": found,
        "mean_purity_found": round(sum(per_intent[i]["purity"] for i in found) / len(found), 4) if found else None,
        "mean_recall_held_out": round(sum(r["recall"] for r in per_intent.values()) / len(held_out), 4),
        "held_out_selected": sum(r["selected"] for r in per_intent.values()),
        "held_out_rows": sum(test_counts[i] for i in held_out),
        "selected_rows": sum(sum(c.values()) for c in clusters.values()) + sum(noise.values()),
        "clusters": len(clusters),
        "clusters_by_majority": dict(kinds),
        "noise_rows": sum(noise.values()),
        "per_intent": per_intent,
    }


def markdown(record: dict[str, Any]) -> str:
    lines = [
        "| method | held-out intents found (purity >= 0.5) | mean purity of those | mean recall, 10 intents "
        "| held-out rows selected | clusters (held-out / oos / known majority) | messages selected | in no cluster |",
        "|---|---:|---:|---:|---:|---|---:|---:|",
    ]
    for method, r in record["results"].items():
        kinds = r["clusters_by_majority"]
        purity = "-" if r["mean_purity_found"] is None else f"{r['mean_purity_found']:.2f}"
        lines.append(
            f"| {method} | {r['found']} of {len(record['held_out_intents'])} | {purity} "
            f"| {r['mean_recall_held_out']:.2f} | {r['held_out_selected']} of {r['held_out_rows']} "
            f"| {r['clusters']} ({kinds.get('held_out', 0)} / {kinds.get('oos', 0)} / {kinds.get('known', 0)}) "
            f"| {r['selected_rows']} | {r['noise_rows']} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="minilm-l6")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the draw of the held-out intents.")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--max-confidence", type=float, default=0.5, help="discover's --max-confidence.")
    parser.add_argument("--quick", action="store_true", help="A few rows and steps, to check the script works.")
    parser.add_argument("--out", default=None, help="Default: benchmarks/results/discovery_clinc150.json.")
    args = parser.parse_args()
    work = ROOT / "runs" / ("bench-discovery-quick" if args.quick else f"bench-discovery-{args.backbone}")
    default_out = (work if args.quick else ROOT / "benchmarks" / "results") / "discovery_clinc150.json"
    out = Path(args.out) if args.out else default_out
    train, validation = read_rows(DATA / "small" / "train.csv"), read_rows(DATA / "validation.csv")
    test = read_rows(DATA / "test.csv")
    if args.quick:
        train, validation, test = (first_per_intent(rows, n) for rows, n in zip((train, validation, test), QUICK_ROWS))
    held_out = hold_out([intent for _, intent in train], HELD_OUT, args.seed)
    files = {
        "train": write_rows(work / "data" / "train.csv", [r for r in train if r[1] not in held_out]),
        "validation": write_rows(work / "data" / "validation.csv", [r for r in validation if r[1] not in held_out]),
        "test": write_rows(work / "data" / "test.csv", test),
    }
    sets = ["--set", f"train.max_steps={QUICK_STEPS}"] if args.quick else []
    train_command = [sys.executable, "-m", "intentune.cli", "train", str(files["train"]), "--validation",
                     str(files["validation"]), "--backbone", args.backbone, "-o", str(work / "model"), "--quiet",
                     "--set", f"train.device={args.device}", *sets]  # fmt: skip
    training = run(train_command)
    truth: dict[str, Counter] = defaultdict(Counter)
    for text, intent in test:
        truth[text][intent] += 1
    test_counts = Counter(intent for _, intent in test)
    results, commands = {}, {"train": relative(train_command)}
    for method in METHODS:
        command = [sys.executable, "-m", "intentune.cli", "discover", str(files["test"]), "--model",
                   str(work / "model"), "-o", str(work / f"discover-{method}"), "--method", method,
                   "--max-confidence", str(args.max_confidence)]  # fmt: skip
        stats = run(command)
        selected = read_clusters(work / f"discover-{method}" / "messages.csv", truth)
        results[method] = {**score(selected, held_out, test_counts), "discover": stats}
        commands[method] = relative(command)
    record = {
        "benchmark": "discovery_clinc150",
        "quick": args.quick,
        "machine": machine(),
        "backbone": args.backbone,
        "seed": args.seed,
        "max_confidence": args.max_confidence,
        "held_out_intents": held_out,
        "rows": {name: len(read_rows(path)) for name, path in files.items()},
        "train": training,
        "results": results,
        "commands": commands,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(markdown(record))
    print(f"written: {out}")


if __name__ == "__main__":
    main()
