"""benchmarks/step_time.py on a tiny random decoder: every setting is timed over the same steps and recorded."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from intentune import Examples, write_examples

from conftest import toy_data

ROOT = Path(__file__).resolve().parents[1]


def test_step_time_times_the_trainer_and_each_setting(tiny_decoder: Path, tmp_path: Path) -> None:
    data = tmp_path / "train.csv"
    texts, labels = toy_data()
    write_examples(Examples(texts * 4, labels * 4), data)  # 96 rows: 6 steps of 16
    out = tmp_path / "step_time.json"
    command = [sys.executable, "benchmarks/step_time.py", "--backbone", str(tiny_decoder), "--data", str(data),
               "--steps", "6", "--skip", "2", "--setting", "batch-8=train.batch_size=8,train.ema_epochs=0",
               "--out", str(out)]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    record = json.loads(out.read_text())
    assert [r["setting"] for r in record["results"]] == ["trainer", "defaults", "batch-8"]
    assert [r["batch_size"] for r in record["results"]] == [16, 16, 8]
    assert record["results"][2]["sets"] == ["train.batch_size=8", "train.ema_epochs=0"]
    for r in record["results"]:  # 3 timed steps (2 to 5)
        assert r["ms_per_step"] > 0
        assert r["examples_per_s"] == pytest.approx(3 * r["batch_size"] / (3 * r["ms_per_step"] / 1000), rel=0.01)
    assert record["machine"]["torch"] and record["steps"] == 6 and record["skip"] == 2
    assert "| batch-8 (train.batch_size=8, train.ema_epochs=0) | 8 |" in done.stdout


def test_step_time_refuses_a_skip_outside_the_steps(tmp_path: Path) -> None:
    command = [sys.executable, "benchmarks/step_time.py", "--steps", "5", "--skip", "4", "--out", str(tmp_path / "x")]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "--skip must be" in done.stderr
