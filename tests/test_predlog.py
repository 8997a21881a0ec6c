"""The server's prediction log (``serve.log_predictions``): one whole JSON line per answered text under concurrent
requests, the hashed-text mode, size rotation, a server killed with SIGKILL, a slow disk that must not slow the
requests, bad paths, the model id, and the reader (rotated sets, a truncated last line).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import queue
import signal
import stat
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from intentune import Config, ConfigError, DataError, IntentClassifier, ServeConfig, create_app
from intentune.cli import app as cli_app
from intentune.serve import PredictionLog, model_id, predlog, read_prediction_log
from intentune.serve.predlog import metadata_id, prediction_log_files
from test_serve import LABELS
from test_serve import FakePredictor as ServeFakePredictor

from conftest import tiny_config, toy_data

FIELDS = {"time", "model_id", "request_id", "text", "intent", "confidence", "is_out_of_scope", "intents", "top",
          "runtime", "latency_ms"}  # fmt: skip
META = {"format_version": 2, "labels": LABELS, "train_summary": {"steps": 3}}


class FakePredictor(ServeFakePredictor):
    """The serving tests' fake model, with the folder metadata the log's model id is made from."""

    def metadata(self) -> dict[str, Any]:
        return META


@contextmanager
def serving(log: Path, predictor: Any = None, **settings: Any) -> Iterator[TestClient]:
    config = ServeConfig(log_predictions=str(log), **settings)
    with TestClient(create_app(classifier=predictor or FakePredictor(), settings=config)) as client:
        yield client


def raw_lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def wait_for(condition: Any, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail("timed out waiting")
        time.sleep(0.02)


# ------------------------------------------------------------------------------------------- lines and fields
def test_concurrent_requests_give_exactly_one_whole_line_per_answered_text(tmp_path: Path) -> None:
    log = tmp_path / "predictions.jsonl"
    requests = [[f"where is parcel {i}", f"what's the weather {i}"][: 1 + i % 2] for i in range(40)]
    before = datetime.now(UTC)
    with serving(log) as client:

        def send(i: int) -> int:
            headers = {"X-Request-ID": f"req-{i}"} if i % 4 else {}
            return client.post("/v1/predict", json={"texts": requests[i], "top_k": 2}, headers=headers).status_code

        with ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(send, range(len(requests))))
        refused = client.post("/v1/predict", json={"texts": ["  "]})  # not answered: not logged
        wait_for(lambda: client.get("/health").json()["prediction_log"]["written"] == sum(map(len, requests)))
        health = client.get("/health").json()
    assert statuses == [200] * len(requests) and refused.status_code == 422
    assert health == {"status": "ok", "intents": 4, "prediction_log": {"written": 60, "dropped": 0}}
    lines = raw_lines(log)
    assert len(lines) == 60 and all(line.endswith(b"\n") for line in lines)
    rows = [json.loads(line) for line in lines]
    assert rows == list(read_prediction_log(log))
    assert sorted(row["text"] for row in rows) == sorted(text for texts in requests for text in texts)
    for row in rows:
        assert set(row) == FIELDS
        i = int(row["text"].rsplit(" ", 1)[1])
        assert row["request_id"] == (f"req-{i}" if i % 4 else None)
        expected = FakePredictor.expected(row["text"], 2)
        assert {k: row[k] for k in ("intent", "confidence", "is_out_of_scope", "intents", "top")} == expected
        assert row["model_id"] == metadata_id(META) and row["runtime"] == "fake"
        assert isinstance(row["latency_ms"], float) and row["latency_ms"] >= 0
        assert row["time"].endswith("Z") and before <= datetime.fromisoformat(row["time"]) <= datetime.now(UTC)
    assert stat.S_IMODE(log.stat().st_mode) == 0o600


def test_the_health_route_is_unchanged_without_a_log() -> None:
    with TestClient(create_app(classifier=FakePredictor(), settings=ServeConfig())) as client:
        assert client.get("/health").json() == {"status": "ok", "intents": 4}


def test_a_model_folder_is_named_by_its_model_id_and_retraining_changes_it(
    fitted_encoder: Any, tiny_encoder: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "run" / "model"
    fitted_encoder.save(folder)
    first = model_id(tmp_path / "run")
    assert first == model_id(folder) == metadata_id(fitted_encoder.metadata())
    assert len(first) == 12 and int(first, 16) >= 0
    log = tmp_path / "predictions.jsonl"
    with TestClient(create_app(folder, settings=ServeConfig(log_predictions=str(log)))) as client:
        client.post("/v1/predict", json={"texts": ["where is my order"]})
    (row,) = read_prediction_log(log)
    assert (row["model_id"], row["runtime"], row["intent"]) == (first, "torch", "order_status")
    texts, labels = toy_data()
    IntentClassifier(tiny_config(tiny_encoder, epochs=1)).fit(texts, labels).save(folder)  # retrained
    assert model_id(folder) != first


# ----------------------------------------------------------------------------------------------- hashed texts
def test_log_texts_false_keeps_a_salted_hash_stable_within_the_log_and_no_text(tmp_path: Path) -> None:
    log = tmp_path / "predictions.jsonl"
    texts = ["my secret parcel 4411", "another secret", "my secret parcel 4411"]
    with serving(log, log_texts=False) as client:
        client.post("/v1/predict", json={"texts": texts})
    with serving(log, log_texts=False) as client:  # a restart keeps the salt
        client.post("/v1/predict", json={"texts": texts[:1]})
    assert b"secret" not in log.read_bytes()
    rows = list(read_prediction_log(log))
    assert all(set(row) == FIELDS - {"text"} | {"text_sha256"} for row in rows)
    hashes = [row["text_sha256"] for row in rows]
    assert hashes[0] == hashes[2] == hashes[3] != hashes[1]
    salt = log.with_name("predictions.jsonl.salt")
    assert stat.S_IMODE(salt.stat().st_mode) == 0o600
    key = bytes.fromhex(salt.read_text().strip())
    assert hashes[1] == hmac.new(key, b"another secret", hashlib.sha256).hexdigest()
    other = tmp_path / "other.jsonl"  # another log, another salt: its hashes do not match this one's
    with serving(other, log_texts=False) as client:
        client.post("/v1/predict", json={"texts": texts[:1]})
    assert next(read_prediction_log(other))["text_sha256"] != hashes[0]


def test_a_damaged_salt_file_is_a_clear_error(tmp_path: Path) -> None:
    log = tmp_path / "predictions.jsonl"
    log.with_name("predictions.jsonl.salt").write_text("not a salt\n")
    with pytest.raises(ConfigError, match=r"predictions\.jsonl\.salt is not a salt file \(64 hex digits\)"):
        PredictionLog(log, max_bytes=10_000, backups=1, log_texts=False)


# ---------------------------------------------------------------------------------------------------- rotation
def test_rotation_keeps_every_line_whole_and_the_backups_count(tmp_path: Path) -> None:
    log = tmp_path / "predictions.jsonl"
    writer = PredictionLog(log, max_bytes=1500, backups=2)
    writer.start(model_id="abc", runtime="fake")
    for i in range(60):  # one line per call: many writes, each rotating when needed
        writer.add([f"text {i}"], [FakePredictor.expected(f"text {i}", 3)], latency_ms=1.0)
    writer.add([f"text {i}" for i in range(60, 100)], [FakePredictor.expected("x", 3)] * 40, latency_ms=1.0)
    writer.close()
    files = prediction_log_files(log)
    assert [f.name for f in files] == ["predictions.jsonl.2", "predictions.jsonl.1", "predictions.jsonl"]
    assert not log.with_name("predictions.jsonl.3").exists()
    for file in files:
        assert 0 < file.stat().st_size <= 1500 and stat.S_IMODE(file.stat().st_mode) == 0o600
        assert all(line.endswith(b"\n") and json.loads(line)["model_id"] == "abc" for line in raw_lines(file))
    kept = [row["text"] for row in read_prediction_log(log)]
    assert kept == [f"text {i}" for i in range(100 - len(kept), 100)]  # the newest lines, oldest first
    assert writer.written == 100 and writer.dropped == 0 and len(kept) < 100


def test_rotation_through_the_server_settings(tmp_path: Path) -> None:
    log = tmp_path / "predictions.jsonl"
    with serving(log, log_max_bytes=1024, log_backups=3) as client:
        for i in range(30):
            client.post("/v1/predict", json={"texts": [f"hello {i}"], "top_k": 4})
    files = prediction_log_files(log)
    assert len(files) == 4 and all(f.stat().st_size <= 1024 for f in files)
    assert [row["text"] for row in read_prediction_log(log)][-1] == "hello 29"


# ------------------------------------------------------------------------------------------------------ killed
def test_a_killed_server_keeps_every_line_written_before_the_kill(fitted_encoder: Any, tmp_path: Path) -> None:
    """``intentune serve`` in a subprocess, SIGKILLed after its /health says every line was written: no
    shutdown runs, and the file still holds each line, whole."""
    fitted_encoder.save(tmp_path / "model")
    log = tmp_path / "logs" / "predictions.jsonl"
    log.parent.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTENTUNE_")}
    command = [sys.executable, "-m", "intentune.cli", "serve", str(tmp_path / "model"), "--port", "0",
               "--set", f"serve.log_predictions={log}", "--set", "serve.runtime=torch"]  # fmt: skip
    server = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env)
    try:
        url = _announced_url(server)
        texts = [f"where is my order {i}" for i in range(12)]
        for i, text in enumerate(texts):
            answer = _call(f"{url}/v1/predict", {"texts": [text]}, {"X-Request-ID": str(i)})
            assert answer["predictions"][0]["text"] == text
        wait_for(lambda: _call(f"{url}/health")["prediction_log"]["written"] == len(texts))
        server.send_signal(signal.SIGKILL)
        assert server.wait(timeout=30) == -signal.SIGKILL
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    lines = raw_lines(log)
    assert all(line.endswith(b"\n") for line in lines)
    rows = [json.loads(line) for line in lines]
    assert [(row["text"], row["request_id"]) for row in rows] == [(t, str(i)) for i, t in enumerate(texts)]
    assert {row["model_id"] for row in rows} == {model_id(tmp_path / "model")}


def _call(url: str, body: dict[str, Any] | None = None, headers: dict[str, str] | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data, {"Content-Type": "application/json", **(headers or {})})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def _announced_url(server: subprocess.Popen[str], timeout_s: float = 180.0) -> str:
    """The http://host:port that ``intentune serve`` logs once it serves (read from its standard error)."""
    lines: queue.Queue[str] = queue.Queue()
    assert server.stderr is not None
    threading.Thread(target=lambda: [lines.put(line) for line in server.stderr], daemon=True).start()
    deadline, seen = time.monotonic() + timeout_s, []
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=1)
        except queue.Empty:
            if server.poll() is not None:
                break
            continue
        seen.append(line)
        if line.startswith("serving ") and " on http://" in line:
            host, port, _ = line.split(" on http://", 1)[1].split(":", 2)  # "127.0.0.1:PORT: chat demo at /..."
            return f"http://{host}:{port}"
    pytest.fail(f"the server did not start: {''.join(seen)[-2000:]}")


