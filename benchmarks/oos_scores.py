"""Compare the out-of-scope scores of one trained model: the calibrated confidence and the distance score.

    python benchmarks/oos_scores.py RUN_OR_MODEL [--data DIR] [--out FILE]

For a model trained on CLINC150 (``benchmarks/clinc150_oos.py``), fits the distance model on ``train.csv`` (as
training does), then for each score: the area under the ROC curve for telling the test ``oos`` rows from the
in-scope ones (threshold-free), the thresholds fitted on ``validation.csv`` with the model's own settings and
that score forced, and their test metrics; plus, as a ceiling rather than a fit, the best out-of-scope recall any
single global threshold reaches on test while in-scope accuracy stays >= 96%. Writes
``benchmarks/results/oos_scores.json`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, SHARED, machine  # noqa: E402

SCORES = ("confidence", "distance")


def main() -> None:
    from intentune import IntentClassifier
    from intentune.evaluate.calibration import softmax
    from intentune.evaluate.oos import DistanceModel

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--data", default=str(SHARED / "clinc150"))
    parser.add_argument("--floor", type=float, default=0.96, help="in-scope accuracy the ceiling keeps")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "oos_scores.json"))
    args = parser.parse_args()
    clf = IntentClassifier.load(args.model)
    ocfg = clf.config.oos
    splits = {name: read(Path(args.data) / f"{name}.csv") for name in ("train", "validation", "test")}
    outputs = {name: clf.forward(texts, pooled=True) for name, (texts, _) in splits.items()}
    distance = DistanceModel.fit(outputs["train"][1], splits["train"][1], ocfg.label)
    scored = {
        name: (softmax(outputs[name][0], clf.temperature_), distance.distances(outputs[name][1]), splits[name][1])
        for name in ("validation", "test")
    }  # fmt: skip
    results = compare_scores(
        scored["validation"], scored["test"], clf.classes_, oos_label=ocfg.label,
        max_accuracy_drop=ocfg.max_accuracy_drop, per_intent=ocfg.per_intent, floor=args.floor,
    )  # fmt: skip
    record = {
        "benchmark": "oos_scores",
        "model": args.model,
        "data": args.data,
        "model_threshold_score": clf.thresholds.score if clf.thresholds is not None else None,
        "machine": machine(),
        "results": results,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=2) + "\n")
    print(markdown(results, args.floor))


def read(path: Path) -> tuple[list[str], list[str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return [r["text"] for r in rows], [r["intent"] for r in rows]


def compare_scores(
    validation: tuple[np.ndarray, np.ndarray, Sequence[str]],
    test: tuple[np.ndarray, np.ndarray, Sequence[str]],
    classes: Sequence[str],
    *,
    oos_label: str = "oos",
    max_accuracy_drop: float = 0.01,
    per_intent: str = "auto",
    floor: float = 0.96,
) -> dict[str, Any]:
    """For each score: test AUROC, the validation-fitted thresholds' test metrics, and the test ceiling.

    Args:
        validation, test: ``(probabilities (n, k), distances (n,), labels)``.
    """
    from sklearn.metrics import roc_auc_score

    from intentune.evaluate.oos import apply_rejection, oos_metrics
    from intentune.evaluate.thresholds import fit_thresholds

    probs_t, dist_t, true_t = test
    true_t = np.asarray(true_t, dtype=object)
    is_oos = true_t == oos_label
    plain, confidences, _ = apply_rejection(classes, probs_t, None, oos_label)
    results: dict[str, Any] = {"without_rejection": oos_metrics(true_t, plain, oos_label)}
    # The model's own choice (score = auto): which candidate the validation data picks, and how it does on test.
    auto = fit_thresholds(
        validation[0], validation[2], classes, oos_label=oos_label, max_accuracy_drop=max_accuracy_drop,
        per_intent=per_intent, distances=validation[1], score="auto",
    )  # fmt: skip
    answers = apply_rejection(classes, probs_t, auto, oos_label, dist_t)[0]
    results["auto"] = {
        "chosen": auto.fit["chosen"],
        "test": oos_metrics(true_t, answers, oos_label),
        "validation": auto.fit["candidates"],
        "held_out": auto.fit.get("held_out", {}),
    }
    for score in SCORES:
        fitted = fit_thresholds(
            validation[0], validation[2], classes, oos_label=oos_label, max_accuracy_drop=max_accuracy_drop,
            per_intent=per_intent, distances=validation[1], score=score,
        )  # fmt: skip
        answers = apply_rejection(classes, probs_t, fitted, oos_label, dist_t)[0]
        # Higher = more out-of-scope, for the ROC curve and the ceiling.
        signal = -confidences if score == "confidence" else np.asarray(dist_t, dtype=np.float64)
        results[score] = {
            "auroc": round(float(roc_auc_score(is_oos, signal)), 4),
            "fitted": {"chosen": fitted.fit["chosen"], **oos_metrics(true_t, answers, oos_label)},
            "ceiling": ceiling(signal, plain, true_t, oos_label, floor),
        }
    return results


def ceiling(signal: np.ndarray, plain: Sequence[str], true: np.ndarray, oos_label: str, floor: float) -> dict:
    """The best out-of-scope recall of one global threshold on ``signal`` (reject above it) whose in-scope
    accuracy stays >= ``floor`` (of equal recalls, the best accuracy), with that accuracy and the precision;
    recall 0 if none keeps the floor."""
    from intentune.evaluate.oos import oos_metrics

    plain = np.asarray(plain, dtype=object)
    explicit = plain == oos_label
    best = {"in_scope_accuracy": None, "oos_precision": None, "oos_recall": 0.0, "oos_f1": None}
    for t in np.unique(signal):
        answers = np.where(explicit | (signal > t), oos_label, plain)
        m = oos_metrics(true, answers, oos_label)
        better = (m["oos_recall"], m["in_scope_accuracy"]) > (best["oos_recall"], best["in_scope_accuracy"] or 0.0)
        if m["in_scope_accuracy"] >= floor and better:
            best = m
    return best


def markdown(results: dict[str, Any], floor: float) -> str:
    base = results["without_rejection"]
    lines = [
        f"| score | test AUROC | fitted on validation: in-scope acc. / OOS recall / precision | best test recall "
        f"at in-scope acc. >= {floor:.2f} (ceiling) |",
        "|---|---:|---:|---:|",
    ]
    for score in SCORES:
        r = results[score]
        f, c = r["fitted"], r["ceiling"]
        lines.append(
            f"| {score} | {r['auroc']:.4f} | {f['in_scope_accuracy']:.4f} / {f['oos_recall']:.4f} / "
            f"{f['oos_precision']:.4f} ({f['chosen']}) | {c['oos_recall']:.4f} |"
        )
    lines.append(f"\nWithout rejection: in-scope {base['in_scope_accuracy']:.4f}, OOS recall {base['oos_recall']:.4f}.")
    if "auto" in results:
        a = results["auto"]
        lines += ["", "| candidate | validation (fitted on it): in-scope acc. / OOS recall | held-out: in-scope cost / "
                  "OOS recall |", "|---|---:|---:|"]  # fmt: skip
        for key, v in a["validation"].items():
            h = a["held_out"].get(key)
            held = f"{h['cost']:.4f} / {h['oos_recall']:.4f}" if h else "–"
            mark = " (chosen)" if key == a["chosen"] else ""
            lines.append(f"| {key}{mark} | {v['in_scope_accuracy']:.4f} / {v['oos_recall']:.4f} | {held} |")
        t = a["test"]
        lines.append(f"\nChosen ({a['chosen']}) on test: in-scope {t['in_scope_accuracy']:.4f}, OOS recall "
                     f"{t['oos_recall']:.4f}, precision {t['oos_precision']:.4f}.")  # fmt: skip
    return "\n".join(lines)


if __name__ == "__main__":
    main()
