"""Suite pieces of intentune side by side on one GPU: every task at every backbone learning rate, all at once.

    python benchmarks/gpu_sweep.py --backbone FOLDER --name mpnet-base --out OUT \\
        [--tasks clinc150-oos,banking77-full,banking77-10shot] [--lrs 1e-4,5e-5] [--set KEY=VALUE ...] \\
        [--data DATASETS] [--device cuda] [--commit HASH]

Made for a lent GPU machine, where a device session is short: a small model leaves most of such a GPU idle, so the
pieces (``TASK/intentune-NAME`` of the full suite, ``benchmarks.run``) run at the same time, each in its own process
with 2 CPU threads, and their training times include the sharing. ``--backbone`` is the model folder (on that
machine a bundled backbone's packages are not installed, so its folder travels instead); ``--data`` a copy of the
shared ``datasets`` folder. Each piece's record is copied to ``OUT/lrRATE__TASK.json`` as it finishes, and
``OUT/progress.txt`` shows every piece's validation curve so far, so a call stopped at its time limit still brings
back what finished.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import shutil
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]
from benchmarks import run as bench  # noqa: E402
from benchmarks.common import machine  # noqa: E402

WORK = Path("/tmp/gpu_sweep")


def use_data(folder: Path) -> None:
    """Point the suite's tasks at a copy of the shared datasets folder."""
    for name, task in list(bench.TASKS.items()):
        moved = {f: folder / Path(getattr(task, f)).relative_to(bench.SHARED) for f in ("train", "validation", "test")}
        bench.TASKS[name] = dataclasses.replace(task, **moved)


def piece(args: argparse.Namespace, task: str, lr: str, info: dict, done: list[str], started: float) -> None:
    """Run ``task`` at backbone rate ``lr`` and copy its record to ``args.out``."""
    out = WORK / f"lr{lr}"
    out.mkdir(parents=True, exist_ok=True)
    sets = [f"model.backbone={args.backbone}", f"train.learning_rate={lr}", *args.sets]
    label = f"{task}/intentune-{args.name}"
    record = bench.run_piece(label, args.device, out, info | {"set": sets}, threads=2, sets=sets)
    shutil.copy(out / f"{label.replace('/', '__')}__{args.device}.json", args.out / f"lr{lr}__{task}.json")
    done.append(f"[{time.perf_counter() - started:5.0f} s] {task} lr {lr}: {bench.summary_line(record)}")
    print(done[-1], flush=True)


def progress(out: Path, started: float) -> None:
    """Every 15 s: each piece's validation curve so far, into ``out/progress.txt``."""
    while True:
        lines = [f"elapsed {time.perf_counter() - started:.0f} s"]
        for log in sorted(WORK.glob("*/logs/*.log")):
            text = log.read_text(errors="replace").splitlines()
            seen = [line for line in text if "evaluation:" in line or "Error" in line]
            lines.append(f"{log.parent.parent.name}/{log.name}: " + " | ".join(seen[-6:]))
        (out / "progress.txt").write_text("\n".join(lines) + "\n")
        time.sleep(15)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", required=True, help="model folder (or bundled name) to train")
    parser.add_argument("--name", default="mpnet-base", help="the backbone's label in the records")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--tasks", default="clinc150-oos,banking77-full,banking77-10shot")
    parser.add_argument("--lrs", default="1e-4,5e-5", help="backbone learning rates, comma-separated")
    parser.add_argument("--set", action="append", default=[], dest="sets", metavar="KEY=VALUE")
    parser.add_argument("--data", type=Path, help="a copy of the shared datasets folder")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--commit", default="", help="the commit of the copied tree (it has no git)")
    args = parser.parse_args()
    if args.data:
        use_data(args.data)
    args.out.mkdir(parents=True, exist_ok=True)
    info = {"suite": "full", "device": args.device, "id": dt.datetime.now().isoformat(timespec="seconds"),
            "machine": machine() | ({"commit": args.commit} if args.commit else {}), "threads": 2}  # fmt: skip
    started, done = time.perf_counter(), []
    threading.Thread(target=progress, args=(args.out, started), daemon=True).start()
    workers = [
        threading.Thread(target=piece, args=(args, task, lr, info, done, started))
        for task in args.tasks.split(",")
        for lr in args.lrs.split(",")
    ]
    for worker in workers:
        worker.start()
        time.sleep(2)  # staggered backbone loads
    for worker in workers:
        worker.join()
    print(f"{len(done)} of {len(workers)} pieces in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
