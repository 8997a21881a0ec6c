"""Does the rejection threshold keep its accuracy budget on unseen rows? The old fit against the new one, offline.

    .venv/bin/python benchmarks/rejection_budget.py TASK [--seed N] [--max-steps N] [--work DIR] [--out FILE]

TASK is one of:

- ``clinc7``: 7 in-scope CLINC150 intents of one business domain, both drawn by ``--seed``; their 150 rows each
  (train, validation and test pooled) split again by the seed into 50 training, 50 validation and 50 test rows per
  intent; no ``oos`` rows.
- ``clinc7_oos``: the ``clinc7`` model of the same seed (trained by that task if missing), judged with CLINC150's
  100 validation and 1,000 test ``oos`` rows added to its validation and test rows.
- ``banking77``: BANKING77's training file (10% split off, stratified, as validation) and its test file; no
  ``oos`` rows.
- ``clinc150``: CLINC150's in-scope training rows; its validation file (100 ``oos`` rows) and test file (1,000).

Each task trains ONE ``minilm-l6`` model with the default config (``--max-steps`` caps the optimizer steps) and
saves, in ``--work``, the model and ``scores.npz``: the calibrated probabilities of the validation and test rows,
their distance scores (a :class:`~intentune.evaluate.oos.DistanceModel` fitted on the training rows' pooled
vectors) and those of the bundled stand-in out-of-scope sentences; a second run of the same task reuses them. The
comparison then fits thresholds on the validation rows in several ways and applies them to the test rows:

- ``old``: ``budget_confidence = 0``, the threshold that costs ``max_accuracy_drop`` on the validation rows;
- ``new``: the default ``budget_confidence`` (the cost's one-sided binomial bound within the budget);
- for ``clinc7_oos`` and ``clinc150`` also both without the validation ``oos`` rows (blind), and the new fit
  with the stand-in sentences in their place (outlier exposure);
- for the tasks without ``oos`` rows also the new fit with the stand-ins (they may switch the score to the
  distance and the thresholds to per-intent ones).

Per way: test accuracy before and after rejection, the cost (the drop), the in-scope accuracy and out-of-scope
recall where the test data has ``oos`` rows. The record is appended (replacing the same task and seed) to
``benchmarks/results/rejection_budget.json``; a Markdown table is printed.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, SHARED, machine  # noqa: E402

TASKS = ("clinc7", "clinc7_oos", "banking77", "clinc150")
PER_INTENT_CLINC7 = 50  # rows per intent in each of the training, validation and test splits of clinc7
BACKBONE = "minilm-l6"
# CLINC150's domains a business chatbot might cover (not small talk, the assistant's utilities or meta requests).
BUSINESS_DOMAINS = ("banking", "credit_cards", "kitchen_and_dining", "home", "auto_and_commute", "travel", "work")


def read(path: Path) -> tuple[list[str], list[str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [r["text"] for r in rows], [r["intent"] for r in rows]


def task_data(task: str, seed: int) -> tuple[dict[str, tuple[list[str], list[str]]], dict[str, Any]]:
    """The training, validation and test rows of a task, and what was drawn."""
    if task == "clinc7_oos":
        splits, drawn = task_data("clinc7", seed)
        for name in ("validation", "test"):
            texts, labels = read(SHARED / "clinc150" / f"{name}.csv")
            oos = [t for t, y in zip(texts, labels) if y == "oos"]
            splits[name] = (splits[name][0] + oos, splits[name][1] + ["oos"] * len(oos))
        return splits, {**drawn, "oos_rows": "CLINC150's validation (100) and test (1,000) oos rows"}
    if task == "clinc7":
        pooled: dict[str, list[str]] = {}
        for name in ("train", "validation", "test"):
            for text, intent in zip(*read(SHARED / "clinc150" / f"{name}.csv")):
                if intent != "oos":
                    pooled.setdefault(intent, []).append(text)
        rng = np.random.default_rng(seed)
        domains = json.loads((SHARED / "clinc150" / "domains.json").read_text(encoding="utf-8"))
        domain = str(rng.choice(BUSINESS_DOMAINS))  # intents of one domain, so some are easily confused
        intents = sorted(rng.choice(sorted(domains[domain]), 7, replace=False).tolist())
        splits: dict[str, tuple[list[str], list[str]]] = {n: ([], []) for n in ("train", "validation", "test")}
        for intent in intents:
            texts = list(pooled[intent])
            rng.shuffle(texts)
            for k, name in enumerate(("train", "validation", "test")):
                part = texts[k * PER_INTENT_CLINC7 : (k + 1) * PER_INTENT_CLINC7]
                splits[name][0].extend(part)
                splits[name][1].extend([intent] * len(part))
        return splits, {"domain": domain, "intents": intents}
    if task == "banking77":
        from intentune import Config, Examples
        from intentune.data import split_validation

        config = Config()
        config.data.split_seed = seed
        train, validation = split_validation(Examples(*read(SHARED / "banking77" / "train.csv")), config.data)
        splits = {
            "train": (train.texts, train.labels),
            "validation": (validation.texts, validation.labels),
            "test": read(SHARED / "banking77" / "test.csv"),
        }
        return splits, {"validation": "10% of train.csv, stratified"}
    texts, labels = read(SHARED / "clinc150" / "train.csv")
    keep = [i for i, y in enumerate(labels) if y != "oos"]
    splits = {
        "train": ([texts[i] for i in keep], [labels[i] for i in keep]),
        "validation": read(SHARED / "clinc150" / "validation.csv"),
        "test": read(SHARED / "clinc150" / "test.csv"),
    }
    return splits, {"train": "train.csv without its 100 oos rows"}


def score_rows(task: str, seed: int, max_steps: int | None, work: Path) -> dict[str, Any]:
    """Train one model (or reuse the one in ``work``) and save the scores the comparison needs."""
    # Imported before training starts, so the code that fits after training is the code of this moment.
    import intentune.evaluate.calibration  # noqa: F401
    import intentune.evaluate.oos  # noqa: F401
    from intentune import Config, IntentClassifier
    from intentune.evaluate.calibration import softmax
    from intentune.evaluate.oos import DistanceModel

    splits, drawn = task_data(task, seed)
    # clinc7_oos judges the clinc7 model of the same seed (its validation oos rows take no part in training).
    model_work = work.parent / f"clinc7-{seed}" if task == "clinc7_oos" else work
    scores_file, model_dir, info_file = work / "scores.npz", model_work / "model", model_work / "info.json"
    if not scores_file.exists():
        if (model_dir / "intentune.json").exists():
            clf = IntentClassifier.load(model_dir)
            info = json.loads(info_file.read_text(encoding="utf-8"))
        else:
            config = Config()
            config.model.backbone = BACKBONE
            config.train.seed = seed
            config.train.max_steps = max_steps
            clf = IntentClassifier(config).fit(*splits["train"], validation=splits["validation"])
            clf.save(model_dir)
            model_work.mkdir(parents=True, exist_ok=True)
            info = {"train_summary": {k: v for k, v in clf.train_summary_.items() if k != "oos"}}
            info_file.write_text(json.dumps(info, indent=1, default=str), encoding="utf-8")
        from intentune.evaluate.oos import outlier_texts

        matching = [*splits["train"][0], *splits["validation"][0]]
        stand_ins, dropped = outlier_texts(matching)
        outputs = {name: clf.forward(splits[name][0], pooled=True) for name in ("train", "validation", "test")}
        outputs["stand_in"] = clf.forward(stand_ins, pooled=True)
        distance = DistanceModel.fit(outputs["train"][1], splits["train"][1], "oos")
        arrays = {"classes": np.array(clf.classes_), "temperature": np.array(clf.temperature_)}
        for name in ("validation", "test", "stand_in"):
            arrays[f"{name}_probs"] = softmax(outputs[name][0], clf.temperature_)
            arrays[f"{name}_distances"] = distance.distances(outputs[name][1])
        for name in ("validation", "test"):
            arrays[f"{name}_labels"] = np.array(splits[name][1])
        arrays["stand_in_dropped"] = np.array(dropped)
        np.savez_compressed(scores_file, **arrays)
    info = json.loads(info_file.read_text(encoding="utf-8"))
    return {**drawn, **info, "rows": {k: len(v[0]) for k, v in splits.items()}}


def compare(scores: Any, budget: float = 0.01, confidence: float = 0.9) -> dict[str, dict[str, Any]]:
    """Each way of fitting (see the module docstring) on the validation rows, judged on the test rows."""
    from intentune.evaluate.oos import apply_rejection, oos_metrics
    from intentune.evaluate.thresholds import fit_thresholds

    classes = [str(c) for c in scores["classes"]]
    val = (scores["validation_probs"], scores["validation_distances"], scores["validation_labels"].astype(object))
    test = (scores["test_probs"], scores["test_distances"], scores["test_labels"].astype(object))
    stand = (scores["stand_in_probs"], scores["stand_in_distances"], np.array(["oos"] * len(scores["stand_in_probs"])))
    has_oos = bool((val[2] == "oos").any())
    blind = tuple(part[val[2] != "oos"] for part in val)
    with_stand_ins = tuple(np.concatenate([a, b]) for a, b in zip(blind, stand))
    ways = {"old": (val, 0.0), "new": (val, confidence)}
    if has_oos:
        ways |= {"old_blind": (blind, 0.0), "new_blind": (blind, confidence)}
    ways["new_stand_ins"] = (with_stand_ins, confidence)
    plain = apply_rejection(classes, test[0], None, "oos")[0]
    before = oos_metrics(test[2], plain, "oos")
    results = {}
    for name, ((probs, distances, labels), level) in ways.items():
        chooses = bool((labels == "oos").any())  # as in fit: the distance competes only when oos rows can judge it
        fitted = fit_thresholds(
            probs, list(labels), classes, max_accuracy_drop=budget, budget_confidence=level,
            distances=distances if chooses else None,
        )  # fmt: skip
        answers = apply_rejection(classes, test[0], fitted, "oos", test[1])[0]
        after = oos_metrics(test[2], answers, "oos")
        results[name] = {
            "score": fitted.score,
            "chosen": fitted.fit["chosen"],
            "global_threshold": round(fitted.global_threshold, 6),
            "validation_rows": fitted.fit["in_scope_rows"],
            "validation_oos_rows": fitted.fit["oos_rows"],
            "budget": fitted.fit["budget"],
            "test_in_scope_accuracy_before": before["in_scope_accuracy"],
            "test_in_scope_accuracy_after": after["in_scope_accuracy"],
            "test_cost": round(before["in_scope_accuracy"] - after["in_scope_accuracy"], 6),
            "test_oos_recall": after["oos_recall"],
            "test_oos_precision": after["oos_precision"],
        }
    return results


def markdown(records: list[dict[str, Any]]) -> str:
    """One row per task, seed and way."""
    lines = [
        "| task | way | score (chosen) | val. rows (oos) | test acc. before | after | cost | OOS recall |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for record in records:
        for way, r in record["ways"].items():
            recall = "–" if r["test_oos_recall"] is None else f"{r['test_oos_recall']:.4f}"
            lines.append(
                f"| {record['task']} (seed {record['seed']}) | {way} | {r['score']} ({r['chosen']}) | "
                f"{r['validation_rows']} ({r['validation_oos_rows']}) | {r['test_in_scope_accuracy_before']:.4f} | "
                f"{r['test_in_scope_accuracy_after']:.4f} | {r['test_cost']:.4f} | {recall} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("task", choices=TASKS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-steps", type=int, default=None, help="cap on the optimizer steps of the training")
    parser.add_argument("--work", default=None, help="where the model and scores go (default /tmp/rejection_budget)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "rejection_budget.json"))
    args = parser.parse_args()
    work = Path(args.work or f"/tmp/rejection_budget/{args.task}-{args.seed}")
    work.mkdir(parents=True, exist_ok=True)
    facts = score_rows(args.task, args.seed, args.max_steps, work)
    scores = np.load(work / "scores.npz")
    record = {
        "task": args.task,
        "seed": args.seed,
        "backbone": BACKBONE,
        "max_steps": args.max_steps,
        "max_accuracy_drop": 0.01,
        "data": facts,
        "stand_ins": {"rows": len(scores["stand_in_probs"]), "dropped_matching": int(scores["stand_in_dropped"])},
        "ways": compare(scores),
        "machine": machine(),
    }
    out = Path(args.out)
    records = json.loads(out.read_text(encoding="utf-8")) if out.exists() else []
    records = [r for r in records if (r["task"], r["seed"]) != (args.task, args.seed)] + [record]
    out.write_text(json.dumps(records, indent=1) + "\n", encoding="utf-8")
    print(markdown(records))


if __name__ == "__main__":
    main()
