"""Streaming rows of CSV and JSONL files of any size in and out, for batch prediction
(:func:`intentune.pipeline.predict_file`): read a chunk of rows, predict it, write it, and never hold the file.
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from .errors import DataError

CHUNK_ROWS = 512  # rows read, predicted and written at a time
STREAM_FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
Row = tuple[int, dict[str, Any]]  # (1-based line, fields)


def stream_format(path: Path) -> str:
    """``csv`` or ``jsonl``, from the file name.

    Raises:
        DataError: for another extension.
    """
    fmt = STREAM_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise DataError(f"{path}: unknown file type {path.suffix!r} for batch prediction; use .csv or .jsonl")
    return fmt


def read_chunks(path: Path, text_field: str, *, chunk_size: int | None = None) -> Iterator[list[Row]]:
    """Yield lists of at most ``chunk_size`` rows (default :data:`CHUNK_ROWS`), each with its line number.

    Every row is checked to have a non-empty ``text_field``.

    Raises:
        DataError: if the file is missing, not UTF-8, malformed, or a row lacks the text field (naming the
            line and the fields found).
    """
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    fmt = stream_format(path)
    size = chunk_size or CHUNK_ROWS
    chunk: list[Row] = []
    try:
        with path.open(encoding="utf-8-sig", newline="" if fmt == "csv" else None) as handle:
            rows = _csv_rows(path, handle) if fmt == "csv" else _jsonl_rows(path, handle)
            for line, row in rows:
                _check_text(path, line, row, text_field)
                chunk.append((line, row))
                if len(chunk) == size:
                    yield chunk
                    chunk = []
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text; save the file as UTF-8") from None
    if chunk:
        yield chunk


def count_lines(path: Path) -> int:
    """Lines in a file, counted in binary blocks (for a progress bar's total; quoted line breaks count too)."""
    count = 0
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            count += block.count(b"\n")
    return count


class RowWriter:
    """Writes rows to a temporary file beside ``path``; :meth:`commit` renames it into place, :meth:`discard`
    removes it, so an interrupted job never leaves a half-written output file.

    CSV columns are those of the first row written; JSON values that are not text or numbers are written as JSON.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fmt = stream_format(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
        self._tmp = Path(tmp)
        self._handle: IO[str] = os.fdopen(fd, "w", encoding="utf-8", newline="")
        self._csv: csv.DictWriter | None = None

    def write(self, rows: list[dict[str, Any]]) -> None:
        if self.fmt == "jsonl":
            self._handle.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
            return
        if self._csv is None and rows:
            self._csv = csv.DictWriter(self._handle, fieldnames=list(rows[0]), lineterminator="\n")
            self._csv.writeheader()
        for row in rows:
            try:
                self._csv.writerow({k: _csv_value(v) for k, v in row.items()})  # type: ignore[union-attr]
            except ValueError:
                extra = sorted(set(row) - set(self._csv.fieldnames))  # type: ignore[union-attr]
                raise DataError(
                    f"{self.path}: a row has fields the first row lacks ({', '.join(extra)}); CSV output needs the "
                    "same fields in every row: write .jsonl instead"
                ) from None

    def commit(self) -> None:
        self._handle.close()
        self._tmp.replace(self.path)

    def discard(self) -> None:
        self._handle.close()
        self._tmp.unlink(missing_ok=True)


def _csv_rows(path: Path, handle: IO[str]) -> Iterator[Row]:
    reader = csv.DictReader(handle)
    try:
        if not reader.fieldnames:
            raise DataError(f"{path}: empty file; expected a header row and one row per text")
        for row in reader:
            if None in row:
                raise DataError(
                    f"{path}:{reader.line_num}: more values than header columns; quote texts that contain commas"
                )
            if any(v for v in row.values()):  # skip blank lines
                yield reader.line_num, row
    except csv.Error as exc:
        raise DataError(f"{path}:{reader.line_num}: malformed CSV: {exc}") from None


def _jsonl_rows(path: Path, handle: IO[str]) -> Iterator[Row]:
    from .formats import iter_jsonl

    return iter_jsonl(path, handle)


def _check_text(path: Path, line: int, row: dict[str, Any], text_field: str) -> None:
    if text_field not in row:
        found = ", ".join(map(str, row)) or "none"
        raise DataError(f"{path}:{line}: no text field {text_field!r} (fields found: {found}); set --text-field")
    value = row[text_field]
    if isinstance(value, (bool, dict, list)):
        raise DataError(f"{path}:{line}: field {text_field!r} must be text, found {type(value).__name__}")
    if value is None or not str(value).strip():
        raise DataError(f"{path}:{line}: field {text_field!r} is empty; fill it in or remove the row")


def _csv_value(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return value
