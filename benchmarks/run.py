"""The peer benchmark suite: intentune against TF-IDF, SetFit and a plain Hugging Face Trainer fine-tune.

The peers: TF-IDF + logistic regression, SetFit on the same MiniLM body (and on the MPNet body on the few-shot
tasks), and ``transformers.Trainer`` on each bundled backbone; the data: the shared BANKING77 and CLINC150 files;
each method runs in its own process.

    .venv/bin/python -m benchmarks.run --suite quick            # BANKING77 5-shot, MiniLM methods (< 20 min, 2 cores)
    .venv/bin/python -m benchmarks.run --suite full --list      # every piece with its expected duration
    .venv/bin/python -m benchmarks.run --suite full --only banking77-10shot --only 'clinc150-oos/trainer-*'
    .venv/bin/python -m benchmarks.run --suite quick --device cuda

Each piece (one method on one task) writes ``benchmarks/results/suite/SUITE/TASK__METHOD__DEVICE.json`` (metrics,
times, peak memory, machine, versions, date, commit; the quick and full suites keep their results apart, since the
quick suite shortens SetFit's training, see ``SUITE_OPTIONS``); TF-IDF runs with every task selected, since every
time is also given as a ratio to its time in the same run. Afterwards the tables in ``benchmarks/RESULTS.md`` and
``README.md`` are rendered again (``python -m benchmarks.render``). The SetFit peer runs in ``.venv-bench``
(``benchmarks.env``), created on first use.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import fnmatch
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks.common import ROOT, SHARED, machine
from benchmarks.peers import Job

RESULTS = ROOT / "benchmarks" / "results" / "suite"
BANKING, CLINC = SHARED / "banking77", SHARED / "clinc150"


@dataclass(frozen=True)
class Task:
    """A data set: its files, and what its test data measures."""

    name: str
    train: Path
    validation: Path
    test: Path
    oos_label: str | None = None
    drop_oos: bool = False
    description: str = ""


TASKS = {
    t.name: t
    for t in (
        # DialoGLUE's training split: the validation rows are part of the original train.csv, so they are left out.
        Task(
            "banking77-full",
            BANKING / "dialoglue_split/train.csv",
            BANKING / "dialoglue_split/validation.csv",
            BANKING / "test.csv",
            description="BANKING77, DialoGLUE training split (8,622 rows)",
        ),
        Task(
            "banking77-10shot",
            BANKING / "train_10shot.csv",
            BANKING / "dialoglue_split/validation.csv",
            BANKING / "test.csv",
            description="BANKING77 10-shot (770 rows)",
        ),
        Task(
            "banking77-5shot",
            BANKING / "train_5shot.csv",
            BANKING / "dialoglue_split/validation.csv",
            BANKING / "test.csv",
            description="BANKING77 5-shot (385 rows)",
        ),
        Task(
            "clinc150-oos",
            CLINC / "train.csv",
            CLINC / "validation.csv",
            CLINC / "test.csv",
            oos_label="oos",
            description="CLINC150 full with out-of-scope rows (15,100 rows; test 4,500 in-scope + 1,000 oos)",
        ),
        Task(
            "clinc150-10shot",
            CLINC / "train_10shot.csv",
            CLINC / "validation.csv",
            CLINC / "test.csv",
            oos_label="oos",
            drop_oos=True,
            description="CLINC150 10-shot, in-scope rows only (1,500 rows)",
        ),
    )  # fmt: skip
}

BACKBONES = ("minilm-l6", "smollm2-135m")
# Method labels: METHOD or METHOD-BACKBONE. SetFit's body is MiniLM (a sentence encoder; the decoder is not one).
# intentune also runs with the larger encoder, mpnet-base (its Trainer pair is not part of the suite).
METHOD_LABELS = ("tfidf", *(f"intentune-{b}" for b in (*BACKBONES, "mpnet-base")), "setfit-minilm-l6",
                 *(f"trainer-{b}" for b in BACKBONES))  # fmt: skip
# SetFit with the MPNet body (the SetFit paper's own body) runs on the few-shot tasks, the setting SetFit is made
# for: on the full training files its pairs would take days on a CPU.
FEW_SHOT_TASKS = ("banking77-10shot", "banking77-5shot", "clinc150-10shot")
SUITES = {
    "quick": [
        f"banking77-5shot/{m}" for m in ("tfidf", "intentune-minilm-l6", "trainer-minilm-l6", "setfit-minilm-l6")
    ],
    "full": [f"{task}/{method}" for task in TASKS for method in METHOD_LABELS]
    + [f"{task}/setfit-mpnet-base" for task in FEW_SHOT_TASKS],
}
# Settings a suite changes. SetFit's contrastive phase on BANKING77 5-shot with the paper's 20 pair iterations takes
# ~18 of the quick suite's 20 minutes on a 2-core CPU (1,061 s measured), so the quick suite draws 8 pairs per
# example in each direction instead; the full suite keeps 20. The setting is recorded with each result.
SUITE_OPTIONS: dict[str, dict[str, dict[str, Any]]] = {"quick": {"setfit": {"num_iterations": 8}}}


def suite_options(suite: str, method: str) -> dict[str, Any]:
    """The settings ``suite`` gives ``method`` (see ``SUITE_OPTIONS``)."""
    return dict(SUITE_OPTIONS.get(suite, {}).get(method, {}))


def make_job(piece: str, device: str, suite: str = "full", sets: Sequence[str] = ()) -> Job:
    """The worker's job for a piece named ``TASK/METHOD[-BACKBONE]`` in ``suite``. ``sets`` (``KEY=VALUE``, as
    ``intentune train --set``) change intentune's config; the ``Trainer`` peer takes the epochs, learning rate,
    batch size and max length that result, so both still train with the same ones (TF-IDF and SetFit ignore them)."""
    task_name, label = piece.split("/")
    task = TASKS[task_name]
    method, _, backbone = label.partition("-")
    options = suite_options(suite, method)
    if method == "trainer":
        options |= intentune_training_settings(backbone, sets)
    if method == "intentune" and sets:
        options["set"] = list(sets)
    return Job(method, str(task.train), str(task.validation), str(task.test), backbone=backbone, device=device,
               oos_label=task.oos_label, drop_oos=task.drop_oos, options=options)  # fmt: skip


def intentune_training_settings(backbone: str, sets: Sequence[str] = ()) -> dict[str, Any]:
    """intentune's epochs, backbone learning rate, batch size and max length (its defaults changed by ``sets``),
    which the Trainer peer uses too (the same backbone, epochs and learning rate; padding to the same max length)."""
    from intentune.backbones import BUNDLED
    from intentune.config import Config
    from intentune.train import default_learning_rate

    config = Config().override(list(sets))
    return {
        "epochs": config.train.epochs,
        "learning_rate": config.train.learning_rate or default_learning_rate(BUNDLED[backbone].kind, backbone),
        "batch_size": config.train.batch_size,
        "max_length": config.model.max_length,
    }


# ----------------------------------------------------------------------------------------------- expected durations
# Rough seconds per text on 2 CPU cores (forward + backward while training; forward only when predicting), from
# the earlier benchmarks in RESULTS.md. Only for --list; the measured times are in the results.
TRAIN_S = {"minilm-l6": 0.02, "smollm2-135m": 0.12, "mpnet-base": 0.12}
PREDICT_S = {"minilm-l6": 0.008, "smollm2-135m": 0.035, "mpnet-base": 0.045}
# Per sentence pair, both measured on BANKING77 5-shot (15,400 pairs): MiniLM 1,061 s on the AMD EPYC, MPNet 2,472 s
# on the Intel Xeon (faster per core: the two do not compare exactly).
SETFIT_PAIR_S = {"minilm-l6": 0.069, "mpnet-base": 0.16}


def expected_seconds(piece: str, suite: str = "full", sets: Sequence[str] = ()) -> float:
    """A rough expected duration of a piece on a 2-core CPU (with intentune's epochs as ``sets`` leave them)."""
    task_name, label = piece.split("/")
    task = TASKS[task_name]
    n_train, n_val, n_test = (count_rows(p) for p in (task.train, task.validation, task.test))
    method, _, backbone = label.partition("-")
    if method == "tfidf":  # one logistic regression per C of the grid
        return 10 + 0.015 * n_train
    if method == "setfit":  # num_iterations positive and as many negative pairs per example
        iterations = suite_options(suite, "setfit").get("num_iterations", 20)
        return 40 + 2 * iterations * n_train * SETFIT_PAIR_S[backbone] + (n_val + n_test) * PREDICT_S[backbone]
    from intentune.config import Config

    cfg = Config().override(list(sets)).train  # intentune's, as the run sets it; the Trainer follows its epochs
    epochs, padding = cfg.epochs, 2.5 if method == "trainer" else 1.0  # the Trainer pads every text to max_length
    few_shot_on = method == "intentune" and n_train / count_labels(task.train) <= cfg.few_shot_max_per_intent
    few_shot = cfg.few_shot_epochs if few_shot_on else 0  # the contrastive phase's passes over the data
    train = (epochs * padding + few_shot) * n_train * TRAIN_S[backbone]
    return 60 + train + (epochs * padding * n_val + n_val + n_test) * PREDICT_S[backbone]


def count_rows(path: Path) -> int:
    with open(path, newline="", encoding="utf-8") as f:
        return sum(1 for _ in csv.DictReader(f))


def count_labels(path: Path) -> int:
    with open(path, newline="", encoding="utf-8") as f:
        return len({row["intent"] for row in csv.DictReader(f)})


# ------------------------------------------------------------------------------------------------------- running
def select(suite: str, patterns: list[str]) -> list[str]:
    """The suite's pieces matching any pattern (a piece name, a glob, a task or a method label), with the TF-IDF
    baseline of every selected task first."""
    pieces = SUITES[suite]
    if patterns:
        pieces = [p for p in pieces if any(fnmatch.fnmatch(p, pat) or pat in p.split("/") for pat in patterns)]
        if not pieces:
            raise SystemExit(f"--only {' '.join(patterns)}: no piece of the {suite} suite matches (see --list)")
    baselines = [f"{p.split('/')[0]}/tfidf" for p in pieces]
    ordered = list(dict.fromkeys(baselines + pieces))
    return sorted(ordered, key=lambda p: (list(TASKS).index(p.split("/")[0]), p.split("/")[1] != "tfidf"))


def piece_env(threads: int = 0) -> dict[str, str]:
    """The environment of a piece's process: offline hub, this checkout's code first on ``PYTHONPATH`` (a
    ``PYTHONPATH`` already set, say packages installed with ``pip --target``, is kept after it), and ``threads``
    CPU threads when given (torch's thread pools read them at start-up)."""
    path = os.pathsep.join(p for p in (str(ROOT / "src"), str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    env = os.environ | {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
                        "PYTHONPATH": path}  # fmt: skip
    if threads:
        env |= {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    return env


def run_piece(
    piece: str,
    device: str,
    out_dir: Path,
    run_info: dict[str, Any],
    threads: int = 0,
    baseline: float | None = None,
    suite: str = "full",
    sets: Sequence[str] = (),
) -> dict[str, Any]:
    """Run one piece in a child process; record its wall time and peak resident memory (``os.wait4``), and
    ``baseline``, the training time of the TF-IDF piece of the same task in the same run."""
    job = make_job(piece, device, suite, sets)
    python = sys.executable
    if job.method == "setfit":
        from benchmarks.env import bench_python

        python = str(bench_python())
    env = piece_env(threads)
    stem = f"{piece.replace('/', '__')}__{device}"
    log = out_dir / "logs" / f"{stem}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp, open(log, "w") as log_file:
        job_file, result_file = Path(tmp) / "job.json", Path(tmp) / "result.json"
        job_file.write_text(json.dumps(asdict(job)))
        started = time.perf_counter()
        process = subprocess.Popen([python, "-m", "benchmarks.peers", str(job_file), str(result_file)],
                                   cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT)  # fmt: skip
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        ok = os.waitstatus_to_exitcode(status) == 0 and result_file.exists()
        result = json.loads(result_file.read_text()) if ok else {"error": f"exit {status}; see {log.relative_to(ROOT)}"}
    record = {
        "piece": piece,
        "task": piece.split("/")[0],
        "method": piece.split("/")[1],
        **result,
        "process": {"wall_s": round(wall, 1), "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
                    "load_average_before": round(load_before, 2), "load_average_after": round(os.getloadavg()[0], 2)},
        "tfidf_train_seconds_same_run": baseline,
        "run": run_info,
    }  # fmt: skip
    (out_dir / f"{stem}.json").write_text(json.dumps(record, indent=2) + "\n")
    return record


def versions() -> dict[str, str]:
    """Versions of the packages the methods use (SetFit's from its pinned requirements)."""
    from importlib.metadata import PackageNotFoundError, version

    import intentune

    found = {}
    for name in ("intentune", "scikit-learn", "numpy", "accelerate", "tokenizers"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:  # run from a copied tree on PYTHONPATH (a lent GPU machine), not installed
            found[name] = intentune.__version__ if name == "intentune" else "not installed"
    pins = (ROOT / "benchmarks" / "requirements-setfit.txt").read_text().splitlines()
    for line in pins:
        name, _, pinned = line.partition("==")
        if name in ("setfit", "sentence-transformers", "datasets"):
            found[name] = pinned
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", choices=sorted(SUITES), default="quick")
    parser.add_argument("--only", action="append", default=[], metavar="NAME",
                        help="a piece (TASK/METHOD), glob, task or method label; repeatable")  # fmt: skip
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--list", action="store_true", help="list the selected pieces with expected durations")
    parser.add_argument("--out-dir", type=Path, help=f"default: {RESULTS.relative_to(ROOT)}/SUITE")
    parser.add_argument("--threads", type=int, default=0,
                        help="CPU threads of every method (OMP_NUM_THREADS); 0 = torch's default")  # fmt: skip
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="sets",
                        help="change intentune's config (as `intentune train --set`); the Trainer peer follows its "
                        "epochs, learning rate, batch size and max length; repeatable")  # fmt: skip
    parser.add_argument("--no-render", action="store_true", help="do not rewrite RESULTS.md and README.md")
    args = parser.parse_args()
    from intentune.config import Config
    from intentune.errors import ConfigError

    try:
        Config().override(args.sets)  # a mistyped key fails here, not after an hour of other pieces
    except ConfigError as exc:
        parser.error(str(exc))
    pieces = select(args.suite, args.only)
    if args.list:
        total = 0.0
        for piece in pieces:
            seconds = expected_seconds(piece, args.suite, args.sets)
            total += seconds
            print(f"{piece:45s} ~{seconds / 60:6.1f} min")
        print(f"{len(pieces)} pieces, ~{total / 60:.0f} min expected on a 2-core CPU (rough estimate)")
        return
    args.out_dir = args.out_dir or RESULTS / args.suite
    args.out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    mach = machine() | {"cores": str(len(os.sched_getaffinity(0)))}
    if mach["commit"] and uncommitted_changes():
        mach["commit"] += "-dirty"  # the code measured is not exactly the commit's
    run_info = {"suite": args.suite, "device": args.device, "id": dt.datetime.now().isoformat(timespec="seconds"),
                "machine": mach, "versions": versions(),
                "threads": args.threads or "default", "set": args.sets}  # fmt: skip
    baselines: dict[str, float] = {}
    for piece in pieces:
        print(f"[{time.perf_counter() - started:7.0f} s] {piece} ...", flush=True)
        task = piece.split("/")[0]
        record = run_piece(
            piece, args.device, args.out_dir, run_info, args.threads, baselines.get(task), args.suite, args.sets
        )
        if piece.endswith("/tfidf") and "error" not in record:
            baselines[task] = record["train_seconds"]
        print(f"          {summary_line(record)}", flush=True)
    duration = round(time.perf_counter() - started, 1)
    summary = run_info | {"pieces": pieces, "duration_s": duration, "only": args.only}
    stamp = run_info["id"].replace(":", "")
    (args.out_dir / f"run_{args.suite}_{args.device}_{stamp}.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"{len(pieces)} pieces in {duration / 60:.1f} min; results in {args.out_dir}")
    if not args.no_render:
        from benchmarks.render import render_all

        render_all()


def uncommitted_changes() -> bool:
    """Whether the package's or the benchmarks' code differs from the commit."""
    status = subprocess.run(["git", "status", "--porcelain", "--", "src", "benchmarks/*.py"], cwd=ROOT,
                            capture_output=True, text=True)  # fmt: skip
    return bool(status.stdout.strip())


def summary_line(record: dict[str, Any]) -> str:
    if "error" in record:
        return f"FAILED: {record['error']}"
    m = record["metrics"]
    return (f"accuracy {m['accuracy']:.4f}, macro-F1 {m['macro_f1']:.4f}, train {record['train_seconds']} s, "
            f"peak {record['process']['peak_rss_mib']} MiB")  # fmt: skip


if __name__ == "__main__":
    main()