# ------------------------------------------------------------------------------------------------- slow disk
def test_a_stuck_disk_does_not_slow_the_requests_and_drops_are_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    write_lines, disk_free = PredictionLog.write_lines, threading.Event()

    def stuck(self: PredictionLog, lines: list[bytes]) -> None:
        disk_free.wait(timeout=60)  # a disk that does not answer until the test lets it
        write_lines(self, lines)

    monkeypatch.setattr(PredictionLog, "write_lines", stuck)
    monkeypatch.setattr(predlog, "QUEUE_LINES", 6)
    caplog.set_level(logging.WARNING, logger="intentune.serve.predlog")
    log = tmp_path / "predictions.jsonl"
    with serving(log) as client:
        started = time.perf_counter()
        for i in range(10):
            assert client.post("/v1/predict", json={"texts": [f"hi {i}", f"bye {i}"]}).status_code == 200
        elapsed = time.perf_counter() - started
        health = client.get("/health").json()["prediction_log"]
        disk_free.set()
    assert elapsed < 30  # every request answered while the disk was stuck (a write in the request: 60 s)
    assert health["written"] == 0 and health["dropped"] >= 20 - 2 * 6  # in the writer's hands + queued, at most
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "queue is full" in warnings[0]
    rows = list(read_prediction_log(log))
    assert all(set(row) == FIELDS for row in rows)
    # After the shutdown every line is accounted for: written (and in the file) or dropped.
    assert health["dropped"] + len(rows) == 20


