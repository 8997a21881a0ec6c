"""Frozen probe of a decoder's pooling: how well ``last``, ``mean`` and ``prompt`` sentence vectors of the bundled
decoder, without any fine-tuning, separate BANKING77's intents under a logistic regression.

    nice -n 10 .venv/bin/python -m benchmarks.pooling_probe            # about 15 CPU-minutes on one thread
    nice -n 10 .venv/bin/python -m benchmarks.pooling_probe --train-per-intent 2 --validation-per-intent 1 \
        --test-per-intent 1 --out /tmp/probe.json                       # a smoke run of a few CPU-minutes

Training rows: the benchmark suite's 10-shot file (``banking77/train_10shot.csv``, the ``banking77-10shot`` task of
``benchmarks/run.py``), or with ``--seed`` a draw of ``benchmarks/draw_fewshot.py`` from DialoGLUE's training split
(``--train-per-intent N``: only the first N of each intent, for smoke runs).
Validation rows: the first ``--validation-per-intent`` rows of each intent of DialoGLUE's validation split, in file
order; test rows: the first ``--test-per-intent`` rows of each intent of ``banking77/test.csv`` (0: all of them).

Every text is tokenized by :func:`intentune.preprocess.encode_texts` (``prompt``: wrapped in
``model.prompt_template``) and run through the frozen backbone in batches of similar length
(:func:`intentune.net.token_states`, under ``torch.inference_mode``); one pass over the plain texts gives both the
``last`` and the ``mean`` vectors, a second pass over the wrapped texts the ``prompt`` vectors. Per pooling, the
features are standardised on the training rows and a scikit-learn ``LogisticRegression`` is fitted for each C of
``--c-grid``; the C with the best validation accuracy is kept and scored on the test rows.

Prints one line per pooling (chosen C, validation and test accuracy) and writes the JSON result (settings, rows,
accuracies per C, embedding times, machine) to ``--out`` (default ``benchmarks/results/pooling_probe.json``).

    .venv/bin/python -m benchmarks.pooling_probe --fine-tuned      # prints RESULTS.md's fine-tuned table

``--fine-tuned`` embeds nothing: it renders the Markdown table of the fine-tuned suite pieces kept under
``benchmarks/results/pooling/<pooling>/`` (``benchmarks.run --suite full --only
banking77-10shot/intentune-smollm2-135m --set model.pooling=<pooling>``), or under ``--folder`` (the same pieces
rerun at the decoders' later defaults sit in ``benchmarks/results/pooling_xeon/``).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, SHARED, machine  # noqa: E402
from draw_fewshot import draw  # noqa: E402

BANKING = SHARED / "banking77"
POOLINGS = ("last", "mean", "prompt")
FINE_TUNED = ROOT / "benchmarks" / "results" / "pooling"
PIECE = "banking77-10shot__intentune-smollm2-135m__cpu.json"


def fine_tuned_table(folder: Path = FINE_TUNED) -> str:
    """The Markdown table of the fine-tuned decoder pieces, one row per pooling folder that holds a record."""
    lines = [
        "| pooling | validation acc. | test acc. | macro-F1 | train s | record |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for pooling in POOLINGS:
        path = folder / pooling / PIECE
        if not path.exists():
            continue
        record = json.loads(path.read_text(encoding="utf-8"))
        m = record["metrics"]
        lines.append(
            f"| `{pooling}` | {record['validation_accuracy']:.4f} | {m['accuracy']:.4f} | {m['macro_f1']:.4f} | "
            f"{record['train_seconds']:.0f} | `{path.relative_to(ROOT / 'benchmarks')}` |"
        )
    return "\n".join(lines)


def read_rows(path: Path) -> list[dict[str, str]]:
    """The ``text,intent`` rows of a CSV file, in file order."""
    with path.open(newline="", encoding="utf-8") as handle:
        return [{"text": r["text"], "intent": r["intent"]} for r in csv.DictReader(handle)]


def first_per_intent(rows: list[dict[str, str]], per_intent: int) -> list[dict[str, str]]:
    """The first ``per_intent`` rows of each intent, in file order (0: all rows)."""
    if per_intent <= 0:
        return rows
    seen: dict[str, int] = {}
    kept = []
    for row in rows:
        if seen.get(row["intent"], 0) < per_intent:
            seen[row["intent"]] = seen.get(row["intent"], 0) + 1
            kept.append(row)
    return kept


def embed_all(
    model: Any, tokenizer: Any, texts: list[str], *, template: str | None, max_length: int, batch_size: int
) -> dict[str, np.ndarray]:
    """Pooled vectors of the frozen decoder: ``last`` and ``mean`` of the plain texts, or ``prompt`` (the last
    token) of the wrapped ones, each ``(len(texts), hidden)`` float32."""
    import torch

    from intentune.backbones import DECODER
    from intentune.net import pool_hidden, token_states
    from intentune.preprocess import encode_texts, pad_batch

    ids = encode_texts(tokenizer, texts, max_length, template)
    poolings = ("prompt",) if template is not None else ("last", "mean")
    out = {p: np.zeros((len(ids), model.config.hidden_size), dtype=np.float32) for p in poolings}
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))  # similar lengths per batch: little padding
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            batch = pad_batch([ids[i] for i in chunk], int(tokenizer.pad_token_id), side=tokenizer.padding_side)
            states = token_states(model, batch["input_ids"], batch["attention_mask"], kind=DECODER)
            for pooling in poolings:
                out[pooling][chunk] = pool_hidden(states, batch["attention_mask"], pooling).float().numpy()
    return out


def load_or_embed(
    args: argparse.Namespace, rows: dict[str, list[dict[str, str]]], template: str
) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, float]]:
    """The vectors per pooling and split (read from ``--vectors`` if that file exists, else embedded and, with
    ``--vectors``, written there), and the seconds each embedding pass took."""
    from intentune.backbones import DECODER, load_backbone

    features: dict[str, dict[str, np.ndarray]] = {p: {} for p in POOLINGS}
    seconds: dict[str, float] = {}
    if args.vectors is not None and args.vectors.is_file():
        with np.load(args.vectors) as saved:
            for key in saved.files:
                pooling, split = key.split("/")
                features[pooling][split] = saved[key]
        return features, seconds
    model, tokenizer, kind = load_backbone(args.backbone)
    if kind != DECODER:
        raise SystemExit(f"{args.backbone} is an encoder; this probe compares a decoder's poolings")
    model.eval()
    for wrap, name in ((None, "last+mean"), (template, "prompt")):
        started = time.perf_counter()
        for split, split_rows in rows.items():
            texts = [r["text"] for r in split_rows]
            vectors = embed_all(model, tokenizer, texts, template=wrap, max_length=args.max_length,
                                batch_size=args.batch_size)  # fmt: skip
            for pooling, v in vectors.items():
                features[pooling][split] = v
        seconds[name] = round(time.perf_counter() - started, 1)
        print(f"embedded ({name}) in {seconds[name]} s", flush=True)
    if args.vectors is not None:
        np.savez(args.vectors, **{f"{p}/{split}": v for p, splits in features.items() for split, v in splits.items()})
    return features, seconds


def probe(
    features: dict[str, np.ndarray], labels: dict[str, list[str]], c_grid: list[float], seed: int
) -> dict[str, Any]:
    """Standardise on the training rows, fit a logistic regression per C, keep the C with the best validation
    accuracy; its validation and test accuracy."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(features["train"])
    x = {split: scaler.transform(v) for split, v in features.items()}
    grid, models = {}, {}
    for c in c_grid:
        models[c] = LogisticRegression(C=c, max_iter=3000, random_state=seed).fit(x["train"], labels["train"])
        grid[str(c)] = round(float((models[c].predict(x["validation"]) == np.array(labels["validation"])).mean()), 4)
    best = max(c_grid, key=lambda c: (grid[str(c)], -c))  # ties: the stronger regularisation
    test = float((models[best].predict(x["test"]) == np.array(labels["test"])).mean())
    return {"C": best, "validation_accuracy": grid[str(best)], "test_accuracy": round(test, 4),
            "validation_accuracy_per_C": grid}  # fmt: skip


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="smollm2-135m", help="a decoder: bundled name or folder")
    parser.add_argument("--train", type=Path, default=BANKING / "train_10shot.csv")
    parser.add_argument("--seed", type=int, default=None, help="draw the 10-shot rows with draw_fewshot instead")
    parser.add_argument("--validation", type=Path, default=BANKING / "dialoglue_split" / "validation.csv")
    parser.add_argument("--test", type=Path, default=BANKING / "test.csv")
    parser.add_argument("--train-per-intent", type=int, default=0, help="0: every training row")
    parser.add_argument("--validation-per-intent", type=int, default=5)
    parser.add_argument("--test-per-intent", type=int, default=20, help="0: the whole test file")
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 keeps a shared machine usable)")
    parser.add_argument("--c-grid", type=float, nargs="+", default=[0.001, 0.01, 0.1, 1.0, 10.0])
    parser.add_argument(
        "--vectors", type=Path, help="an .npz file keeping the vectors: read if it exists, else written"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "pooling_probe.json")
    parser.add_argument("--fine-tuned", action="store_true", help="print the fine-tuned pieces' table and stop")
    parser.add_argument(
        "--folder", type=Path, default=FINE_TUNED, help="with --fine-tuned: the folder of <pooling>/ record folders"
    )
    args = parser.parse_args(argv)
    if args.fine_tuned:
        print(fine_tuned_table(args.folder.resolve()))
        return {}

    import torch

    from intentune import Config

    torch.set_num_threads(args.threads)
    source = BANKING / "dialoglue_split" / "train.csv"
    train = read_rows(args.train) if args.seed is None else draw(source, 10, args.seed)
    rows = {
        "train": first_per_intent(train, args.train_per_intent),
        "validation": first_per_intent(read_rows(args.validation), args.validation_per_intent),
        "test": first_per_intent(read_rows(args.test), args.test_per_intent),
    }
    template = Config().model.prompt_template
    cpu_started = time.process_time()
    features, seconds = load_or_embed(args, rows, template)
    labels = {split: [r["intent"] for r in split_rows] for split, split_rows in rows.items()}
    results = {}
    for pooling in POOLINGS:
        results[pooling] = probe(features[pooling], labels, args.c_grid, seed=0)
        r = results[pooling]
        print(f"{pooling:>6}: C={r['C']:<5} validation {r['validation_accuracy']:.4f}  test {r['test_accuracy']:.4f}")
    report = {
        "backbone": args.backbone,
        "frozen": True,
        "max_length": args.max_length,
        "prompt_template": template,
        "train": (str(args.train.relative_to(SHARED)) if args.seed is None else f"draw_fewshot --seed {args.seed}")
        + (f": first {args.train_per_intent} rows per intent" if args.train_per_intent > 0 else ""),
        "validation": f"{args.validation.relative_to(SHARED)}: first {args.validation_per_intent} rows per intent",
        "test": f"{args.test.relative_to(SHARED)}: "
        + (f"first {args.test_per_intent} rows per intent" if args.test_per_intent > 0 else "all rows"),
        "rows": {split: len(split_rows) for split, split_rows in rows.items()},
        "classifier": "StandardScaler (fit on train) + LogisticRegression(max_iter=3000), C chosen on validation",
        "c_grid": args.c_grid,
        "results": results,
        "embed_seconds": seconds,
        "cpu_seconds": round(time.process_time() - cpu_started, 1),
        "torch_threads": args.threads,
        "machine": machine(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"-> {args.out}")
    return report


if __name__ == "__main__":
    main()
