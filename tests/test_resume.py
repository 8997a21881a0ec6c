"""Runs that survive and repeat: checkpoints and --resume (also after SIGKILL), data-parallel training in two
processes (gloo), the run manifest, and same seed -> same metrics in fresh processes."""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from intentune import IntentClassifier
from intentune.cli import app
from intentune.config_files import save_config
from intentune.errors import ConfigError
from intentune.manifest import file_sha256, row_id
from intentune.train import Callback

from conftest import tiny_config, toy_data

BIN = Path(sys.executable).parent


class _Interrupt(Callback):
    """Raises at a given step, as a crash would, after the checkpoint of an earlier step was written."""

    def __init__(self, at_step: int) -> None:
        self.at_step = at_step

    def on_step_end(self, state, control) -> None:
        if state.step == self.at_step:
            raise KeyboardInterrupt


@pytest.mark.parametrize("ema_epochs", [0.0, 1.0])  # the weight average is part of the checkpoint too
def test_resumed_training_ends_where_uninterrupted_training_ends(
    tiny_encoder: Path, tmp_path: Path, ema_epochs: float
) -> None:
    texts, labels = toy_data()
    validation = (texts[::3], labels[::3])
    # Few-shot mode on: its step-0 evaluation must come back from the checkpoint too.
    cfg = tiny_config(tiny_encoder, epochs=6, checkpoint_every_steps=4, early_stopping_patience=3,
                      ema_epochs=ema_epochs, few_shot="on")  # fmt: skip
    cfg.model.dropout = 0.2  # the random states must be restored too, or dropout masks differ after resuming
    whole = IntentClassifier(cfg).fit(texts, labels, validation=validation, checkpoint_dir=tmp_path / "a")
    assert not (tmp_path / "a").exists()  # removed after a finished run (train.keep_checkpoint = false)

    with pytest.raises(KeyboardInterrupt):
        IntentClassifier(cfg).fit(texts, labels, validation=validation, checkpoint_dir=tmp_path / "b",
                                  callbacks=[_Interrupt(11)])  # fmt: skip
    state = json.loads((tmp_path / "b" / "state.json").read_text())
    # Checkpoints at 4 and 8; evaluations at 0 (few-shot mode's prototype head: the toy set is few-shot), 3 and 6.
    assert state["step"] == 8 and [h["step"] for h in state["history"]] == [0, 3, 6]
    resumed = IntentClassifier(cfg).fit(texts, labels, validation=validation, checkpoint_dir=tmp_path / "b",
                                        resume=True)  # fmt: skip
    assert resumed.train_summary_["resumed_from_step"] == 8
    assert resumed.train_summary_["steps"] == whole.train_summary_["steps"] == 18
    assert [h["val_loss"] for h in resumed.history_] == pytest.approx([h["val_loss"] for h in whole.history_])
    for (name, p0), p1 in zip(whole.net_.state_dict().items(), resumed.net_.state_dict().values()):
        assert torch.allclose(p0, p1, atol=1e-6), name


def test_resume_refuses_other_data_and_missing_checkpoints(tiny_encoder: Path, tmp_path: Path) -> None:
    texts, labels = toy_data()
    cfg = tiny_config(tiny_encoder, epochs=4, checkpoint_every_steps=2)
    with pytest.raises(ConfigError, match="nothing to resume"):
        IntentClassifier(cfg).fit(texts, labels, checkpoint_dir=tmp_path / "none", resume=True)
    with pytest.raises(KeyboardInterrupt):
        IntentClassifier(cfg).fit(texts, labels, checkpoint_dir=tmp_path / "c", callbacks=[_Interrupt(5)])
    with pytest.raises(ConfigError, match="other data or training settings"):
        IntentClassifier(cfg).fit(texts[1:], labels[1:], checkpoint_dir=tmp_path / "c", resume=True)
    other = tiny_config(tiny_encoder, epochs=4, checkpoint_every_steps=2, learning_rate=1e-4)
    with pytest.raises(ConfigError, match="other data or training settings"):
        IntentClassifier(other).fit(texts, labels, checkpoint_dir=tmp_path / "c", resume=True)


def _write_toy(path: Path) -> Path:
    texts, labels = toy_data()
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "intent"])
        writer.writerows(zip(texts, labels))
    return path


def _cli_config(backbone: Path, path: Path, **train: object) -> Path:
    cfg = tiny_config(backbone, **train)
    cfg.train.early_stopping_patience = 0
    save_config(cfg, path)
    return path


def _cli(*args: str, env: dict[str, str] | None = None, **kwargs) -> subprocess.Popen:
    # One thread per process: the tiny models gain nothing from more, and tests share the machine.
    return subprocess.Popen([str(BIN / "intentune"), *args], env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs)  # fmt: skip