# ------------------------------------------------------------------------------------------------- bad paths
@pytest.mark.parametrize(
    ("where", "match"),
    [
        ("missing/predictions.jsonl", r"serve\.log_predictions: the folder .*missing does not exist; create it"),
        (".", r"serve\.log_predictions: .* is a folder; give a file path such as .*predictions\.jsonl"),
        ("file.txt/predictions.jsonl", r"serve\.log_predictions: cannot write .*file\.txt/predictions\.jsonl \("),
    ],
)
def test_a_bad_log_path_fails_the_start_before_the_model_loads(tmp_path: Path, where: str, match: str) -> None:
    (tmp_path / "file.txt").write_text("x")
    settings = ServeConfig(log_predictions=str(tmp_path / where))
    app = create_app(tmp_path / "no-model-here", settings=settings)  # a ConfigError, not the folder's ModelError
    with pytest.raises(ConfigError, match=match), TestClient(app):
        pass


def test_cli_serve_with_a_bad_log_path_prints_one_red_line_and_exits_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uvicorn

    monkeypatch.setattr(uvicorn.Server, "run", lambda *a, **k: pytest.fail("uvicorn started"))
    bad = tmp_path / "nowhere" / "predictions.jsonl"
    args = ["serve", str(tmp_path / "not-a-model"), "--port", "0", "--set", f"serve.log_predictions={bad}"]
    result = CliRunner().invoke(cli_app, args)
    assert result.exit_code == 1
    assert result.output == (
        f"error: serve.log_predictions: the folder {bad.parent} does not exist; create it, or point "
        "serve.log_predictions at a file in an existing folder\n"
    )  # the log is checked before the model folder, which would fail too


