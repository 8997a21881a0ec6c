"""The prediction log of the HTTP service: one JSON line per answered text (``serve.log_predictions``).

A line holds the time (UTC, ISO 8601), the model id (:func:`model_id`), the text (or, with ``serve.log_texts =
false``, ``text_sha256``: an HMAC-SHA256 of the text keyed with the log's salt), the intent, its confidence,
``is_out_of_scope``, every intent found (``intents``: several from a multi-label model) and the ``top`` intents as
the response carries them, the runtime, the request's latency in
milliseconds and the client's ``X-Request-ID`` header (or null)::

    {"time": "2025-01-31T12:00:00.123Z", "model_id": "3f2a9c0d1e4b", "request_id": null, "text": "hi",
     "intent": "greeting", "confidence": 0.93, "is_out_of_scope": false,
     "intents": [{"intent": "greeting", "confidence": 0.93}],
     "top": [{"intent": "greeting", "confidence": 0.93}], "runtime": "onnx-int8", "latency_ms": 7.1}

Requests never wait for the disk: :meth:`PredictionLog.add` puts lines on a bounded queue, and one background
thread writes whatever has queued up with one ``write`` call (no buffer of its own in between), so a killed server
loses only the lines still queued. When the queue is full, lines are dropped and counted (one warning).

The file is rotated by size like :class:`logging.handlers.RotatingFileHandler` (``file`` -> ``file.1`` -> ...
-> ``file.N``, the oldest deleted; a line is never split across files). Files are created with mode 0600.
:func:`read_prediction_log` reads a whole rotated set back, oldest line first.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import queue
import re
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..config import ServeConfig
from ..errors import ConfigError, DataError

logger = logging.getLogger(__name__)

FILE_MODE = 0o600
SALT_SUFFIX = ".salt"  # the sidecar file next to the log that holds the salt of text_sha256
QUEUE_LINES = 10_000  # lines waiting for the writer thread before new ones are dropped
MAX_BATCH_LINES = 1_000  # most lines the writer thread takes from the queue for one write
MAX_REQUEST_ID_CHARS = 128
_STOP = object()


def model_id(model_dir: str | Path) -> str:
    """A short id of a trained model: 12 hex digits of the SHA-256 of its folder's ``intentune.json``.

    The same folder (or a copy, or its ONNX export) always gives the same id; retraining gives another one, since
    the metadata holds the training history and summary. Equal to :func:`metadata_id` of the classifier that
    saved the folder.

    Raises:
        ModelError: if ``model_dir`` is not a model folder (or a run folder holding one).
    """
    from ..folder import read_metadata, resolve_model_dir

    return metadata_id(read_metadata(resolve_model_dir(model_dir)))


def metadata_id(meta: Mapping[str, Any]) -> str:
    """The :func:`model_id` of a model's metadata (``IntentClassifier.metadata()`` or a folder's
    ``intentune.json``): the hash of its canonical JSON (sorted keys, no spaces), so layout does not matter."""
    canonical = json.dumps(meta, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:12]


def open_prediction_log(settings: ServeConfig) -> PredictionLog | None:
    """The prediction log that ``settings`` ask for (opened, its writer not yet started), or None when
    ``serve.log_predictions`` is unset.

    Raises:
        ConfigError: one line, if the log's folder does not exist or the file (or its salt file) cannot be written.
    """
    if not settings.log_predictions:
        return None
    return PredictionLog(
        settings.log_predictions,
        max_bytes=settings.log_max_bytes,
        backups=settings.log_backups,
        log_texts=settings.log_texts,
    )


class PredictionLog:
    """Appends prediction lines to a size-rotated JSONL file from a background thread.

    Args:
        path: the log file; its folder must exist. Created with mode 0600 when missing, appended to otherwise.
        max_bytes: the file is rotated before a line would take it over this size.
        backups: rotated files kept (``path.1`` newest ... ``path.N`` oldest).
        log_texts: store each text; False stores ``text_sha256`` instead, keyed with the salt in
            ``path.salt`` (64 hex digits, mode 0600, created once and kept, so a text hashes the same across
            rotations and restarts; copy it to give several servers the same hashes).
        queue_lines: lines that may wait for the writer (default :data:`QUEUE_LINES`); more are dropped and
            counted in ``dropped``.

    Raises:
        ConfigError: if the folder does not exist or the file or salt file cannot be written.

    Example:
        >>> log = PredictionLog("logs/predictions.jsonl", max_bytes=100_000_000, backups=5)
        >>> log.start(model_id="3f2a9c0d1e4b", runtime="torch")
        >>> log.add(["hi"], [clf.predict_details(["hi"])[0]], latency_ms=4.2)
        >>> log.close()  # writes what is queued, then stops the thread
    """

    def __init__(
        self,
        path: str | Path,
        *,
        max_bytes: int,
        backups: int,
        log_texts: bool = True,
        queue_lines: int | None = None,
    ) -> None:
        self.path = Path(path).expanduser()
        self.max_bytes, self.backups, self.log_texts = max_bytes, backups, log_texts
        self.written = 0  # lines written to the file (changed by the writer thread only)
        self.dropped = 0  # lines lost: the queue was full, or the write failed
        self.model_id: str | None = None
        self.runtime: str | None = None
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=queue_lines or QUEUE_LINES)
        self._lock = threading.Lock()
        self._warned: set[str] = set()
        self._thread: threading.Thread | None = None
        self._fd = self._open()
        self._size = os.fstat(self._fd).st_size
        try:
            if self._size and not _ends_with_newline(self.path):
                # A write cut short (a killed process, a full disk) left a partial last line: start a new file, so
                # every file is whole lines except perhaps its last, which the reader skips.
                self._rotate()
            self._salt = None if log_texts else self._read_or_make_salt()
        except BaseException as exc:
            with suppress(OSError):
                os.close(self._fd)
            if isinstance(exc, OSError):  # the rotation of a partial last line failed
                raise ConfigError(_open_problem(self.path, exc)) from None
            raise

    def start(self, *, model_id: str | None, runtime: str | None) -> None:
        """Start the writer thread; every line names ``model_id`` and ``runtime``."""
        self.model_id, self.runtime = model_id, runtime
        self._thread = threading.Thread(target=self._run, name="intentune-prediction-log", daemon=True)
        self._thread.start()

    def start_serving(self, predictor: Any, model_dir: str | Path | None = None) -> None:
        """:meth:`start` for a served predictor: the model id of ``model_dir`` (else of the predictor's
        ``metadata()``, else none) and the runtime its ``describe()`` names."""
        if model_dir:
            identity: str | None = model_id(model_dir)
        else:
            metadata = getattr(predictor, "metadata", None)
            identity = metadata_id(metadata()) if callable(metadata) else None
        self.start(model_id=identity, runtime=predictor.describe().get("runtime"))

    def add(
        self,
        texts: Sequence[str],
        results: Sequence[Mapping[str, Any]],
        *,
        latency_ms: float,
        request_id: str | None = None,
    ) -> None:
        """Queue one line per text (``results`` as the response carries them); never blocks.

        Lines that do not fit the queue are dropped and counted; the first drop logs a warning.
        """
        answered_at = time.time()
        if request_id is not None:
            request_id = request_id[:MAX_REQUEST_ID_CHARS]
        for text, result in zip(texts, results, strict=True):
            try:
                self._queue.put_nowait((answered_at, text, result, latency_ms, request_id))
            except queue.Full:
                self._drop(1, "queue", "the prediction log's queue is full (the disk is slower than the requests)")

    def close(self) -> None:
        """Write every queued line, stop the writer thread and close the file."""
        if self._thread is not None:
            if self._thread.is_alive():
                self._queue.put(_STOP)  # waits while the queue is full, until the writer makes room
            self._thread.join()
            self._thread = None
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def stats(self) -> dict[str, int]:
        """``written`` and ``dropped`` line counts (the server's ``GET /health`` shows them)."""
        return {"written": self.written, "dropped": self.dropped}

    def row(self, answered_at: float, text: str, result: Mapping[str, Any], latency_ms: float,
             request_id: str | None) -> dict[str, Any]:  # fmt: skip
        """One log row, in the order its keys are written."""
        row: dict[str, Any] = {
            "time": datetime.fromtimestamp(answered_at, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "model_id": self.model_id,
            "request_id": request_id,
        }
        if self._salt is None:
            row["text"] = text
        else:
            digest = hmac.new(self._salt, text.encode("utf-8", "surrogatepass"), hashlib.sha256)
            row["text_sha256"] = digest.hexdigest()
        row.update(
            intent=result["intent"],
            confidence=result["confidence"],
            is_out_of_scope=result["is_out_of_scope"],
            intents=result.get("intents", []),
            top=result["top"],
            runtime=self.runtime,
            latency_ms=round(latency_ms, 2),
        )
        return row

    def write_lines(self, lines: list[bytes]) -> None:
        """Append whole lines, rotating before a line would take the file over ``max_bytes``; one ``write`` call
        per file touched. Called by the writer thread."""
        pending: list[bytes] = []
        pending_size = 0
        for data in lines:
            if self._size + pending_size and self._size + pending_size + len(data) > self.max_bytes:
                self._append(pending)
                pending, pending_size = [], 0
                self._rotate()
            pending.append(data)
            pending_size += len(data)
        self._append(pending)

    # --------------------------------------------------------------------------------------------- writer thread
    def _run(self) -> None:
        stop = False
        while not stop:
            batch = [self._queue.get()]
            while len(batch) < MAX_BATCH_LINES:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stop = _STOP in batch
            items = [item for item in batch if item is not _STOP]
            written = self.written
            try:
                self.write_lines([_encode(self.row(*item)) for item in items])
            except OSError as exc:  # the disk is full or the file went away: count the lines and go on
                self._drop(len(items) - (self.written - written), "write", f"cannot write {self.path} ({exc})")
            except Exception:  # not swallowed: logged with its traceback; the writer goes on with the next lines
                logger.exception("prediction log: %d lines failed", len(items))
                self._drop(len(items) - (self.written - written), "error", "the prediction log's writer failed")

    def _drop(self, lines: int, cause: str, message: str) -> None:
        with self._lock:
            self.dropped += lines
            first = cause not in self._warned
            self._warned.add(cause)
        if first:
            logger.warning("%s: dropping lines (GET /health counts them); this warning is shown once", message)

    def _append(self, lines: list[bytes]) -> None:
        data = b"".join(lines)
        while data:
            count = os.write(self._fd, data)
            self._size += count
            data = data[count:]
        self.written += len(lines)

    def _rotate(self) -> None:
        """``path.(N-1)`` -> ``path.N``, ..., ``path`` -> ``path.1``, then a new empty ``path``."""
        os.close(self._fd)
        try:
            for number in range(self.backups - 1, 0, -1):
                older = self._backup(number)
                if older.exists():
                    os.replace(older, self._backup(number + 1))
            os.replace(self.path, self._backup(1))
        finally:
            self._fd = self._open()
            self._size = os.fstat(self._fd).st_size

    def _backup(self, number: int) -> Path:
        return self.path.with_name(f"{self.path.name}.{number}")

    def _open(self) -> int:
        try:
            return os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, FILE_MODE)
        except OSError as exc:
            raise ConfigError(_open_problem(self.path, exc)) from None

    def _read_or_make_salt(self) -> bytes:
        from .._io import write_file_atomic

        path = self.path.with_name(self.path.name + SALT_SUFFIX)
        try:
            if not path.exists():
                write_file_atomic(path, os.urandom(32).hex() + "\n")  # through mkstemp: mode 0600
            text = path.read_text(encoding="ascii", errors="replace").strip()
        except OSError as exc:
            raise ConfigError(_open_problem(path, exc)) from None
        if not re.fullmatch(r"[0-9a-f]{64}", text):
            raise ConfigError(
                f"serve.log_predictions: {path} is not a salt file (64 hex digits); delete it to start a new salt "
                "(text_sha256 values then change)"
            )
        return bytes.fromhex(text)


def _encode(row: dict[str, Any]) -> bytes:
    try:
        return (json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate (the server refuses them): \u escapes keep the line valid JSON
        return (json.dumps(row) + "\n").encode("ascii")


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as handle:
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) == b"\n"


def _open_problem(path: Path, exc: OSError) -> str:
    if isinstance(exc, FileNotFoundError):
        return (
            f"serve.log_predictions: the folder {path.parent} does not exist; create it, or point "
            "serve.log_predictions at a file in an existing folder"
        )
    if isinstance(exc, IsADirectoryError):
        return f"serve.log_predictions: {path} is a folder; give a file path such as {path / 'predictions.jsonl'}"
    return f"serve.log_predictions: cannot write {path} ({exc.strerror or exc}); give a file path the server may write"


# -------------------------------------------------------------------------------------------------------- reading
def prediction_log_files(path: str | Path) -> list[Path]:
    """The files of a rotated prediction log, oldest first: ``path.N``, ..., ``path.1``, then ``path``.

    Raises:
        DataError: if neither ``path`` nor any rotated file of it exists.
    """
    path = Path(path).expanduser()
    pattern = re.compile(re.escape(path.name) + r"\.([0-9]+)")
    folder = path.parent
    rotated = sorted(
        ((int(match.group(1)), child) for child in (folder.iterdir() if folder.is_dir() else [])
         if (match := pattern.fullmatch(child.name)) and child.is_file()),
        reverse=True,
    )  # fmt: skip
    files = [child for _, child in rotated] + ([path] if path.is_file() else [])
    if not files:
        if path.is_dir():
            raise DataError(f"{path} is a folder; give the prediction log's file (serve.log_predictions)")
        raise DataError(f"{path}: no prediction log there (neither the file nor a rotated {path.name}.1)")
    return files


def read_prediction_log(path: str | Path) -> Iterator[dict[str, Any]]:
    """The rows of a prediction log, oldest first, across its rotated files (see :func:`prediction_log_files`).

    The last line of a file is skipped when it is cut short (no newline, not valid JSON): a write that a killed
    server, a full disk or the server writing at this moment left unfinished.

    Raises:
        DataError: if the log does not exist, or a line before a file's last is not a JSON object (naming
            ``file:line``).
    """
    for file in prediction_log_files(path):
        yield from _read_file(file)


def _read_file(file: Path) -> Iterator[dict[str, Any]]:
    with open(file, "rb") as handle:
        for number, raw in enumerate(handle, 1):
            if not raw.strip():
                continue
            try:
                row = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                if not raw.endswith(b"\n"):
                    return  # a truncated last line
                raise DataError(f"{file}:{number}: not a prediction log line ({exc}); the file is damaged") from None
            if not isinstance(row, dict):
                raise DataError(f"{file}:{number}: not a prediction log line (a JSON {type(row).__name__})")
            yield row
