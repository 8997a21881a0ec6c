"""Hyperparameter search: search spaces (fast), the pruning callback with a stand-in trial, then one small study on
the tiny encoder that is checked for its files, its best config, pruning, a failed trial and freed memory, and the
CLI."""

from __future__ import annotations

import csv
import gc
import json
import time
import weakref
from pathlib import Path
from typing import Any

import psutil
import pytest
import torch
from typer.testing import CliRunner

from intentune import Config, ConfigError, IntentuneError, load_config
from intentune.cli import app
from intentune.model import IntentClassifier
from intentune.net import IntentNet
from intentune.train import TrainControl, TrainState
from intentune.tune import check_space, default_space, load_space, parse_param, tune
from intentune.tune.search import _PruningCallback

from conftest import tiny_config, tiny_sets

runner = CliRunner()

GOOD = {"train.learning_rate": 3e-3, "train.head_learning_rate": 3e-2}
BAD = {"train.learning_rate": 1e-9, "train.head_learning_rate": 1e-9}  # learns nothing: must be pruned
OOM_HEAD_RATE = 0.05  # the stand-in classifier runs out of memory at this head learning rate
SPACE = {
    "train.learning_rate": {"low": 1e-9, "high": 1e-2, "log": True},
    "train.head_learning_rate": {"low": 1e-9, "high": 1e-1, "log": True},
    "train.epochs": 3,
    "train.batch_size": 12,  # 2 steps per epoch on the 24 toy rows
}


# ------------------------------------------------------------------ spaces
def test_parse_param_and_load_space(tmp_path: Path) -> None:
    assert parse_param("train.batch_size=[16, 32]") == ("train.batch_size", [16, 32])
    assert parse_param("train.learning_rate={low=1e-5, high=1e-3, log=true}")[1] == {
        "low": 1e-5, "high": 1e-3, "log": True
    }  # fmt: skip
    assert parse_param("train.optimizer=adamw") == ("train.optimizer", "adamw")
    with pytest.raises(ConfigError, match="expected section.key=SPEC"):
        parse_param("batch_size=[16]")
    (tmp_path / "space.toml").write_text(
        '[train]\nbatch_size = [16, 32]\noptimizer = "adamw"\n[model]\ndropout = [0.0, 0.1]\n'
    )
    assert load_space(tmp_path / "space.toml") == {
        "train.batch_size": [16, 32], "train.optimizer": "adamw", "model.dropout": [0.0, 0.1]
    }  # fmt: skip


