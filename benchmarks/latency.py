"""CPU inference speed and accuracy of a trained model in each runtime: PyTorch, ONNX Runtime float32 and int8.

    python benchmarks/latency.py MODEL [MODEL ...] [--data FILE] [--runtimes torch onnx onnx-int8]
                                 [--queries 200] [--rounds 3] [--warmup 20] [--batch-size 64] [--threads N] [--out FILE]

For each model folder (a run folder or its ``model/``; exported with ``intentune export --quantize int8`` first
when it has no ``onnx/`` yet) and runtime, it records:

- single-query latency: ``predict_details([text])`` end to end (clean-up, tokenization, network, calibration,
  rejection), one text at a time, p50 / p95 / mean over ``--rounds`` rounds of ``--queries`` texts (each after
  ``--warmup`` calls; the rounds take the runtimes in turn, so a slow spell of a shared machine falls on all of them)
  and each round's own p50;
- batch throughput: texts per second through ``predict_details`` on consecutive batches of ``--batch-size`` texts
  of the whole labelled file;
- accuracy on that file (default ``../shared/datasets/banking77/test.csv``) and agreement with PyTorch's answers.

Threads: the cores this process may use (``taskset -c 0,1`` narrows them), for PyTorch and ONNX Runtime alike.
Writes ``benchmarks/results/latency.json`` with the machine and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, SHARED, machine, relative  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", type=Path, help="Model folders (or run folders).")
    parser.add_argument("--data", type=Path, default=SHARED / "banking77" / "test.csv")
    parser.add_argument("--runtimes", nargs="+", default=["torch", "onnx", "onnx-int8"])
    parser.add_argument("--queries", type=int, default=200, help="Single queries timed per round (after a warm-up).")
    parser.add_argument("--rounds", type=int, default=3, help="Rounds of single queries, the runtimes interleaved.")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=None, help="Default: the cores this process may use.")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "latency.json")
    args = parser.parse_args()

    import torch

    from intentune.inference import cpu_threads

    threads = args.threads or cpu_threads()
    torch.set_num_threads(threads)
    results = []
    for model in args.models:
        results += bench_model(model, args, threads)
    record = {
        "benchmark": "latency",
        "command": relative([sys.executable.rsplit("/", 1)[-1], *sys.argv]),
        "data": relative([str(args.data)]),
        "threads": threads,
        "machine": {**machine(), "onnxruntime": _version("onnxruntime"), "onnx": _version("onnx")},
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(markdown(results))


def bench_model(model: Path, args: argparse.Namespace, threads: int) -> list[dict]:
    from intentune import IntentClassifier, load_examples
    from intentune.export import export_model
    from intentune.folder import resolve_model_dir
    from intentune.inference import OnnxPredictor, onnx_path

    folder = resolve_model_dir(model)
    export_s = None
    if any(r != "torch" and not onnx_path(folder, r).is_file() for r in args.runtimes):
        started = time.perf_counter()
        export_model(folder, quantize="int8")
        export_s = round(time.perf_counter() - started, 1)
    predictors, load_s = {}, {}
    for runtime in args.runtimes:
        started = time.perf_counter()
        if runtime == "torch":
            predictors[runtime] = IntentClassifier.load(folder)
        else:
            predictors[runtime] = OnnxPredictor.load(folder, quantized=runtime == "onnx-int8", threads=threads)
        load_s[runtime] = time.perf_counter() - started
    dcfg = next(iter(predictors.values())).config.data
    data = load_examples(args.data, text_field=dcfg.text_field, label_field=dcfg.label_field)
    # Rounds interleave the runtimes, so a slow spell of a shared machine falls on each of them alike.
    times: dict[str, list[list[float]]] = {runtime: [] for runtime in args.runtimes}
    for _ in range(args.rounds):
        for runtime, predictor in predictors.items():
            times[runtime].append(single_query_times(predictor, data.texts, args.queries, args.warmup))
    results, reference = [], None
    for runtime, predictor in predictors.items():
        answers, throughput = batch_answers(predictor, data.texts, args.batch_size)
        reference = answers if runtime == "torch" else reference
        results.append({
            "model": relative([str(folder)]),
            "backbone": predictor.config.model.backbone,
            "kind": predictor.kind_,
            "num_layers": predictor.config.model.num_layers,
            "runtime": runtime,
            "file_mib": round(_size(folder, runtime) / 2**20, 1),
            "load_s": round(load_s[runtime], 2),
            "export_s": export_s,
            **latency_summary(times[runtime]),
            "batch_size": args.batch_size,
            "throughput_texts_per_s": round(throughput, 1),
            "rows": len(data.texts),
            "accuracy": round(float(np.mean(np.array(answers) == np.array(data.labels))), 4),
            "agreement_with_torch": (
                round(float(np.mean(np.array(answers) == np.array(reference))), 4) if reference else None
            ),
        })  # fmt: skip
    return results


def single_query_times(predictor: object, texts: list[str], queries: int, warmup: int) -> list[float]:
    """Milliseconds per ``predict_details([text])``, texts taken in file order (cycled if too few)."""
    for i in range(warmup):
        predictor.predict_details([texts[i % len(texts)]])
    times = []
    for i in range(queries):
        text = texts[(warmup + i) % len(texts)]
        started = time.perf_counter()
        predictor.predict_details([text])
        times.append((time.perf_counter() - started) * 1000)
    return times


def latency_summary(rounds: list[list[float]]) -> dict:
    """p50 / p95 / mean over every round's queries, and each round's own p50 (how much the machine drifted)."""
    every = [t for times in rounds for t in times]
    return {
        "queries": len(every),
        "rounds": len(rounds),
        "p50_ms": round(float(np.percentile(every, 50)), 2),
        "p95_ms": round(float(np.percentile(every, 95)), 2),
        "mean_ms": round(float(np.mean(every)), 2),
        "round_p50_ms": [round(float(np.percentile(times, 50)), 2) for times in rounds],
    }


def batch_answers(predictor: object, texts: list[str], batch_size: int) -> tuple[list[str], float]:
    """The answers for all texts, predicted ``batch_size`` at a time in file order, and texts per second."""
    answers = []
    started = time.perf_counter()
    for start in range(0, len(texts), batch_size):
        batch = texts[start : start + batch_size]
        answers += [d["intent"] for d in predictor.predict_details(batch, batch_size=batch_size)]
    return answers, len(texts) / (time.perf_counter() - started)


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


def _size(folder: Path, runtime: str) -> int:
    from intentune.inference import onnx_path

    if runtime != "torch":
        return onnx_path(folder, runtime).stat().st_size
    return sum(p.stat().st_size for p in folder.glob("*.safetensors"))


def markdown(results: list[dict]) -> str:
    lines = [
        "| backbone | runtime | file MiB | p50 ms | p95 ms | rounds' p50 ms | texts/s (batched) | accuracy "
        "| agreement with torch |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        agreement = "" if r["agreement_with_torch"] is None else f"{r['agreement_with_torch']:.4f}"
        backbone = r["backbone"] + (f" ({r['num_layers']} layers)" if r.get("num_layers") else "")
        rounds = " / ".join(str(p) for p in r.get("round_p50_ms", []))
        lines.append(
            f"| {backbone} | {r['runtime']} | {r['file_mib']} | {r['p50_ms']} | {r['p95_ms']} | {rounds} "
            f"| {r['throughput_texts_per_s']} | {r['accuracy']:.4f} | {agreement} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
