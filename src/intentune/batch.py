"""Prediction with a saved model: :func:`predict_texts` for texts, and batch prediction of CSV and JSONL files of any
size (:func:`predict_file`), streaming rows in and out: read a chunk of rows, predict it, write it, and never hold
the file.
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
from collections.abc import Iterator, Sequence
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


def predict_texts(
    model_dir: str | Path, texts: Sequence[str], *, top_k: int = 1, runtime: str = "auto"
) -> list[dict[str, Any]]:
    """Predict intents for texts with a saved model.

    Args:
        runtime: ``auto``, ``torch``, ``onnx`` or ``onnx-int8`` (see :func:`intentune.inference.load_predictor`).

    Returns:
        One dict per text: ``text``, ``intent`` (the out-of-scope label when rejected), ``confidence``,
        ``is_out_of_scope`` and ``top`` (the ``top_k`` best intents with their calibrated probabilities).
    """
    from .inference import load_predictor

    if not texts:
        raise DataError("no texts to predict; pass texts, --file, or pipe lines on standard input")
    details = load_predictor(model_dir, runtime=runtime).predict_details(list(texts), top_k=top_k)
    return [{"text": text, **d} for text, d in zip(texts, details)]


def predict_file(
    model_dir: str | Path,
    input_file: str | Path,
    output_file: str | Path,
    *,
    text_field: str | None = None,
    runtime: str = "auto",
    top_k: int = 1,
    chunk_size: int | None = None,
    progress: bool = False,
) -> int:
    """Predict every row of a CSV or JSONL file of any size, streaming it in chunks (``intentune predict --input``).

    The output (CSV or JSONL, by its extension) keeps every input field and adds ``intent``, ``confidence`` and
    ``is_out_of_scope`` (``intents``, every intent found as JSON, for a multi-label model; and ``top``, the ``top_k``
    best intents as JSON, when ``top_k > 1``); when the input
    already has one of these fields (a labelled file's ``intent``), all added fields get the prefix
    ``predicted_``. It is written to a temporary file and renamed into place when complete.

    Args:
        text_field: the field holding the text; default: the model's ``data.text_field``.
        runtime: see :func:`intentune.inference.load_predictor`.
        chunk_size: rows read, predicted and written at a time (default :data:`intentune.batch.CHUNK_ROWS`).
        progress: show a progress bar on standard error.

    Returns:
        The number of rows written (one per input row).

    Raises:
        DataError: if the input is missing, a directory, unreadable, malformed, has no rows, or a row lacks the text
            (naming the line); nothing is written then.
    """
    import sys

    from tqdm import tqdm

    from .inference import load_predictor
    from .preprocess import clean_text

    input_file, output_file = Path(input_file), Path(output_file)
    check_data_file(input_file, kinds=".csv or .jsonl")  # a missing file or a folder fails before the model loads
    for path in (input_file, output_file):
        stream_format(path)  # and so does an unknown extension
    if output_file.is_dir():
        raise DataError(f"{output_file}/ is a directory; pass an output file name ending in .csv or .jsonl")
    predictor = load_predictor(model_dir, runtime=runtime)
    dcfg = predictor.config.data
    field = text_field or dcfg.text_field
    writer, written = RowWriter(output_file), 0
    bar = tqdm(total=count_lines(input_file), unit="rows", file=sys.stderr, disable=not progress, leave=False)
    try:
        for chunk in read_chunks(input_file, field, chunk_size=chunk_size):
            texts = [str(row[field]) for _, row in chunk]
            for (line, _), text in zip(chunk, texts):
                if not clean_text(text, lowercase=dcfg.lowercase, remove_special_chars=dcfg.remove_special_chars):
                    raise DataError(f"{input_file}:{line}: field {field!r} is empty after data.remove_special_chars")
            details = predictor.predict_details(texts, top_k=top_k)
            multi = predictor.is_multi_label
            writer.write([_with_prediction(row, d, top_k, multi) for (_, row), d in zip(chunk, details)])
            written += len(chunk)
            bar.update(chunk[-1][0] - bar.n)
        writer.commit()
    except BaseException:
        writer.discard()
        raise
    finally:
        bar.close()
    return written


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


def _with_prediction(row: dict[str, Any], details: dict[str, Any], top_k: int, multi_label: bool) -> dict[str, Any]:
    added = {k: details[k] for k in ("intent", "confidence", "is_out_of_scope")}
    if multi_label:
        added["intents"] = details["intents"]
    if top_k > 1:
        added["top"] = details["top"]
    prefix = "predicted_" if any(k in row for k in added) else ""
    return {**row, **{prefix + k: v for k, v in added.items()}}