def test_default_space_searches_lora_rank_only_with_lora() -> None:
    space = default_space(Config())
    assert space["train.learning_rate"] == {"low": 1e-5, "high": 3e-4, "log": True}
    assert space["train.optimizer"] == ["adamw", "adam", "sgd", "adafactor"]
    assert "train.lora_rank" not in space
    assert default_space(Config().override(["train.lora_rank=8"]))["train.lora_rank"] == [4, 8, 16]
    checked = check_space(Config(), space)
    assert type(checked["train.epochs"]).__name__ == "IntDistribution"
    assert type(checked["train.warmup_ratio"]).__name__ == "FloatDistribution"


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ({"train.epoch": [2, 3]}, "unknown key train.epoch"),
        ({"trian.epochs": [2]}, "unknown config section 'trian'"),
        ({"train.optimizer": {"low": 1, "high": 2}}, "a range needs a numeric config key"),
        ({"train.epochs": {"low": 2}}, "a range needs low and high"),
        ({"train.batch_size": []}, "choices must be a non-empty list"),
        ({"train.warmup_ratio": {"low": 0.0, "high": 1.5}}, "train.warmup_ratio must be in"),
        ({"train.optimizer": ["adamw", "lion"]}, "train.optimizer must be one of"),
        ({"train.learning_rate": {"low": 0.0, "high": 1e-3, "log": True}}, "search space train.learning_rate"),
    ],
)
def test_bad_spaces_name_the_key(space: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        check_space(Config(), space)


# ------------------------------------------------------------ pruning hook
class FakeTrial:
    def __init__(self, prune: bool) -> None:
        self.prune, self.reports = prune, []

    def report(self, value: float, step: int) -> None:
        self.reports.append((step, value))

    def should_prune(self) -> bool:
        return self.prune


@pytest.mark.parametrize(("prune", "step", "stops"), [(True, 2, True), (False, 2, False), (True, 6, False)])
def test_pruning_callback_reports_and_stops(prune: bool, step: int, stops: bool) -> None:
    trial, control = FakeTrial(prune), TrainControl()
    state = TrainState(max_steps=6, step=step, epoch=step / 2)
    callback = _PruningCallback(trial)
    callback.on_evaluate(state, control, {"val_accuracy": 0.5, "val_loss": 1.0, "step": step})
    assert trial.reports == [(step * 500, 0.5)]  # thousandths of an epoch
    assert control.should_stop is stops  # the last step is never pruned: the trial is complete
    assert (callback.pruned_at is not None) is stops


# ------------------------------------------------------------------- study
class RecordingClassifier(IntentClassifier):
    """The real classifier; keeps weak references to every instance and network, and runs out of memory at
    ``OOM_HEAD_RATE`` as a big batch would on a GPU."""

    refs: list[weakref.ref] = []

    def fit(self, texts, labels, **kwargs: Any) -> RecordingClassifier:
        RecordingClassifier.refs.append(weakref.ref(self))
        if self.config.train.head_learning_rate == OOM_HEAD_RATE:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        super().fit(texts, labels, **kwargs)
        RecordingClassifier.refs.append(weakref.ref(self.net_))
        return self


def live_intent_nets() -> int:
    gc.collect()
    return sum(type(obj) is IntentNet for obj in gc.get_objects())


@pytest.fixture(scope="module")
def study(tiny_encoder: Path, toy_files: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Five trials: the config's own values (good), a good one, a bad one (pruned), one out of memory (failed),
    and one the sampler picks. Each trial's end records what is still alive."""
    config = tiny_config(tiny_encoder, few_shot="off", **{k.split(".")[1]: v for k, v in GOOD.items()})
    config.data.train_file = config.data.validation_file = str(toy_files / "train.csv")
    out = tmp_path_factory.mktemp("tune")
    RecordingClassifier.refs = []
    nets_before, process = live_intent_nets(), psutil.Process()
    ends: list[dict[str, Any]] = []

    def on_trial(row: dict[str, Any]) -> None:
        alive = [ref for ref in RecordingClassifier.refs if ref() is not None]
        ends.append({"row": row, "alive": len(alive), "nets": live_intent_nets(), "rss": process.memory_info().rss})

    enqueue = [{**GOOD, "train.learning_rate": 1e-3}, BAD, {**GOOD, "train.head_learning_rate": OOM_HEAD_RATE}]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("intentune.tune.search.IntentClassifier", RecordingClassifier)
        result = tune(config, out, trials=5, space=SPACE, enqueue=enqueue, on_trial=on_trial)
    return {
        "result": result,
        "out": out,
        "ends": ends,
        "nets_before": nets_before,
        "refs": len(RecordingClassifier.refs),
    }


def test_study_writes_the_table_report_and_best_config(study: dict[str, Any]) -> None:
    out, result = study["out"], study["result"]
    rows = list(csv.DictReader((out / "trials.csv").open(encoding="utf-8")))
    assert [row["number"] for row in rows] == ["0", "1", "2", "3", "4"]
    assert set(rows[0]) == {"number", "state", "train.learning_rate", "train.head_learning_rate", "val_accuracy",
                            "val_loss", "seconds", "note"}  # fmt: skip
    assert not result.study.sampler._constant_liar  # one process: the sampler stays reproducible
    best = result.best_row
    complete = [r for r in result.rows if r["state"] == "COMPLETE"]
    assert best["state"] == "COMPLETE" and best["val_accuracy"] == max(r["val_accuracy"] for r in complete)
    report = (out / "tune_report.md").read_text(encoding="utf-8")
    assert f"## Best: trial {result.best_trial}, val_accuracy {best['val_accuracy']:.4f}" in report
    assert report.index("| 1 | " + str(result.best_trial) + " | complete |") < report.index("| failed |")
    loaded = load_config(out / "best_config.toml")
    assert loaded == result.best_config
    assert loaded.train.learning_rate == pytest.approx(best["train.learning_rate"])
    assert loaded.train.head_learning_rate == pytest.approx(best["train.head_learning_rate"])
    assert (loaded.train.epochs, loaded.train.batch_size) == (3, 12)  # the fixed values
    assert loaded.data.train_file == result.best_config.data.train_file  # ready for `intentune train --config`
    assert (out / "study.json").is_file()


def test_bad_trial_is_pruned_and_failed_trial_recorded(study: dict[str, Any]) -> None:
    rows = study["result"].rows
    assert rows[0]["train.learning_rate"] == GOOD["train.learning_rate"]  # the baseline runs first
    assert rows[2]["train.learning_rate"] == BAD["train.learning_rate"]
    assert rows[2]["state"] == "PRUNED", rows
    assert rows[2]["note"].startswith("pruned at epoch")
    assert rows[3]["state"] == "FAIL"
    assert rows[3]["note"] == "OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"
    assert rows[4]["state"] in ("COMPLETE", "PRUNED")  # the study went on after the failure


def test_each_trial_frees_its_model(study: dict[str, Any]) -> None:
    ends = study["ends"]
    assert len(ends) == 5 and study["refs"] == 9  # 5 classifiers, 4 trained networks (one trial failed first)
    assert [end["alive"] for end in ends] == [0] * 5  # nothing of any trial outlives it
    assert [end["nets"] for end in ends] == [study["nets_before"]] * 5
    growth = max(end["rss"] for end in ends) - ends[0]["rss"]
    assert growth < 200 * 2**20, f"resident memory grew by {growth / 2**20:.0f} MiB across trials"


def test_study_stops_when_the_first_trials_all_fail(
    tiny_encoder: Path, toy_files: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tiny_config(tiny_encoder, head_learning_rate=OOM_HEAD_RATE)
    config.data.train_file = str(toy_files / "train.csv")
    monkeypatch.setattr("intentune.tune.search.IntentClassifier", RecordingClassifier)
    space = {"train.epochs": {"low": 1, "high": 3}, "train.head_learning_rate": OOM_HEAD_RATE}
    with pytest.raises(IntentuneError, match=r"no trial completed \(trials 0: fail, 1: fail, 2: fail\); first error: "
                       r"OutOfMemoryError"):  # fmt: skip
        tune(config, tmp_path, trials=10, space=space)
    assert (tmp_path / "splits" / "validation.csv").is_file()  # split off like `intentune train` does


def test_tune_command_then_train_the_best_config(tiny_encoder: Path, toy_files: Path, tmp_path: Path) -> None:
    train = str(toy_files / "train.csv")
    args = ["tune", train, "--validation", train, "--trials", "2", "-o", str(tmp_path / "tune"),
            "--backbone", str(tiny_encoder), "--quiet", "--set", "train.device=cpu", "--set", "train.few_shot=off",
            "--set", "train.head_learning_rate=3e-2", "--set", "model.dropout=0.0",
            "--param", "train.learning_rate={low=1e-4, high=3e-3, log=true}", "--param", "train.epochs=2",
            "--param", "train.batch_size=[12]", "--param", "train.optimizer=adamw",
            "--param", "train.warmup_ratio=0.0"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "best: trial " in result.output and "tune_report.md" in result.output
    assert len((tmp_path / "tune" / "trials.csv").read_text().splitlines()) == 3
    best = tmp_path / "tune" / "best_config.toml"
    assert "epochs = 2" in best.read_text() and 'optimizer = "adamw"' in best.read_text()
    result = runner.invoke(app, ["train", "--config", str(best), "-o", str(tmp_path / "run"), "--quiet"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "run" / "model" / "intentune.json").is_file()


def test_tune_command_rejects_a_bad_param(toy_files: Path, tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["tune", str(toy_files / "train.csv"), "--trials", "1", "-o", str(tmp_path), "--param", "train.epoch=[2]"]
    )
    assert result.exit_code == 1
    assert result.output.strip().startswith("error: search space train.epoch: unknown key train.epoch")


# ---------------------------------------------------------- shared storage
FIXED = ["--param", "train.learning_rate={low=1e-4, high=3e-3, log=true}", "--param", "train.epochs=1",
         "--param", "train.batch_size=[12]", "--param", "train.optimizer=adamw",
         "--param", "train.warmup_ratio=0.0"]  # fmt: skip


def test_two_workers_fill_one_study_in_sqlite(tiny_encoder: Path, toy_files: Path, tmp_path: Path) -> None:
    """Two processes started with the same command (2 trials each) share one SQLite study of 4 trials; the worker
    that finishes last reports all 4."""
    import os
    import subprocess
    import sys

    import optuna

    PIPE = subprocess.PIPE
    train, db = str(toy_files / "train.csv"), tmp_path / "study.db"
    command = [sys.executable, "-m", "intentune.cli", "tune", train, "--validation", train, "--trials", "2",
               "--backbone", str(tiny_encoder), "--quiet", "--storage", f"sqlite:///{db}",
               *tiny_sets(epochs=1, batch_size=12), *FIXED]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    workers = [
        subprocess.Popen([*command, "-o", str(tmp_path / f"worker{i}")], env=env, text=True, stdout=PIPE, stderr=PIPE)
        for i in range(2)
    ]
    outputs = [worker.communicate(timeout=300) for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0], outputs
    # Each worker ran its own 2 trials, numbered within the one study.
    ran = [sorted(int(line.split()[1].rstrip(":")) for line in err.splitlines() if line.startswith("trial "))
           for _, err in outputs]  # fmt: skip
    assert [len(numbers) for numbers in ran] == [2, 2] and sorted(ran[0] + ran[1]) == [0, 1, 2, 3]
    lines = [line for out, _ in outputs for line in out.splitlines() if line.startswith("study ")]
    names = {line.split()[1].rstrip(":") for line in lines}
    assert len(names) == 1 and next(iter(names)).startswith("tune-")  # the same default name in both
    study = optuna.load_study(study_name=names.pop(), storage=f"sqlite:///{db}")
    assert len(study.trials) == 4 and all(t.state.is_finished() for t in study.trials)
    tables = [list(csv.DictReader((tmp_path / f"worker{i}" / "trials.csv").open(encoding="utf-8"))) for i in (0, 1)]
    # The worker that finished last saw every trial finished; the other may list one still running.
    last = max(tables, key=lambda rows: sum(row["state"] == "COMPLETE" for row in rows))
    assert [row["number"] for row in last] == ["0", "1", "2", "3"]
    assert {row["state"] for row in last} == {"COMPLETE"}
    folder = tmp_path / f"worker{tables.index(last)}"
    report = (folder / "tune_report.md").read_text(encoding="utf-8")
    assert report.startswith("# Hyperparameter search\n\n4 trials (4 complete)") and f"sqlite:///{db}" in report
    assert all(f"| {n} | complete |" in report for n in range(4))


QUEUE_RACER = """
import sys, time
from pathlib import Path
import optuna
from intentune.tune.storage import open_storage
optuna.logging.set_verbosity(optuna.logging.ERROR)
study = optuna.load_study(study_name="queue", storage=open_storage(sys.argv[1]))
Path(sys.argv[3]).touch()
while not Path(sys.argv[2]).exists():  # every racer waits here, then all ask at once
    time.sleep(0.01)
space = {"x": optuna.distributions.IntDistribution(0, 1000)}
print(" ".join(str(study.ask(space).params["x"]) for _ in range(4)))
"""


def test_sqlite_workers_never_take_the_same_queued_trial(tmp_path: Path) -> None:
    """Four processes ask for trials at one moment from a SQLite study with 12 queued trials: each queued trial goes
    to one of them only (SQLite has no row locks; without the storage's immediate transactions two racers take
    the same one most times)."""
    import subprocess
    import sys

    import optuna

    from intentune.tune.storage import open_storage

    url, go = f"sqlite:///{tmp_path / 'queue.db'}", tmp_path / "go"
    study = optuna.create_study(study_name="queue", storage=open_storage(url))
    queued = list(range(2000, 2012))  # outside the space's range: a drawn value cannot pass for a queued one
    for x in queued:
        study.enqueue_trial({"x": x}, skip_if_exists=False)
    ready = [tmp_path / f"ready{i}" for i in range(4)]
    racers = [subprocess.Popen([sys.executable, "-c", QUEUE_RACER, url, str(go), str(flag)], text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE) for flag in ready]  # fmt: skip
    deadline = time.monotonic() + 120
    while not all(flag.exists() for flag in ready) and time.monotonic() < deadline:
        time.sleep(0.05)
    go.touch()
    outputs = [racer.communicate(timeout=120) for racer in racers]
    assert [racer.returncode for racer in racers] == [0] * 4, outputs
    taken = sorted(int(x) for out, _ in outputs for x in out.split())
    assert len(taken) == 16 and sorted(x for x in taken if x >= 2000) == queued  # each queued trial exactly once
    assert len(optuna.load_study(study_name="queue", storage=url).trials) == 16


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:", "sqlite:///{tmp}/file.db"])
def test_sqlite_storage_in_a_file_or_in_memory_runs_a_study(url: str, tmp_path: Path) -> None:
    """A file takes the write lock per transaction; an in-memory database (one process) keeps its pooled connection,
    so its tables are still there."""
    import optuna

    from intentune.tune.storage import open_storage

    study = optuna.create_study(storage=open_storage(url.format(tmp=tmp_path)), study_name="s")
    study.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=2)
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]


def test_a_second_call_joins_a_journal_study(tiny_encoder: Path, toy_files: Path, tmp_path: Path) -> None:
    """Two calls, one after the other, on one journal file: the second joins the first's study, queues no second
    baseline, and writes both trials."""
    config = tiny_config(tiny_encoder, epochs=1, batch_size=12)
    config.data.train_file = config.data.validation_file = str(toy_files / "train.csv")
    space = {"train.learning_rate": {"low": 1e-4, "high": 3e-3, "log": True}, "train.epochs": 1}
    storage = f"journal:{tmp_path / 'study.log'}"
    first = tune(config, tmp_path / "a", trials=1, space=space, storage=storage)
    second = tune(config, tmp_path / "b", trials=1, space=space, storage=storage)
    assert second.study.study_name == first.study.study_name
    assert first.study.sampler._constant_liar  # Optuna's flag: other workers' running trials count as poor ones
    assert [row["number"] for row in second.rows] == [0, 1]
    assert second.rows[0]["train.learning_rate"] == config.train.learning_rate  # the baseline, once
    assert second.rows[1]["train.learning_rate"] != config.train.learning_rate
    study = json.loads((tmp_path / "b" / "study.json").read_text(encoding="utf-8"))
    assert study["study_name"] == first.study.study_name and study["storage"] == storage
    assert len(study["trials"]) == 2
    named = tune(config, tmp_path / "c", trials=1, space=space, storage=storage, study_name="mine")
    assert named.study.study_name == "mine" and len(named.rows) == 1


def test_default_study_name_follows_settings_and_rows_not_paths(toy_files: Path, tmp_path: Path) -> None:
    from intentune import Examples
    from intentune.tune.storage import default_study_name

    texts, labels = ["hi", "bye", "hello"], ["greet", "leave", "greet"]
    data = (Examples(texts, labels), Examples(texts[:2], labels[:2]))
    config = Config().override(["data.train_file=a.csv", "train.device=cpu"])
    name = default_study_name(config, SPACE, data)
    assert name.startswith("tune-") and len(name) == len("tune-") + 12
    moved = Config().override(["data.train_file=/elsewhere/a.csv", "train.device=cuda"])
    assert default_study_name(moved, SPACE, data) == name  # same data elsewhere, another device: same study
    assert default_study_name(config.override(["train.seed=7"]), SPACE, data) != name
    assert default_study_name(config, {**SPACE, "train.epochs": 4}, data) != name
    other = (Examples(texts, ["greet", "leave", "leave"]), data[1])
    assert default_study_name(config, SPACE, other) != name


@pytest.mark.parametrize(
    ("storage", "message"),
    [
        ("study.db", r"storage 'study.db': expected sqlite:///PATH.db, a database URL"),
        ("journal:", r"storage 'journal:': no file after 'journal:'"),
        ("journal:/no/such/dir/a.log", r"storage journal:/no/such/dir/a.log: folder /no/such/dir does not exist"),
        ("sqlite:////no/such/dir/a.db", r"storage sqlite:////no/such/dir/a.db: cannot open it \(\(sqlite3\.Opera"),
        ("nosuchdb://u:secret@host/db", r"storage nosuchdb://u:\*\*\*@host/db: cannot open it \(Can't load plugin"),
    ],
)
def test_a_bad_storage_is_one_clear_error(storage: str, message: str) -> None:
    from intentune.tune.storage import open_storage

    with pytest.raises(ConfigError, match=message) as raised:
        open_storage(storage)
    assert "\n" not in str(raised.value) and "secret" not in str(raised.value)


def test_tune_command_reports_a_bad_storage_in_one_line(toy_files: Path, tmp_path: Path) -> None:
    args = ["tune", str(toy_files / "train.csv"), "--trials", "1", "-o", str(tmp_path), "--storage", "nowhere"]
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert result.output.strip() == "error: storage 'nowhere': expected sqlite:///PATH.db, a database URL " \
        "(postgresql://USER:PASSWORD@HOST/DB) or journal:PATH"  # fmt: skip
