"""Atomic folder writes: a process killed at any point of a save leaves the old folder or the new one, whole, and
the next save removes what the killed one left behind.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from intentune import _io
from intentune._io import atomic_folder, clean_leftovers, write_file_atomic

SRC = Path(__file__).resolve().parents[1] / "src"

# Saves version after version of a folder whose files must agree with each other; optionally dies (os._exit,
# which runs no cleanup, like a kill) at a chosen point of the first save.
WRITER = """
import os, sys
sys.path.insert(0, {src!r})
from pathlib import Path
from intentune import _io

target, die = Path(sys.argv[1]), sys.argv[2]
if die == "fill":
    with _io.atomic_folder(target) as tmp:
        (tmp / "half").write_text("x")
        os._exit(9)
if die == "after-swap":
    real = _io.replace_folder
    def replace_then_die(new, old):
        real(new, old)
        os._exit(9)
    _io.replace_folder = replace_then_die
if die == "two-step":
    _io._exchange = lambda a, b: False
    real_rename, calls = os.rename, []
    def rename_then_die(a, b):
        real_rename(a, b)
        calls.append(1)
        if len(calls) == 1:
            os._exit(9)
    _io.os.rename = rename_then_die
version = 0
while True:
    version += 1
    with _io.atomic_folder(target) as tmp:
        blob = str(version).encode() * 200_000
        (tmp / "blob.bin").write_bytes(blob)
        (tmp / "version.txt").write_text(str(version))
    if version == 1:
        print("ready", flush=True)
    if die != "loop":
        break
"""


def _writer(tmp_path: Path, target: Path, die: str) -> subprocess.Popen[str]:
    script = tmp_path / "writer.py"
    script.write_text(WRITER.format(src=str(SRC)), encoding="utf-8")
    return subprocess.Popen([sys.executable, str(script), str(target), die], stdout=subprocess.PIPE, text=True)


def _check_whole(target: Path) -> int:
    """The folder's version, after checking that its two files belong to the same save."""
    version = int((target / "version.txt").read_text())
    assert (target / "blob.bin").read_bytes() == str(version).encode() * 200_000
    return version


def _hidden(target: Path) -> list[str]:
    return sorted(p.name for p in target.parent.iterdir() if p.name.startswith("."))


def _first_version(tmp_path: Path) -> Path:
    target = tmp_path / "model"
    with atomic_folder(target) as tmp:
        (tmp / "version.txt").write_text("0")
        (tmp / "blob.bin").write_bytes(b"0" * 200_000)
    return target


@pytest.mark.parametrize("die", ["fill", "after-swap", "two-step"])
def test_a_kill_at_each_point_leaves_a_whole_folder(tmp_path: Path, die: str) -> None:
    target = _first_version(tmp_path)
    proc = _writer(tmp_path, target, die)
    proc.wait(timeout=60)
    assert proc.returncode == 9
    if die == "two-step":
        # Without an atomic swap the old folder is aside for an instant; the next write or load puts it back.
        assert not target.exists()
        _io.recover_folder(target)
    assert _check_whole(target) in (0, 1)
    assert _hidden(target), "the killed save left its temporary folder"
    clean_leftovers(target)
    assert _hidden(target) == []
    assert _check_whole(target) in (0, 1)


def test_repeated_kills_during_saves_never_lose_the_folder(tmp_path: Path) -> None:
    target = _first_version(tmp_path)
    rng = random.Random(0)
    versions = []
    for _ in range(12):
        proc = _writer(tmp_path, target, "loop")
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.0, 0.05))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        versions.append(_check_whole(target))
    assert max(versions) >= 1
    with atomic_folder(target) as tmp:  # a normal save after the kills cleans up after them
        (tmp / "version.txt").write_text("99")
        (tmp / "blob.bin").write_bytes(b"99" * 200_000)
    assert _check_whole(target) == 99
    assert _hidden(target) == []


def test_an_error_inside_the_block_changes_nothing(tmp_path: Path) -> None:
    target = _first_version(tmp_path)
    with pytest.raises(RuntimeError), atomic_folder(target) as tmp:
        (tmp / "version.txt").write_text("5")
        raise RuntimeError("failed halfway")
    assert _check_whole(target) == 0
    assert _hidden(target) == []


def test_leftovers_of_a_running_process_are_kept(tmp_path: Path) -> None:
    target = _first_version(tmp_path)
    parent = os.getppid()  # alive for the whole test
    busy = tmp_path / f".model.tmp-{parent}-abcd"
    dead = tmp_path / ".model.tmp-999999999-abcd"
    other = tmp_path / ".other.tmp-999999999-abcd"
    for folder in (busy, dead, other):
        folder.mkdir()
    clean_leftovers(target)
    assert busy.exists() and other.exists() and not dead.exists()


def test_write_file_atomic_replaces_whole(tmp_path: Path) -> None:
    path = tmp_path / "manifest.json"
    write_file_atomic(path, "old")
    write_file_atomic(path, "new")
    assert path.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["manifest.json"]


def test_model_save_over_a_model_cleans_a_killed_save(tmp_path: Path, fitted_encoder) -> None:
    from intentune import IntentClassifier

    model = fitted_encoder.save(tmp_path / "model")
    (tmp_path / ".model.tmp-999999999-zz").mkdir()  # what a killed save leaves
    (tmp_path / ".model.old-999999999-zz").mkdir()
    fitted_encoder.save(model)
    assert _hidden(model) == []
    texts = ["where is my order", "hello there"]
    assert IntentClassifier.load(model).predict(texts) == fitted_encoder.predict(texts)


def test_keep_existing_keeps_a_folder_another_process_completed(tmp_path: Path) -> None:
    """For caches several processes fill at once: the first complete folder stays, the later one is dropped."""
    target = _first_version(tmp_path)
    with atomic_folder(target, keep_existing=True) as tmp:
        (tmp / "version.txt").write_text("1")
        (tmp / "blob.bin").write_bytes(b"1" * 200_000)
    assert _check_whole(target) == 0
    assert _hidden(target) == []
    fresh = tmp_path / "fresh"
    with atomic_folder(fresh, keep_existing=True) as tmp:
        (tmp / "version.txt").write_text("1")
    assert (fresh / "version.txt").read_text() == "1"
