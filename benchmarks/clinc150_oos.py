"""CLINC150 with out-of-scope queries through the CLI: train on `train.csv` (its 100 `oos` rows included), fit the
calibration temperature and the rejection thresholds on `validation.csv`, report on `test.csv` (4,500 in-scope
rows, 1,000 out-of-scope rows).

    python benchmarks/clinc150_oos.py [--backbone minilm-l6 smollm2-135m] [--device cpu|cuda] [--data DIR]
                                      [--set section.key=value ...] [--out FILE]

Records in-scope accuracy, out-of-scope recall / precision / F1 (with the fitted rejection and without it), ECE
before and after temperature scaling, the fitted threshold, wall time and peak memory of the training command.
Writes ``benchmarks/results/clinc150_oos.json`` and prints a Markdown table for ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, SHARED, machine, relative, run  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", nargs="+", default=["minilm-l6", "smollm2-135m"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--data", default=str(SHARED / "clinc150"))
    parser.add_argument("--set", dest="overrides", nargs="*", default=[])
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "clinc150_oos.json"))
    args = parser.parse_args()
    data = Path(args.data)
    results = []
    for backbone in args.backbone:
        run_dir = ROOT / "runs" / f"bench-clinc150-{backbone}"
        command = [sys.executable, "-m", "intentune.cli", "train", str(data / "train.csv"),
                   "--validation", str(data / "validation.csv"), "--test", str(data / "test.csv"),
                   "--backbone", backbone, "-o", str(run_dir), "--quiet",
                   "--set", f"train.device={args.device}"]  # fmt: skip
        for override in args.overrides:
            command += ["--set", override]
        stats = run(command)
        results.append(summarise(backbone, json.loads((run_dir / "metrics.json").read_text()), stats, command))
        # Written after every backbone, so a run cut short keeps what it finished.
        record = {"benchmark": "clinc150_oos", "device": args.device, "machine": machine(), "results": results}
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(record, indent=2) + "\n")
    print(markdown(results))


def summarise(backbone: str, metrics: dict, stats: dict, command: list[str]) -> dict:
    oos, calibration = metrics["oos"], metrics["calibration"]
    return {
        "backbone": backbone,
        "in_scope_accuracy": oos["in_scope_accuracy"],
        "oos_recall": oos["oos_recall"],
        "oos_precision": oos["oos_precision"],
        "oos_f1": oos["oos_f1"],
        "without_rejection": oos["without_rejection"],
        "threshold": {"global": oos["threshold"]["global"], "per_intent": len(oos["threshold"]["per_intent"])},
        "threshold_fit": metrics["training"].get("oos", {}),
        "temperature": calibration["temperature"],
        "ece_before": calibration["ece_before"],
        "ece_after": calibration["ece_after"],
        "accuracy_all_rows": metrics["accuracy"],
        "train": stats,
        "training": {k: v for k, v in metrics["training"].items() if k not in ("oos",)},
        "command": relative(command).replace(sys.executable, "python"),
    }


def markdown(results: list[dict]) -> str:
    lines = [
        "| backbone | in-scope acc. | OOS recall | OOS precision | in-scope acc. / OOS recall without rejection "
        "| threshold | ECE before -> after | train wall s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        w = r["without_rejection"]
        lines.append(
            f"| {r['backbone']} | {r['in_scope_accuracy']:.4f} | {r['oos_recall']:.4f} | {r['oos_precision']:.4f} | "
            f"{w['in_scope_accuracy']:.4f} / {w['oos_recall']:.4f} | {r['threshold']['global']:.3f} "
            f"({r['threshold']['per_intent']} per-intent) | {r['ece_before']:.4f} -> {r['ece_after']:.4f} | "
            f"{r['train']['wall_s']} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
