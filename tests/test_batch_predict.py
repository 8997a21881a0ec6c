"""Batch prediction of CSV and JSONL files: columns kept, one output row per input row, streamed in chunks,
clear errors, atomic output; and the CLI's --input/--output."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from intentune import DataError, IntentClassifier, predict_file
from intentune.cli import app

from conftest import toy_data

runner = CliRunner()


@pytest.fixture(scope="module")
def model(fitted_encoder: IntentClassifier, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fitted_encoder.save(tmp_path_factory.mktemp("batch") / "model")


def _write_csv(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def test_csv_keeps_every_column_and_adds_the_prediction(
    model: Path, fitted_encoder: IntentClassifier, tmp_path: Path
) -> None:
    texts, _ = toy_data()
    source = _write_csv(tmp_path / "in.csv", ["id", "text", "channel"], [[i, t, "web"] for i, t in enumerate(texts)])
    assert predict_file(model, source, tmp_path / "out.csv", top_k=2) == len(texts)
    rows = _read_csv(tmp_path / "out.csv")
    assert list(rows[0]) == ["id", "text", "channel", "intent", "confidence", "is_out_of_scope", "top"]
    assert [r["id"] for r in rows] == [str(i) for i in range(len(texts))]
    expected = fitted_encoder.predict_details(texts, top_k=2)
    assert [r["intent"] for r in rows] == [d["intent"] for d in expected]
    assert [float(r["confidence"]) for r in rows] == [d["confidence"] for d in expected]
    assert {r["is_out_of_scope"] for r in rows} == {"false"}
    assert json.loads(rows[0]["top"]) == expected[0]["top"] and len(expected[0]["top"]) == 2


def test_labelled_jsonl_keeps_its_intent_and_gets_predicted_fields(
    model: Path, fitted_encoder: IntentClassifier, tmp_path: Path
) -> None:
    texts, labels = toy_data()
    source = tmp_path / "in.jsonl"
    lines = [json.dumps({"utterance": t, "intent": y, "meta": {"n": i}}) for i, (t, y) in enumerate(zip(texts, labels))]
    source.write_text("\n".join(lines[:5]) + "\n\n" + "\n".join(lines[5:]) + "\n", encoding="utf-8")  # a blank line
    written = predict_file(model, source, tmp_path / "out.jsonl", text_field="utterance")
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()]
    assert written == len(rows) == len(texts)
    assert list(rows[0]) == ["utterance", "intent", "meta", "predicted_intent", "predicted_confidence",
                             "predicted_is_out_of_scope"]  # fmt: skip
    assert [r["intent"] for r in rows] == labels and rows[3]["meta"] == {"n": 3}
    assert [r["predicted_intent"] for r in rows] == fitted_encoder.predict(texts)


def test_reads_and_predicts_in_chunks(model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import intentune.inference

    texts, _ = toy_data()
    source = _write_csv(tmp_path / "in.csv", ["text"], [[t] for t in texts[:7]])
    seen: list[int] = []
    real_load = intentune.inference.load_predictor

    def spying_load(*args: object, **kwargs: object) -> object:
        predictor = real_load(*args, **kwargs)
        real = predictor.predict_details
        predictor.predict_details = lambda batch, **kw: seen.append(len(batch)) or real(batch, **kw)
        return predictor

    monkeypatch.setattr("intentune.batch.CHUNK_ROWS", 2)
    monkeypatch.setattr(intentune.inference, "load_predictor", spying_load)
    assert predict_file(model, source, tmp_path / "out.csv") == 7
    assert seen == [2, 2, 2, 1]
    assert len(_read_csv(tmp_path / "out.csv")) == 7


def test_missing_text_column_names_the_columns_found(model: Path, tmp_path: Path) -> None:
    source = _write_csv(tmp_path / "in.csv", ["id", "utterance"], [[1, "hello"]])
    with pytest.raises(DataError, match=r"in.csv:2: no text field 'text' \(fields found: id, utterance\)"):
        predict_file(model, source, tmp_path / "out.csv")
    assert list(tmp_path.iterdir()) == [source]  # no output, no temporary file


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("in.jsonl", '{"text": "hi"}\n{"text": "bye"\n', r"in.jsonl:2: not valid JSON"),
        ("in.jsonl", '{"text": "hi"}\n["bye"]\n', r"in.jsonl:2: expected a JSON object, found list"),
        ("in.jsonl", '{"text": "hi"}\n{"text": "  "}\n', r"in.jsonl:2: field 'text' is empty"),
        ("in.csv", "text\nhi\ncaf\xe9\n".encode("latin-1"), r"in.csv: not UTF-8 text; save the file as UTF-8"),
        ("in.csv", "text\nhi,there\n", r"in.csv:2: more values than header columns"),
        ("in.csv", "", r"in.csv: empty file"),
        ("in.txt", "hi\n", r"unknown file type '.txt' for batch prediction; use .csv or .jsonl"),
        (
            "in.csv",
            'text\nhi\nbye\n"so long\nthanks\n',
            r"in.csv:4: a quote opens here and never closes; close it or es",
        ),
        ("in.csv", "text\n\n", r"in.csv has no rows \(only a header\); give at least one text"),
        ("in.jsonl", "\n", r"in.jsonl has no rows; give at least one text"),
    ],
)
def test_unreadable_input_is_a_clear_error(
    model: Path, tmp_path: Path, name: str, content: str | bytes, message: str
) -> None:
    data = content if isinstance(content, bytes) else content.encode("utf-8")
    (tmp_path / name).write_bytes(data)
    with pytest.raises(DataError, match=message):
        predict_file(model, tmp_path / name, tmp_path / "out.csv")
    assert not (tmp_path / "out.csv").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_missing_input_file(model: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="nope.csv: file not found"):
        predict_file(model, tmp_path / "nope.csv", tmp_path / "out.csv")


def test_a_failed_run_keeps_the_previous_output(model: Path, tmp_path: Path) -> None:
    (tmp_path / "out.csv").write_text("old\n", encoding="utf-8")
    source = _write_csv(tmp_path / "in.csv", ["id", "text"], [[1, "hello"], [2, ""]])
    with pytest.raises(DataError, match="in.csv:3: field 'text' is empty"):
        predict_file(model, source, tmp_path / "out.csv")
    assert (tmp_path / "out.csv").read_text(encoding="utf-8") == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv", "out.csv"]


def test_cli_predicts_a_file(model: Path, tmp_path: Path) -> None:
    texts, _ = toy_data()
    source = _write_csv(tmp_path / "in.csv", ["text"], [[t] for t in texts])
    result = runner.invoke(app, ["predict", str(model), "--input", str(source), "--output", str(tmp_path / "o.csv")])
    assert result.exit_code == 0, result.output
    assert f"{len(texts)} predictions written to {tmp_path / 'o.csv'}" in result.output
    assert len(_read_csv(tmp_path / "o.csv")) == len(texts)
    result = runner.invoke(
        app, ["predict", str(model), "-i", str(source), "-o", str(tmp_path / "o2.csv"), "--text-field", "body"]
    )
    assert result.exit_code == 1
    assert "error: " in result.output and "no text field 'body' (fields found: text)" in result.output
    result = runner.invoke(app, ["predict", str(model), "--input", str(source)])
    assert result.exit_code == 2 and "--input needs --output" in result.output


def _cli_one_line_error(args: list[str], tmp_path: Path) -> str:
    """Run the CLI and return its one error line, after checking the exit code and that nothing was written."""
    before = set(tmp_path.iterdir())
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    # What a terminal shows: the progress bar redraws itself with carriage returns and clears itself on close.
    lines = [shown for line in result.output.split("\n") if (shown := line.rsplit("\r", 1)[-1].strip())]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)  # no traceback
    assert set(tmp_path.iterdir()) == before  # no output file, no temporary file
    return lines[0]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        (
            "f.csv",
            'text\nhello\nbye\n"what is this\nthanks\n',
            'f.csv:4: a quote opens here and never closes; close it or escape it as ""',
        ),
        ("f.csv", "text,id\n", "f.csv has no rows (only a header); give at least one text"),
        ("f.jsonl", "", "f.jsonl has no rows; give at least one text"),
    ],
)
def test_cli_bad_input_is_one_line_and_writes_nothing(
    model: Path, tmp_path: Path, name: str, content: str, message: str
) -> None:
    (tmp_path / name).write_text(content, encoding="utf-8")
    args = ["predict", str(model), "--input", str(tmp_path / name), "-o", str(tmp_path / "out.csv")]
    assert _cli_one_line_error(args, tmp_path) == f"error: {tmp_path}/{message}"


def test_cli_quote_that_never_closes_in_a_later_chunk_writes_nothing(
    model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("intentune.batch.CHUNK_ROWS", 2)  # two chunks are predicted before the quote is found
    (tmp_path / "f.csv").write_text('text\nhello\nbye\nhi\nyo\n"what is this\nthanks\n', encoding="utf-8")
    args = ["predict", str(model), "-i", str(tmp_path / "f.csv"), "-o", str(tmp_path / "out.jsonl")]
    assert _cli_one_line_error(args, tmp_path).endswith(
        'f.csv:6: a quote opens here and never closes; close it or escape it as ""'
    )


def test_cli_input_that_is_a_directory(model: Path, tmp_path: Path) -> None:
    (tmp_path / "examples").mkdir()
    args = ["predict", str(model), "--input", str(tmp_path / "examples"), "-o", str(tmp_path / "out.csv")]
    message = _cli_one_line_error(args, tmp_path)
    assert message == f"error: {tmp_path / 'examples'}/ is a directory, not a data file; pass a .csv or .jsonl file"
    (tmp_path / "in.csv").mkdir()  # a folder with a data file's name
    args = ["predict", str(model), "--input", str(tmp_path / "in.csv"), "-o", str(tmp_path / "out.csv")]
    assert "in.csv/ is a directory, not a data file" in _cli_one_line_error(args, tmp_path)


def test_output_that_is_a_directory(model: Path, tmp_path: Path) -> None:
    source = _write_csv(tmp_path / "in.csv", ["text"], [["hello"]])
    (tmp_path / "out.csv").mkdir()
    with pytest.raises(
        DataError, match=r"out.csv/ is a directory; pass an output file name ending in \.csv or \.jsonl"
    ):
        predict_file(model, source, tmp_path / "out.csv")


def test_closed_multiline_quotes_are_one_row_each(
    model: Path, fitted_encoder: IntentClassifier, tmp_path: Path
) -> None:
    (tmp_path / "in.csv").write_text('id,text\n1,"hello\nthere"\n2,"say ""bye""\n\nnow"\n3,thanks\n', encoding="utf-8")
    assert predict_file(model, tmp_path / "in.csv", tmp_path / "out.csv") == 3
    rows = _read_csv(tmp_path / "out.csv")
    assert [(r["id"], r["text"]) for r in rows] == [("1", "hello\nthere"), ("2", 'say "bye"\n\nnow'), ("3", "thanks")]
    assert [r["intent"] for r in rows] == fitted_encoder.predict(["hello\nthere", 'say "bye"\n\nnow', "thanks"])
