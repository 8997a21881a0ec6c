"""Messages with two intents on CLINC150: a softmax model against multi-label models, through the CLI.

    python -m benchmarks.multilabel [--train small|full] [--backbone minilm-l6] [--device cpu|cuda]
                                    [--only softmax sigmoid sigmoid-pairs] [--set section.key=value ...]
                                    [--connectors C ...] [--test-connectors C ...] [--reuse] [--render]

The test set is CLINC150's test rows (4,500 in-scope, 1,000 `oos`) plus pairs of in-scope test messages from
different domains joined as "A, and B" and labelled `a+b` (`--test-pairs`, seeded; `--test-connectors`: joined by
these instead, one drawn per pair). Three models train on the same CLINC150 training rows with default settings
otherwise:

- **softmax**: the single-intent rows as they are (`model.multi_label = auto` stays off): one intent per message;
- **sigmoid**: the same rows with `model.multi_label = true`: a sigmoid per intent, thresholds per intent;
- **sigmoid-pairs**: the training and validation rows plus synthetic pairs made the same way from their own rows
  (`--train-pairs`, `--validation-pairs`, `--connectors`), so `auto` switches multi-label on.

Each model answers every test row; a softmax answer is one intent (none when rejected), a multi-label answer every
intent above its threshold. Scored with :func:`intentune.evaluate.evaluate_multilabel`: subset accuracy (all
intents right), micro-F1, on all rows and on the single- and two-intent rows apart, and out-of-scope recall.
Writes ``benchmarks/results/multilabel_clinc150.json`` after every model and prints a Markdown table
(``--render`` prints it from that record alone). ``--reuse`` scores the model a run folder already holds (the same
training data, another test set) instead of training it again.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

from .common import ROOT, SHARED, machine, read_rows, relative, run, write_rows

MODELS = ("softmax", "sigmoid", "sigmoid-pairs")


def make_pairs(
    rows: list[tuple[str, str]], domains: dict[str, str], count: int, seed: int, connectors: list[str]
) -> list[tuple[str, str]]:
    """``count`` messages joining two in-scope rows of different domains ("A, and B", labelled ``a+b``): what
    ``intentune data join --groups domains.json --count COUNT --seed SEED --only-joined`` writes (``--connector``
    each of ``connectors``)."""
    from intentune.data import Examples
    from intentune.multi_intent import join_intent_pairs

    joined = join_intent_pairs(Examples([t for t, _ in rows], [y for _, y in rows]), count, groups=domains, seed=seed,
                               connectors=connectors)  # fmt: skip
    return list(zip(joined.texts, joined.labels))


def prepare(args: argparse.Namespace, folder: Path) -> dict[str, Path]:
    """The data files of the three runs and the test file."""
    data = Path(args.data)
    domains = {i: d for d, intents in json.loads((data / "domains.json").read_text()).items() for i in intents}
    train = read_rows(data / ("small" if args.train == "small" else "") / "train.csv")
    validation, test = read_rows(data / "validation.csv"), read_rows(data / "test.csv")
    joined, tested = args.connectors, args.test_connectors
    return {
        "train": write_rows(folder / "train.csv", train),
        "validation": write_rows(folder / "validation.csv", validation),
        "train_pairs": write_rows(
            folder / "train_pairs.csv", train + make_pairs(train, domains, args.train_pairs, 1, joined)
        ),
        "validation_pairs": write_rows(
            folder / "validation_pairs.csv",
            validation + make_pairs(validation, domains, args.validation_pairs, 2, joined),
        ),
        "test": write_rows(folder / "test.csv", test + make_pairs(test, domains, args.test_pairs, 3, tested)),
    }


def train_command(name: str, files: dict[str, Path], out: Path, args: argparse.Namespace) -> list[str]:
    pairs = name == "sigmoid-pairs"
    command = [sys.executable, "-m", "intentune.cli", "train", str(files["train_pairs" if pairs else "train"]),
               "--validation", str(files["validation_pairs" if pairs else "validation"]), "--backbone", args.backbone,
               "-o", str(out), "--quiet", "--set", f"train.device={args.device}"]  # fmt: skip
    if name == "sigmoid":
        command += ["--set", "model.multi_label=true"]
    for override in args.overrides:
        command += ["--set", override]
    return command


def score(model_dir: Path, test: list[tuple[str, str]]) -> dict[str, Any]:
    """Every test row answered by the saved model, scored as sets of intents."""
    from intentune.evaluate import evaluate_multilabel
    from intentune.inference import load_predictor

    predictor = load_predictor(model_dir, runtime="torch")
    texts, labels = [t for t, _ in test], [y for _, y in test]
    started = time.perf_counter()
    details = predictor.predict_details(texts)
    seconds = time.perf_counter() - started
    found = [[i["intent"] for i in d["intents"]] for d in details]
    report = evaluate_multilabel(labels, found, predictor.classes_, separator="+", oos_label="oos", texts=texts)
    out = report.to_dict()
    return {
        "multi_label": predictor.is_multi_label,
        "subset_accuracy": out["subset_accuracy"],
        "micro_f1": out["micro"]["f1"],
        "macro_f1": out["macro"]["f1"],
        "hamming_loss": out["hamming_loss"],
        "by_row_kind": out["by_row_kind"],
        "rows": out["rows"],
        "oos": out["oos"],
        "predict_seconds": round(seconds, 1),
    }


def markdown(results: list[dict[str, Any]], records: list[str] | None = None) -> str:
    """The results table; with ``records`` (one name per result), a column saying which record each row is from."""

    def f(value: float | None) -> str:
        return "-" if value is None else f"{value:.4f}"

    named = records is not None
    lines = [
        "| model | " + ("record | " if named else "") + "subset acc. (all) | micro-F1 (all) | macro-F1 (all) "
        "| single-intent rows: subset acc. | two-intent rows: subset acc. | two-intent rows: micro-F1 | OOS recall "
        "| in-scope rows answered empty |",
        "|---|" + ("---|" if named else "") + "---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for i, r in enumerate(results):
        single, multi = r["by_row_kind"]["single_intent"] or {}, r["by_row_kind"]["multi_intent"] or {}
        record = f"{records[i]} | " if records is not None else ""
        lines.append(
            f"| {r['model']} | {record}{f(r['subset_accuracy'])} | {f(r['micro_f1'])} | {f(r['macro_f1'])} "
            f"| {f(single.get('subset_accuracy'))} | {f(multi.get('subset_accuracy'))} | {f(multi.get('micro_f1'))} "
            f"| {f(r['oos']['recall'])} | {r['oos']['in_scope_rejected']} |"
        )
    return "\n".join(lines)


def render_records(paths: list[str], models: tuple[str, ...] | list[str] = MODELS) -> str:
    """One table of the results of ``models`` in the records at ``paths``, each row naming its record's file,
    machine and commit (for runs of one model under different code or settings)."""
    results, names = [], []
    for path in paths:
        record = json.loads(Path(path).read_text())
        machine = record["machine"]
        cpu = " ".join(re.sub(r"\((R|TM)\)|Processor", " ", machine["cpu"]).split())  # Intel(R) Xeon(R) -> Intel Xeon
        for result in (r for r in record["results"] if r["model"] in models):
            results.append(result)
            names.append(f"`{Path(path).name}` ({cpu}, {machine['commit']})")
    return markdown(results, names)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(SHARED / "clinc150"))
    parser.add_argument("--train", choices=("small", "full"), default="small")
    parser.add_argument("--backbone", default="minilm-l6")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--only", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--train-pairs", type=int, default=1500)
    parser.add_argument("--validation-pairs", type=int, default=300)
    parser.add_argument("--test-pairs", type=int, default=1500)
    # The records of RESULTS.md join with ", and " alone: fixed here, whatever `intentune data join`'s default is.
    joins = "What joins the training and validation pairs."
    parser.add_argument("--connectors", nargs="+", default=[", and "], help=joins)
    parser.add_argument("--test-connectors", nargs="+", default=[", and "], help="What joins the test pairs.")
    reuse = "Score the model a run folder already holds instead of training it (pass the --connectors it trained with)."
    parser.add_argument("--reuse", action="store_true", help=reuse)
    parser.add_argument("--set", dest="overrides", nargs="*", default=[])
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "multilabel_clinc150.json"))
    parser.add_argument("--render", action="store_true", help="Print the table of the record in --out; run nothing.")
    render = "Print one table of these records' results (of the --only models); run nothing."
    parser.add_argument("--render-records", nargs="+", help=render)
    args = parser.parse_args()
    if args.render_records:
        print(render_records(args.render_records, args.only))
        return
    if args.render:
        print(markdown(json.loads(Path(args.out).read_text())["results"]))
        return
    folder = ROOT / "runs" / "bench-multilabel"
    files = prepare(args, folder / "data")
    test = read_rows(files["test"])
    out_path = Path(args.out)
    record = json.loads(out_path.read_text()) if out_path.is_file() else {"results": []}
    results = [r for r in record["results"] if r["model"] not in args.only]
    for name in args.only:
        run_dir = folder / name
        command = train_command(name, files, run_dir, args)
        reused = args.reuse and (run_dir / "model" / "intentune.json").is_file()
        stats = {"reused": relative([str(run_dir)])} if reused else run(command)
        result = {"model": name, "train_data": args.train, "backbone": args.backbone, **score(run_dir / "model", test)}
        result |= {"train": stats, "command": relative(command)}
        results = [r for r in results if r["model"] != name] + [result]
        results.sort(key=lambda r: MODELS.index(r["model"]))
        record = {"benchmark": "multilabel_clinc150", "device": args.device, "machine": machine(),
                  "test_rows": len(test), "settings": {k: getattr(args, k) for k in
                  ("train", "train_pairs", "validation_pairs", "test_pairs", "connectors",
                  "test_connectors", "overrides")},
                  "results": results}  # fmt: skip
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text(json.dumps(record, indent=2) + "\n")
    print(markdown(results))


if __name__ == "__main__":
    main()
