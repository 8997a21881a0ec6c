"""File formats of labelled utterances, in and out.

| format | extension | layout |
|---|---|---|
| ``csv`` | ``.csv`` | header row, one utterance per row, text and intent columns (any names) |
| ``jsonl`` | ``.jsonl``, ``.ndjson`` | one JSON object per line with a text and an intent field (any names) |
| ``rasa`` | ``.yml``, ``.yaml`` | Rasa NLU: ``nlu:`` / ``- intent: NAME`` / ``examples: |`` with ``- text`` lines
  (or Rasa 3's list of ``- text: ...`` items with metadata); entity annotations (``[Paris](city)``,
  ``[Paris]{"entity": "city"}``) are reduced to their text |
| ``openai`` | ``.jsonl`` whose rows have ``messages`` | OpenAI chat fine-tuning: user message = text,
  assistant message = intent |
| ``clinc`` | ``.json`` (read only) | the CLINC150 layout: ``{"train": [[text, intent], ...], "oos_train": ...}`` |

Readers return ``(line, text, intent, source)`` rows; the line is 1-based (for ``clinc``, the item's position in
its list); ``source`` is the CSV/JSONL ``source`` field (``real``, ``template``, ``generated``), else ``real``.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from .errors import DataError

Row = tuple[int, str, str, str]  # (line, text, intent, source)

READ_FORMATS = ("csv", "jsonl", "rasa", "openai", "clinc")
WRITE_FORMATS = ("csv", "jsonl", "rasa", "openai")
_UNCLOSED = 'a quote opens here and never closes; close it or escape it as ""'
_ENTITY = re.compile(r"\[([^\]]*)\](?:\([^)]*\)|\{[^}]*\})")


def detect_format(path: str | Path) -> str:
    """The format of a file, from its extension (and, for ``.jsonl``, its first row).

    Raises:
        DataError: for an unknown extension, or a path that is a directory.
    """
    path = Path(path)
    if path.is_dir():
        raise DataError(_directory_message(path))
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".yml", ".yaml"):
        return "rasa"
    if suffix == ".json":
        return "clinc"
    if suffix in (".jsonl", ".ndjson"):
        return "openai" if path.is_file() and _first_row_has_messages(path) else "jsonl"
    raise DataError(
        f"{path}: unknown file type {suffix!r}; use .csv, .jsonl, .yml (Rasa NLU) or .json (CLINC150 layout)"
    )


def check_data_file(path: Path, *, kinds: str = ".csv, .jsonl or .yml") -> None:
    """Check that a data file to read exists and is a file, not a directory.

    Every reader of data files (training, evaluation, validation, conversion, batch prediction) calls this
    first, so a folder given where a file belongs gets the same message everywhere.

    Args:
        path: the file to read.
        kinds: the file types the caller reads, for the message (``".csv or .jsonl"`` for batch prediction).

    Raises:
        DataError: if ``path`` is a directory or does not exist.
    """
    if path.is_dir():
        raise DataError(_directory_message(path, kinds))
    if not path.is_file():
        raise DataError(f"{path}: file not found")


def _directory_message(path: Path, kinds: str = ".csv, .jsonl or .yml") -> str:
    return f"{path}/ is a directory, not a data file; pass a {kinds} file"


def read_rows(path: Path, fmt: str, *, text_field: str, label_field: str, split: str = "train") -> list[Row]:
    """Read ``(line, text, intent)`` rows; texts and intents are returned as found (possibly empty).

    Raises:
        DataError: for a malformed file or a missing field, naming the line.
    """
    if fmt in ("csv", "jsonl"):
        raw = _read_csv(path) if fmt == "csv" else _read_jsonl(path)
        return [
            (line, *_fields(row, text_field, label_field, path, line), str(row.get("source") or "real"))
            for line, row in raw
        ]
    if fmt == "openai":
        return [(line, *_openai_row(row, path, line), "real") for line, row in _read_jsonl(path)]
    if fmt == "rasa":
        return _read_rasa(path)
    if fmt == "clinc":
        return _read_clinc(path, split)
    raise DataError(f"unknown format {fmt!r}; formats are {', '.join(READ_FORMATS)}")


def write_rows(
    path: Path,
    fmt: str,
    texts: Sequence[str],
    labels: Sequence[str],
    *,
    text_field: str,
    label_field: str,
    sources: Sequence[str] | None = None,
) -> None:
    """Write utterances in ``fmt`` (one of ``WRITE_FORMATS``); CSV and JSONL add a ``source`` field if given.

    The file is written whole through a temporary sibling and a rename, so an existing file at ``path`` stays as it
    was when writing fails, and readers never see half of one.
    """
    if fmt not in WRITE_FORMATS:
        raise DataError(f"cannot write format {fmt!r}; formats that can be written are {', '.join(WRITE_FORMATS)}")
    from ._io import write_file_atomic

    handle = io.StringIO(newline="")
    if fmt == "csv":
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow([text_field, label_field, *(["source"] if sources else [])])
        writer.writerows(zip(texts, labels, sources) if sources else zip(texts, labels))
    elif fmt == "jsonl":
        for i, (text, label) in enumerate(zip(texts, labels)):
            row = {text_field: text, label_field: label, **({"source": sources[i]} if sources else {})}
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    elif fmt == "openai":
        system = openai_system_prompt(sorted(set(labels)))
        for text, label in zip(texts, labels):
            messages = [
                {"role": "system", "content": system},
                {"role": "user", "content": text},
                {"role": "assistant", "content": label},
            ]
            handle.write(json.dumps({"messages": messages}, ensure_ascii=False) + "\n")
    else:
        handle.write(_rasa_text(texts, labels))
    write_file_atomic(path, handle.getvalue())


def openai_system_prompt(intents: Sequence[str]) -> str:
    """The system message written into OpenAI chat fine-tuning files."""
    listed = ", ".join(intents)
    return f"Classify the user's message as one of these intents: {listed}. Answer with the intent only."


def strip_entities(text: str) -> str:
    """Reduce Rasa entity annotations to their text: ``fly to [Paris](city)`` -> ``fly to Paris``."""
    return _ENTITY.sub(r"\1", text)


def _rasa_text(texts: Sequence[str], labels: Sequence[str]) -> str:
    by_intent: dict[str, list[str]] = {}
    for text, label in zip(texts, labels):
        by_intent.setdefault(label, []).append(" ".join(text.split()))  # one line per example
    lines = ['version: "3.1"', "nlu:"]
    for intent, examples in by_intent.items():
        lines += [f"- intent: {json.dumps(intent) if _needs_quotes(intent) else intent}", "  examples: |"]
        lines += [f"    - {example}" for example in examples]
    return "\n".join(lines) + "\n"


def _needs_quotes(value: str) -> bool:
    return not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_./+-]*", value)


def _read_rasa(path: Path) -> list[Row]:
    import yaml

    try:
        root = yaml.compose(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise DataError(f"{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text; save the file as UTF-8") from None
    nlu = _mapping(root).get("nlu") if isinstance(root, yaml.MappingNode) else None
    if not isinstance(nlu, yaml.SequenceNode):
        raise DataError(f"{path}: expected a Rasa NLU file with a top-level 'nlu:' list of '- intent:' entries")
    rows: list[Row] = []
    for item in nlu.value:
        entry = _mapping(item) if isinstance(item, yaml.MappingNode) else {}
        if "intent" not in entry:
            continue  # synonym, regex and lookup entries carry no labelled examples
        line = entry["intent"].start_mark.line + 1
        examples = entry.get("examples")
        if isinstance(examples, yaml.SequenceNode):  # Rasa 3's form with metadata: a list of {text: ...}
            for item_node in examples.value:
                text_node = _mapping(item_node).get("text") if isinstance(item_node, yaml.MappingNode) else None
                if not isinstance(text_node, yaml.ScalarNode):
                    raise DataError(f"{path}:{item_node.start_mark.line + 1}: each example needs a 'text:' field")
                text = strip_entities(" ".join(str(text_node.value).split()))
                rows.append((text_node.start_mark.line + 1, text, str(entry["intent"].value), "real"))
            continue
        if not isinstance(examples, yaml.ScalarNode):
            raise DataError(f"{path}:{line}: intent {entry['intent'].value!r} has no 'examples: |' block")
        first = examples.start_mark.line + 2  # the block's first line, just below 'examples: |'
        for offset, raw in enumerate(examples.value.splitlines()):
            stripped = raw.strip()
            if not stripped:
                continue
            if not stripped.startswith("-"):
                raise DataError(f"{path}:{first + offset}: example lines must start with '- ', found {stripped!r}")
            rows.append((first + offset, strip_entities(stripped[1:].strip()), str(entry["intent"].value), "real"))
    return rows


def _mapping(node: Any) -> dict[str, Any]:
    return {key.value: value for key, value in node.value}


def _read_clinc(path: Path, split: str) -> list[Row]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    if not isinstance(data, dict) or split not in data:
        found = ", ".join(data) if isinstance(data, dict) else type(data).__name__
        raise DataError(f"{path}: expected the CLINC150 layout with a {split!r} list (found: {found})")
    rows: list[Row] = []
    for key in (split, f"oos_{split}"):
        for index, item in enumerate(data.get(key, []), start=1):
            if not (isinstance(item, list) and len(item) == 2 and all(isinstance(x, str) for x in item)):
                raise DataError(f"{path}: item {index} of {key!r} must be [text, intent], found {item!r}")
            rows.append((index, item[0], item[1], "real"))
    return rows


def _openai_row(row: dict[str, Any], path: Path, line: int) -> tuple[str, str]:
    messages = row.get("messages")
    if not isinstance(messages, list):
        raise DataError(f"{path}:{line}: expected a 'messages' list (OpenAI chat format)")
    by_role: dict[str, str] = {}
    for message in messages:
        if isinstance(message, dict) and isinstance(message.get("content"), str):
            by_role[str(message.get("role"))] = message["content"]  # the last message of each role counts
    missing = [role for role in ("user", "assistant") if role not in by_role]
    if missing:
        raise DataError(
            f"{path}:{line}: no {' or '.join(missing)} message; the user's is the text, the assistant's the intent"
        )
    return by_role["user"], by_role["assistant"]


def _fields(row: dict[str, object], text_field: str, label_field: str, path: Path, line: int) -> tuple[str, str]:
    return _field(row, text_field, "text", path, line), _field(row, label_field, "label", path, line)


def _field(row: dict[str, object], name: str, what: str, path: Path, line: int) -> str:
    if name not in row:
        found = ", ".join(map(str, row)) or "none"
        setting = "data.text_field" if what == "text" else "data.label_field"
        raise DataError(f"{path}:{line}: missing field {name!r} (fields found: {found}); set {setting}")
    value = row[name]
    if value is None:
        return ""
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise DataError(f"{path}:{line}: field {name!r} must be text, found {type(value).__name__}")
    return str(value)


def _read_csv(path: Path) -> list[tuple[int, dict[str, Any]]]:
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            rows = list(iter_csv(path, handle))
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text; save the file as UTF-8") from None
    if not rows:
        raise DataError(f"{path} has no rows (only a header); add one row per example with a text and an intent")
    return rows


def iter_csv(path: Path, handle: IO[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    """Stream ``(line number, row)`` from an open CSV file: the first non-blank row is the header, each later
    non-blank row a dict keyed by it (a missing value is None). The line is where the row begins.

    Open the file with ``newline=""`` so that line breaks inside quoted texts survive.

    Raises:
        DataError: for a file with no header, a row with more values than the header has columns, a quote that
            never closes (naming the line where it opens), or other malformed CSV.
    """
    lines = _RecordLines(handle)
    reader = csv.reader(lines)
    header: list[str] | None = None
    while True:
        start = reader.line_num + 1  # csv.reader reads one record per call, from the line after the last
        lines.record = []
        try:
            values = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            # A quote that never closes in a large file swallows the rest of it and overflows the field limit.
            opened = _open_quote_line("".join(lines.record))
            if opened is None:
                raise DataError(f"{path}:{start}: malformed CSV ({exc})") from None
            limit = csv.field_size_limit()
            raise DataError(f"{path}:{start + opened}: {_UNCLOSED} (its text runs past {limit} characters)") from None
        if lines.at_eof:  # the reader asked for a line past the end: a quoted field was still open
            opened = _open_quote_line("".join(lines.record)) or 0
            raise DataError(f"{path}:{start + opened}: {_UNCLOSED}")
        if not any(values):  # blank line, or only empty values
            continue
        if header is None:
            header = values
            continue
        if len(values) > len(header):
            raise DataError(f"{path}:{start}: more values than header columns; quote texts that contain commas")
        yield start, dict(zip(header, values + [None] * (len(header) - len(values))))
    if header is None:
        raise DataError(f"{path}: empty file; expected a header row such as 'text,intent' and one row per text")


class _RecordLines:
    """The lines of an open file, for :func:`csv.reader`, keeping those of the record being read.

    ``at_eof`` turns true when the reader asks for a line after the last; in the middle of a record that happens
    only inside a quoted field, which the csv module (without ``strict``) would otherwise close silently at the
    end of the file, merging every row after the quote into one text.
    """

    def __init__(self, handle: IO[str]) -> None:
        self._lines = iter(handle)
        self.record: list[str] = []
        self.at_eof = False

    def __iter__(self) -> _RecordLines:
        return self

    def __next__(self) -> str:
        try:
            line = next(self._lines)
        except StopIteration:
            self.at_eof = True
            raise
        self.record.append(line)
        return line


def _open_quote_line(record: str) -> int | None:
    """The 0-based line, within one CSV record's text, of the quote that opens a quoted field still open at the
    record's end; None if every quote closes."""
    opened, state = 0, "start"  # states: start of a field, in a plain field, in quotes, just after a quote in quotes
    for i, char in enumerate(record):
        if state == "quoted":
            state = "closing" if char == '"' else "quoted"
        elif state == "closing":  # "" is an escaped quote; anything else ends the quoted part
            state = "quoted" if char == '"' else "start" if char == "," else "plain"
        elif char == ",":
            state = "start"
        elif char == '"' and state == "start":
            opened, state = i, "quoted"
        else:
            state = "plain"
    return record.count("\n", 0, opened) if state == "quoted" else None


def iter_jsonl(path: Path, handle: IO[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    """Stream ``(line number, object)`` from an open JSONL file, skipping blank lines.

    Raises:
        DataError: naming the line of invalid JSON or of a value that is not an object.
    """
    for line_no, line in enumerate(handle, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{line_no}: not valid JSON ({exc.msg}); one JSON object per line") from None
        if not isinstance(row, dict):
            raise DataError(f"{path}:{line_no}: expected a JSON object, found {type(row).__name__}")
        yield line_no, row


def _read_jsonl(path: Path) -> list[tuple[int, dict[str, Any]]]:
    try:
        with path.open(encoding="utf-8-sig") as handle:
            rows = list(iter_jsonl(path, handle))
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text; save the file as UTF-8") from None
    if not rows:
        raise DataError(f"{path}: empty file; expected one JSON object per line with a text and an intent")
    return rows


def _first_row_has_messages(path: Path) -> bool:
    with path.open(encoding="utf-8-sig", errors="replace") as handle:
        for line in handle:
            if line.strip():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    return False
                return isinstance(row, dict) and "messages" in row
    return False
