"""Helpers shared by the benchmark scripts: run a command and measure it, describe the machine."""

from __future__ import annotations

import csv
import datetime as dt
import os
import platform
import shlex
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "datasets"


def run(command: list[str]) -> dict[str, float]:
    """Run a command in the repository root; return its wall time (s) and peak resident memory (MiB)."""
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"command failed: {shlex.join(command)}")
    return {"wall_s": round(wall, 1), "peak_rss_mib": round(usage.ru_maxrss / 1024, 1)}


def machine() -> dict[str, str]:
    """CPU, cores, versions, date and commit, recorded with every result; the commit ends in ``-dirty`` when the
    package's source (``src/``) or a benchmark script has changes not committed, so a record never names code it
    did not run."""
    import torch
    import transformers

    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor(),
    )
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        code = ["src", "benchmarks/*.py"]
        changed = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", *code], cwd=ROOT, capture_output=True)
        if commit and changed.returncode == 1:  # the package's or the scripts' code differs from the commit's
            commit += "-dirty"
    except OSError:  # no git on the machine (a copied tree)
        commit = ""
    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none",
        "date": dt.date.today().isoformat(),
        "commit": commit.strip(),
    }


def relative(command: list[str]) -> str:
    """A command line as a user would type it from the repository root."""
    return shlex.join(command).replace(str(ROOT) + "/", "").replace(str(ROOT.parent / "shared"), "../shared")


def reached(accuracy: float, target: float) -> bool:
    """Whether a validation accuracy reached ``target``. Curves carry 5 decimals and final accuracies 4, so both are
    compared at 4: the same count of right answers on the same validation file counts as reached."""
    return round(accuracy, 4) >= target - 1e-9


def read_rows(path: Path) -> list[tuple[str, str]]:
    """The (text, intent) rows of a CSV file with those two columns."""
    with path.open(encoding="utf-8", newline="") as handle:
        return [(row["text"], row["intent"]) for row in csv.DictReader(handle)]


def write_rows(path: Path, rows: list[tuple[str, str]]) -> Path:
    """Write (text, intent) rows as a CSV file (its folder created); returns the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["text", "intent"])
        writer.writerows(rows)
    return path


def first_per_intent(rows: list[tuple[str, str]], per_intent: int) -> list[tuple[str, str]]:
    """The first ``per_intent`` rows of each intent, in file order (the ``--quick`` slices of the scripts)."""
    taken: dict[str, int] = {}
    kept = []
    for text, intent in rows:
        if taken.get(intent, 0) < per_intent:
            taken[intent] = taken.get(intent, 0) + 1
            kept.append((text, intent))
    return kept
