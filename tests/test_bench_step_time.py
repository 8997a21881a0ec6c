"""benchmarks/step_time.py on a tiny random decoder: every setting is timed over the same steps and recorded.

Its ``main()`` runs in this process (``sys.argv`` patched), as ``python benchmarks/step_time.py ...`` would run it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from intentune import Examples, write_examples

from conftest import ROOT, toy_data

sys.path.insert(0, str(ROOT))
step_time = pytest.importorskip("benchmarks.step_time")


def run_main(monkeypatch: pytest.MonkeyPatch, *args: str) -> None:
    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(sys, "argv", ["benchmarks/step_time.py", *args])
    step_time.main()


def test_step_time_times_the_trainer_and_each_setting(
    tiny_decoder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "train.csv"
    texts, labels = toy_data()
    write_examples(Examples(texts * 4, labels * 4), data)  # 96 rows: 6 steps of 16
    out = tmp_path / "step_time.json"
    run_main(monkeypatch, "--backbone", str(tiny_decoder), "--data", str(data), "--steps", "6", "--skip", "2",
             "--setting", "batch-8=train.batch_size=8,train.ema_epochs=0", "--out", str(out))  # fmt: skip
    record = json.loads(out.read_text())
    assert [r["setting"] for r in record["results"]] == ["trainer", "defaults", "batch-8"]
    assert [r["batch_size"] for r in record["results"]] == [16, 16, 8]
    assert record["results"][2]["sets"] == ["train.batch_size=8", "train.ema_epochs=0"]
    for r in record["results"]:  # 3 timed steps (2 to 5)
        assert r["ms_per_step"] > 0
        assert r["examples_per_s"] == pytest.approx(3 * r["batch_size"] / (3 * r["ms_per_step"] / 1000), rel=0.01)
    assert record["machine"]["torch"] and record["steps"] == 6 and record["skip"] == 2
    assert "| batch-8 (train.batch_size=8, train.ema_epochs=0) | 8 |" in capsys.readouterr().out


def test_step_time_refuses_a_skip_outside_the_steps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        run_main(monkeypatch, "--steps", "5", "--skip", "4", "--out", str(tmp_path / "x"))
    assert exit_info.value.code == 2 and "--skip must be" in capsys.readouterr().err