def test_sigkill_midway_then_resume_finishes_and_loses_nothing(tiny_encoder: Path, tmp_path: Path) -> None:
    data = _write_toy(tmp_path / "toy.csv")
    run = tmp_path / "run"
    args = ["train", str(data), "--validation", str(data), "-o", str(run), "--quiet"]
    # A finished first run: its model must survive the killed second run in the same folder.
    first = _cli(*args, "-c", str(_cli_config(tiny_encoder, tmp_path / "short.toml", epochs=2)))
    assert first.wait(timeout=300) == 0, first.stdout.read()
    first_meta = (run / "model" / "intentune.json").read_text()

    long_cfg = _cli_config(tiny_encoder, tmp_path / "long.toml", epochs=60, checkpoint_every_steps=6, few_shot="on")
    process = _cli(*args, "-c", str(long_cfg))
    state = run / "checkpoint" / "state.json"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and process.poll() is None:
        if state.is_file() and json.loads(state.read_text())["step"] >= 12:
            break
        time.sleep(0.05)
    assert process.poll() is None, "training ended before it could be killed: " + process.stdout.read()
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    killed_at = json.loads(state.read_text())["step"]
    assert 12 <= killed_at < 180
    # The old model is untouched, no half-written folder is left as the model or the checkpoint.
    assert (run / "model" / "intentune.json").read_text() == first_meta
    IntentClassifier.load(run / "model")

    resumed = _cli("train", str(data), "--validation", str(data), "-o", str(run), "--quiet", "--resume")
    output, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, output
    clf = IntentClassifier.load(run / "model")
    assert clf.train_summary_["resumed_from_step"] == killed_at and clf.train_summary_["steps"] == 180
    log = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]
    assert [entry["step"] for entry in log] == list(range(0, 181, 3))  # every evaluation once, in order (0: few-shot)
    assert not (run / "checkpoint").exists()
    texts, labels = toy_data()
    assert sum(p == y for p, y in zip(clf.predict(texts), labels)) >= 0.9 * len(labels)


def test_resume_without_a_checkpoint_is_a_clear_cli_error(tiny_encoder: Path, tmp_path: Path) -> None:
    data = _write_toy(tmp_path / "toy.csv")
    cfg = _cli_config(tiny_encoder, tmp_path / "c.toml", epochs=1)
    args = ["train", str(data), "-c", str(cfg), "-o", str(tmp_path / "run"), "--quiet", "--resume"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "nothing to resume" in lines[0] and "Traceback" not in result.output
    assert not (tmp_path / "run").exists()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_processes_train_data_parallel_as_well_as_one(tiny_encoder: Path, tmp_path: Path) -> None:
    data = _write_toy(tmp_path / "toy.csv")
    cfg = _cli_config(tiny_encoder, tmp_path / "c.toml", epochs=30, batch_size=4, device="cpu")
    common = ["train", str(data), "--validation", str(data), "-c", str(cfg), "--quiet"]
    single = _cli(*common, "-o", str(tmp_path / "one"))
    assert single.wait(timeout=300) == 0, single.stdout.read()
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                "--master_addr", "127.0.0.1", "--master_port", str(_free_port()), str(BIN / "intentune")]  # fmt: skip
    double = subprocess.run([*torchrun, *common, "-o", str(tmp_path / "two")], capture_output=True, text=True,
                            timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})  # fmt: skip
    assert double.returncode == 0, double.stdout + double.stderr
    one = json.loads((tmp_path / "one" / "metrics.json").read_text())
    two = json.loads((tmp_path / "two" / "metrics.json").read_text())
    manifest = json.loads((tmp_path / "two" / "manifest.json").read_text())
    assert manifest["device"]["processes"] == 2
    # Each process saw half of every epoch's batches: half the optimizer steps of the single process.
    assert two["training"]["steps"] == one["training"]["steps"] // 2
    assert two["accuracy"] >= one["accuracy"] - 0.05 and two["accuracy"] >= 0.9
    # Only the main process wrote: one report, one evaluation line per evaluation.
    steps = [json.loads(line)["step"] for line in (tmp_path / "two" / "train_log.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps))
    assert double.stdout.count("Evaluation on the validation data") == 1


def test_manifest_and_same_seed_same_metrics_in_fresh_processes(tiny_encoder: Path, tmp_path: Path) -> None:
    data = _write_toy(tmp_path / "toy.csv")
    cfg = _cli_config(tiny_encoder, tmp_path / "c.toml", epochs=4)
    runs = []
    for name in ("r1", "r2"):
        process = _cli("train", str(data), "-c", str(cfg), "--set", "data.validation_fraction=0.25",
                       "-o", str(tmp_path / name), "--quiet")  # fmt: skip
        output, _ = process.communicate(timeout=300)
        assert process.returncode == 0, output
        runs.append(tmp_path / name)
    metrics = [json.loads((r / "metrics.json").read_text()) for r in runs]
    assert metrics[0]["accuracy"] == metrics[1]["accuracy"]
    assert metrics[0]["training"]["best_validation"] == {
        **metrics[1]["training"]["best_validation"],
        "elapsed_s": metrics[0]["training"]["best_validation"]["elapsed_s"],
    }
    logs = [(r / "train_log.jsonl").read_text().splitlines() for r in runs]
    assert [json.loads(x)["val_loss"] for x in logs[0]] == [json.loads(x)["val_loss"] for x in logs[1]]
    manifest = json.loads((runs[0] / "manifest.json").read_text())
    assert manifest["seed"] == 42 and manifest["split_seed"] == 13
    assert manifest["data_files"]["train"]["sha256"] == file_sha256(data)
    assert {"torch", "transformers", "intentune", "python"} <= set(manifest["packages"])
    assert manifest["device"]["device"] == "cpu"
    splits = manifest["splits"]
    assert splits["train"]["rows"] + splits["validation"]["rows"] == 24
    validation_rows = list(csv.DictReader((runs[0] / "splits" / "validation.csv").open(encoding="utf-8")))
    assert splits["validation"]["row_ids"] == [row_id(r["text"], r["intent"]) for r in validation_rows]
    assert not set(splits["validation"]["row_ids"]) & set(splits["train"]["row_ids"])
    assert manifest["config"]["train"]["epochs"] == 4