def test_settings_from_the_environment_and_their_limits() -> None:
    env = {"INTENTUNE_LOG_PREDICTIONS": "logs/p.jsonl", "INTENTUNE_LOG_TEXTS": "false",
           "INTENTUNE_LOG_MAX_BYTES": "2048", "INTENTUNE_LOG_BACKUPS": "2"}  # fmt: skip
    serve = Config().override_env(env).serve
    assert (serve.log_predictions, serve.log_texts, serve.log_max_bytes, serve.log_backups) == (
        "logs/p.jsonl", False, 2048, 2
    )  # fmt: skip
    assert Config().serve.log_predictions is None  # off by default
    with pytest.raises(ConfigError, match="serve.log_max_bytes must be at least 1024"):
        Config().override(["serve.log_max_bytes=100"])
    with pytest.raises(ConfigError, match="serve.log_backups must be at least 1"):
        Config().override(["serve.log_backups=0"])


# ------------------------------------------------------------------------------------------------------ reader
def test_the_reader_skips_a_truncated_last_line_and_names_a_damaged_one(tmp_path: Path) -> None:
    log = tmp_path / "predictions.jsonl"
    whole = json.dumps({"text": "a", "intent": "greeting"}) + "\n"
    log.with_name("predictions.jsonl.1").write_text(whole + '{"text": "b", "inte')  # cut by a kill, then rotated
    log.write_text(whole.replace('"a"', '"c"') + '{"text": "d"')  # being written right now
    assert [row["text"] for row in read_prediction_log(log)] == ["a", "c"]
    log.write_text(whole + "{not json\n" + whole)
    with pytest.raises(DataError, match=r"predictions\.jsonl:2: not a prediction log line .*the file is damaged"):
        list(read_prediction_log(log))
    with pytest.raises(DataError, match=r"missing\.jsonl: no prediction log there"):
        list(read_prediction_log(tmp_path / "missing.jsonl"))


def test_a_partial_last_line_left_by_a_kill_starts_a_new_file(tmp_path: Path) -> None:
    log = tmp_path / "predictions.jsonl"
    log.write_text(json.dumps({"text": "old"}) + '\n{"text": "cut sho')
    writer = PredictionLog(log, max_bytes=10_000, backups=2)
    writer.start(model_id=None, runtime="fake")
    writer.add(["new"], [FakePredictor.expected("new")], latency_ms=2.0)
    writer.close()
    assert log.with_name("predictions.jsonl.1").read_text().endswith('"cut sho')  # kept as it was
    assert [row["text"] for row in read_prediction_log(log)] == ["old", "new"]
