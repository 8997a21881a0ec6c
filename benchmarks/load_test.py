"""Load test of `intentune serve`: N requests from C concurrent clients over loopback, with and without batching.

    python benchmarks/load_test.py [--model DIR] [--requests 5000] [--concurrency 16] [--texts-per-request 1]
                                   [--modes batched unbatched] [--set serve.key=value ...] [--out FILE] [--render]

Without ``--model`` it serves the bundled encoder (``minilm-l6``) fine-tuned on ``examples/train.csv`` (trained
once into ``runs/bench-load-test-minilm-l6``, reused afterwards). For each mode it starts ``intentune serve`` in a
subprocess on a free loopback port (``unbatched`` is ``serve.max_batch_size=1``: one model call per request),
sends 50 warm-up requests, then ``--requests`` POST /v1/predict requests with texts from ``examples/test.csv``
from ``--concurrency`` clients (httpx2 over asyncio, one connection each), and records errors (non-200 answers
and failed connections), p50 / p90 / p99 latency and requests and texts per second. Client and server share the
machine's cores. Writes ``benchmarks/results/load_test.json`` (``--out``) with the machine and prints a Markdown
table (``--render`` prints it from the record alone).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, machine, relative, run  # noqa: E402

MODES = {"batched": [], "unbatched": ["serve.max_batch_size=1"]}
WARMUP = 50


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="A model or run folder; default: train minilm-l6 on examples/train.csv.")
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--texts-per-request", type=int, default=1)
    parser.add_argument("--modes", nargs="+", choices=list(MODES), default=list(MODES))
    parser.add_argument("--set", dest="overrides", nargs="*", default=[])
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "load_test.json"))
    parser.add_argument("--render", action="store_true", help="Print the table of the record in --out; run nothing.")
    args = parser.parse_args()
    if args.render:
        print(markdown(json.loads(Path(args.out).read_text())))
        return
    model = Path(args.model) if args.model else train_default_model()
    texts = [row["text"] for row in csv.DictReader((ROOT / "examples" / "test.csv").open(encoding="utf-8"))]
    results = []
    for mode in args.modes:
        overrides = [*MODES[mode], *args.overrides]
        with serving(model, overrides, ROOT / "runs" / f"load-test-server-{mode}.log") as (url, command):
            stats = asyncio.run(load(url, texts, args.requests, args.concurrency, args.texts_per_request))
        results.append({"mode": mode, "overrides": overrides, "command": command, **stats})
        print(f"{mode}: {stats['requests_per_s']} requests/s, p99 {stats['latency_ms']['p99']} ms", file=sys.stderr)
    record = {
        "benchmark": "load_test",
        "model": relative([str(model)]),
        "requests": args.requests,
        "concurrency": args.concurrency,
        "texts_per_request": args.texts_per_request,
        "machine": machine(),
        "results": results,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=2) + "\n")
    print(markdown(record))


def train_default_model() -> Path:
    run_dir = ROOT / "runs" / "bench-load-test-minilm-l6"
    if not (run_dir / "model" / "intentune.json").exists():
        examples = ROOT / "examples"
        run([sys.executable, "-m", "intentune.cli", "train", str(examples / "train.csv"),
             "--validation", str(examples / "validation.csv"), "--test", str(examples / "test.csv"),
             "--backbone", "minilm-l6", "-o", str(run_dir), "--quiet"])  # fmt: skip
    return run_dir


@contextmanager
def serving(model: Path, overrides: list[str], log: Path) -> Iterator[tuple[str, str]]:
    """Start ``intentune serve`` on a free loopback port, stop it on exit; yield its URL and command line."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "intentune.cli", "serve", str(model), "--port", str(port)]
    for override in overrides:
        command += ["--set", override]
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "INTENTUNE_API_KEY"}
    with log.open("w", encoding="utf-8") as stderr:
        process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=stderr, env=env)
        try:
            url = f"http://127.0.0.1:{port}"
            wait_until_healthy(url, process, log)
            yield url, relative(command).replace(sys.executable, "python")
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


def wait_until_healthy(url: str, process: subprocess.Popen, log: Path, timeout_s: float = 180) -> None:
    import httpx2

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited with code {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx2.get(url + "/health", timeout=2).status_code == 200:
                return
        except httpx2.TransportError:
            pass
        time.sleep(0.2)
    process.kill()
    raise SystemExit(f"the server did not answer /health within {timeout_s:.0f} s; see {log}")


async def load(url: str, texts: list[str], requests: int, concurrency: int, per_request: int) -> dict:
    """Send ``requests`` predict requests from ``concurrency`` workers; return latency and throughput figures."""
    import httpx2

    limits = httpx2.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx2.AsyncClient(base_url=url, limits=limits, timeout=60) as client:

        async def one(i: int) -> tuple[float, int]:
            batch = [texts[(i * per_request + j) % len(texts)] for j in range(per_request)]
            started = time.perf_counter()
            try:
                response = await client.post("/v1/predict", json={"texts": batch, "top_k": 3})
                status = response.status_code
            except httpx2.HTTPError:
                status = 0  # the connection failed or timed out
            return time.perf_counter() - started, status

        async def worker(queue: list[int], out: list[tuple[float, int]]) -> None:
            while queue:
                out.append(await one(queue.pop()))

        await asyncio.gather(*(worker(list(range(WARMUP // concurrency + 1)), []) for _ in range(concurrency)))
        pending, done = list(range(requests)), []
        started = time.perf_counter()
        await asyncio.gather(*(worker(pending, done) for _ in range(concurrency)))
        wall = time.perf_counter() - started
    latencies = np.array([seconds for seconds, _ in done]) * 1000
    errors = sum(status != 200 for _, status in done)
    return {
        "errors": int(errors),
        "wall_s": round(wall, 2),
        "requests_per_s": round(len(done) / wall, 1),
        "texts_per_s": round(len(done) * per_request / wall, 1),
        "latency_ms": {q: round(float(np.percentile(latencies, int(q[1:]))), 2) for q in ("p50", "p90", "p99")}
        | {"mean": round(float(latencies.mean()), 2), "max": round(float(latencies.max()), 2)},
    }


def markdown(record: dict) -> str:
    lines = [
        f"{record['requests']:,} requests, {record['concurrency']} concurrent clients, "
        f"{record['texts_per_request']} text(s) per request, model {record['model']}:",
        "",
        "| mode | requests/s | texts/s | p50 ms | p90 ms | p99 ms | errors |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in record["results"]:
        lat = r["latency_ms"]
        lines.append(
            f"| {r['mode']} | {r['requests_per_s']} | {r['texts_per_s']} | {lat['p50']} | {lat['p90']} | "
            f"{lat['p99']} | {r['errors']} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
