"""The SetFit peer's environment, ``.venv-bench``: a virtual environment that sees every package of the project's
``.venv`` (through a ``.pth`` file) and adds the pinned packages of ``benchmarks/requirements-setfit.txt``, so the
project's own environment is never changed. ``.venv``'s installed versions are passed to pip as constraints:
if a pin ever needs a different torch or transformers, the install fails instead of replacing them.

    .venv/bin/python -m benchmarks.env      (or: make bench-env; benchmarks.run calls it on first use)
"""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH_VENV = ROOT / ".venv-bench"
REQUIREMENTS = ROOT / "benchmarks" / "requirements-setfit.txt"
STAMP = BENCH_VENV / ".installed"


def bench_python() -> Path:
    """The interpreter that runs the SetFit peer, creating its environment first if needed."""
    if not STAMP.exists() or STAMP.read_text() != REQUIREMENTS.read_text():
        create()
    return BENCH_VENV / "bin" / "python"


def create() -> None:
    """Create ``.venv-bench`` on top of the running interpreter's environment and install the pins."""
    base = Path(sys.base_prefix) / "bin" / f"python{sys.version_info.major}.{sys.version_info.minor}"
    subprocess.run([str(base), "-m", "venv", str(BENCH_VENV)], check=True)
    site = Path(sysconfig.get_paths()["purelib"])  # the project's .venv site-packages
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    bench_site = BENCH_VENV / "lib" / version / "site-packages"
    # addsitedir (not a bare path line) so that the .pth files there, the editable install's included, are read too.
    (bench_site / "_project_venv.pth").write_text(f"import site; site.addsitedir({str(site)!r})\n")
    frozen = subprocess.run(
        [sys.executable, "-m", "pip", "freeze", "--exclude-editable", "--disable-pip-version-check"],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as constraints:
        constraints.write(frozen)
        constraints.flush()
        subprocess.run(
            [str(BENCH_VENV / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
             "-r", str(REQUIREMENTS), "-c", constraints.name],
            check=True,
        )  # fmt: skip
    STAMP.write_text(REQUIREMENTS.read_text())


if __name__ == "__main__":
    create()
    print(f"SetFit environment ready: {bench_python()}")
