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
from .formats import check_data_file, iter_csv, iter_jsonl

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
        DataError: if the file is missing, a directory, not UTF-8, malformed (a CSV quote that never closes
            included), has no rows, or a row lacks the text field (naming the line and the fields found).
    """
    check_data_file(path, kinds=".csv or .jsonl")
    fmt = stream_format(path)
    size = chunk_size or CHUNK_ROWS
    chunk: list[Row] = []
    found = False
    try:
        with path.open(encoding="utf-8-sig", newline="" if fmt == "csv" else None) as handle:
            for line, row in iter_csv(path, handle) if fmt == "csv" else iter_jsonl(path, handle):
                _check_text(path, line, row, text_field)
                chunk.append((line, row))
                found = True
                if len(chunk) == size:
                    yield chunk
                    chunk = []
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text; save the file as UTF-8") from None
    if not found:
        only = " (only a header)" if fmt == "csv" else ""
        raise DataError(f"{path} has no rows{only}; give at least one text")
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
