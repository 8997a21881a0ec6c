"""Every format round-trips (read -> write -> read gives the same rows); malformed files name the line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from intentune import DataError, Examples, load_examples, write_examples
from intentune.cli import app
from intentune.formats import detect_format, iter_csv, strip_entities

RASA = """\
version: "3.1"
nlu:
- intent: book_flight
  examples: |
    - fly to [Paris](city) tomorrow
    - I need a flight to [New York]{"entity": "city", "value": "NYC"} on [Friday](date)
    - book a flight, please

- synonym: NYC
  examples: |
    - New York
- intent: greet
  examples: |
    - hi
    - "hello" there
- regex: zipcode
  examples: |
    - [0-9]{5}
"""

ROWS = Examples(
    ['say "hi", please', "where's order #4411?", "naïve café ☕", "line with: colon and - dash"],
    ["greeting", "order_status", "product_info", "other"],
)


def test_rasa_yaml_with_entities_lines_and_non_intent_entries(tmp_path: Path) -> None:
    path = tmp_path / "nlu.yml"
    path.write_text(RASA)
    data = load_examples(path)
    assert data.texts == [
        "fly to Paris tomorrow",
        "I need a flight to New York on Friday",
        "book a flight, please",
        "hi",
        '"hello" there',
    ]
    assert data.labels == ["book_flight"] * 3 + ["greet"] * 2
    assert data.lines == [5, 6, 7, 14, 15]  # the file's own line numbers


def test_rasa_examples_with_metadata(tmp_path: Path) -> None:
    path = tmp_path / "nlu.yml"
    path.write_text(
        "nlu:\n- intent: greet\n  examples:\n  - text: |\n      hi [Anna](name)\n"
        "    metadata:\n      sentiment: neutral\n  - text: hello\n"
    )
    data = load_examples(path)
    assert (data.texts, data.labels, data.lines) == (["hi Anna", "hello"], ["greet", "greet"], [4, 8])


def test_strip_entities() -> None:
    assert strip_entities('[Paris](city) or [Rome]{"entity": "city"} or [x](a:b)') == "Paris or Rome or x"


def test_openai_chat_jsonl_reads_user_and_assistant(tmp_path: Path) -> None:
    rows = [
        {"messages": [{"role": "system", "content": "classify"}, {"role": "user", "content": "hi"},
                      {"role": "assistant", "content": "greeting"}]},
        {"messages": [{"role": "user", "content": "bye"}, {"role": "assistant", "content": "goodbye"}]},
    ]  # fmt: skip
    path = tmp_path / "chat.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    assert detect_format(path) == "openai"
    data = load_examples(path)
    assert (data.texts, data.labels) == (["hi", "bye"], ["greeting", "goodbye"])


@pytest.mark.parametrize(("name", "fmt"), [("d.csv", None), ("d.jsonl", None), ("d.yml", None), ("d.jsonl", "openai")])
def test_round_trip(tmp_path: Path, name: str, fmt: str | None) -> None:
    path = tmp_path / name
    write_examples(ROWS, path, fmt=fmt)
    again = load_examples(path)
    assert (again.texts, again.labels) == (ROWS.texts, ROWS.labels)
    # and a second trip through the same format gives the same file
    write_examples(again, tmp_path / f"again-{name}", fmt=fmt)
    assert (tmp_path / f"again-{name}").read_text() == path.read_text()


MULTI = Examples(
    ["hi, is my order on its way?", "hello - where's my parcel?", "hello", "thanks: bye", "refund it, cancel it"],
    ["greet+ask_status", "greet+ask_status", "greet", "ask_status+goodbye", "refund + cancel_order"],
)


@pytest.mark.parametrize("name", ["d.csv", "d.jsonl", "d.yml"])
def test_multi_intent_labels_round_trip_unchanged(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    write_examples(MULTI, path)
    again = load_examples(path)
    assert (again.texts, again.labels) == (MULTI.texts, MULTI.labels)
    write_examples(again, tmp_path / f"again-{name}")
    assert (tmp_path / f"again-{name}").read_text() == path.read_text()


def test_rasa_reads_a_multi_intent_block(tmp_path: Path) -> None:
    path = tmp_path / "nlu.yml"
    path.write_text(
        'version: "3.1"\nnlu:\n- intent: greet+ask_status\n  examples: |\n    - hi, where is my order?\n'
        "    - hello, any news on my parcel?\n- intent: greet\n  examples: |\n    - hi\n"
    )
    data = load_examples(path)
    assert data.labels == ["greet+ask_status", "greet+ask_status", "greet"]
    assert data.texts[0] == "hi, where is my order?" and data.lines == [5, 6, 9]


def test_rasa_writes_a_multi_intent_name_unquoted(tmp_path: Path) -> None:
    write_examples(Examples(["hi, where is my order?", "hi"], ["greet+ask_status", "greet"]), tmp_path / "nlu.yml")
    assert "- intent: greet+ask_status\n" in (tmp_path / "nlu.yml").read_text()
    assert load_examples(tmp_path / "nlu.yml").labels == ["greet+ask_status", "greet"]


def test_rasa_round_trip_from_annotated_file(tmp_path: Path) -> None:
    (tmp_path / "nlu.yml").write_text(RASA)
    first = load_examples(tmp_path / "nlu.yml")
    write_examples(first, tmp_path / "out.yml")
    second = load_examples(tmp_path / "out.yml")
    assert (second.texts, second.labels) == (first.texts, first.labels)


def test_openai_export_has_system_prompt_with_every_intent(tmp_path: Path) -> None:
    write_examples(ROWS, tmp_path / "chat.jsonl", fmt="openai")
    first = json.loads((tmp_path / "chat.jsonl").read_text().splitlines()[0])
    roles = [m["role"] for m in first["messages"]]
    assert roles == ["system", "user", "assistant"]
    for intent in ROWS.labels:
        assert intent in first["messages"][0]["content"]


def test_clinc_json_layout(tmp_path: Path) -> None:
    layout = {
        "train": [["hi", "greet"], ["bye", "leave"]],
        "oos_train": [["what is love", "oos"]],
        "val": [["yo", "greet"]],
    }
    path = tmp_path / "data_full.json"
    path.write_text(json.dumps(layout))
    train = load_examples(path)
    assert train.texts == ["hi", "bye", "what is love"] and train.labels == ["greet", "leave", "oos"]
    assert load_examples(path, split="val").texts == ["yo"]
    with pytest.raises(DataError, match="expected the CLINC150 layout with a 'test' list"):
        load_examples(path, split="test")


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("bad.yml", "nlu:\n- intent: a\n  examples: |\n    - ok\n  bad: [\n", r"bad.yml:\d+: not valid YAML"),
        ("nonlu.yml", "rules: []\n", "expected a Rasa NLU file with a top-level 'nlu:' list"),
        ("noex.yml", "nlu:\n- intent: a\n", r"noex.yml:2: intent 'a' has no 'examples: \|' block"),
        ("dash.yml", "nlu:\n- intent: a\n  examples: |\n    - ok\n    not a list item\n", r"dash.yml:5: example lines"),
        ("chat.jsonl", '{"messages": [{"role": "user", "content": "hi"}]}\n', r"chat.jsonl:1: no assistant message"),
        ("clinc.json", '{"train": [["hi"]]}', r"item 1 of 'train' must be \[text, intent\]"),
    ],
)
def test_malformed_files_name_the_line(tmp_path: Path, name: str, content: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(DataError, match=message):
        load_examples(path)


def test_convert_command(tmp_path: Path) -> None:
    (tmp_path / "nlu.yml").write_text(RASA)
    runner = CliRunner()
    result = runner.invoke(
        app, ["data", "convert", str(tmp_path / "nlu.yml"), str(tmp_path / "out.jsonl"), "--to", "openai"]
    )
    assert result.exit_code == 0, result.output
    assert "wrote 5 rows, 2 intents" in result.output
    assert load_examples(tmp_path / "out.jsonl").labels == ["book_flight"] * 3 + ["greet"] * 2
    result = runner.invoke(app, ["data", "convert", str(tmp_path / "nlu.yml"), str(tmp_path / "out.json")])
    assert result.exit_code == 1 and "cannot write format 'clinc'" in result.output


def _csv_rows(path: Path, content: str) -> list[tuple[int, dict[str, object]]]:
    path.write_text(content, encoding="utf-8")
    with path.open(encoding="utf-8", newline="") as handle:
        return list(iter_csv(path, handle))


@pytest.mark.parametrize(
    ("content", "line"),
    [
        ('text,intent\nhello,greet\nbye,leave\n"what is this,oos\nthanks,thank\n', 4),  # swallows to the end
        ('text,intent\nhello,greet\n"what is this', 3),  # no newline at the end
        ('text,intent\n"two\nlines","leave\nbye,leave\n', 3),  # opens on the second line of a row
        ('text,intent\n\n\nhi,"greet""\n', 4),  # an escaped quote does not close it; blank lines counted
    ],
)
def test_csv_quote_that_never_closes_names_the_line_it_opens(tmp_path: Path, content: str, line: int) -> None:
    with pytest.raises(
        DataError, match=rf'f.csv:{line}: a quote opens here and never closes; close it or escape it as ""$'
    ):
        _csv_rows(tmp_path / "f.csv", content)


def test_csv_quote_that_overflows_the_field_limit_names_the_line_it_opens(tmp_path: Path) -> None:
    content = 'text\nhi\n"' + "all the rest\n" * 20_000
    with pytest.raises(DataError, match=r"f.csv:3: a quote opens here and never closes; .* runs past \d+ characters"):
        _csv_rows(tmp_path / "f.csv", content)


def test_csv_closed_multiline_quotes_read_with_the_line_each_row_begins(tmp_path: Path) -> None:
    content = 'text,intent\n"two\nlines",greet\n\n"say ""hi""\n\nplease",greet\nbye,"leave"\nshort\n'
    rows = _csv_rows(tmp_path / "f.csv", content)
    assert rows == [
        (2, {"text": "two\nlines", "intent": "greet"}),
        (5, {"text": 'say "hi"\n\nplease', "intent": "greet"}),
        (8, {"text": "bye", "intent": "leave"}),
        (9, {"text": "short", "intent": None}),
    ]


def test_a_directory_is_not_a_data_file(tmp_path: Path) -> None:
    folder = tmp_path / "examples"
    folder.mkdir()
    with pytest.raises(DataError, match=r"examples/ is a directory, not a data file; pass a \.csv, \.jsonl or \.yml"):
        detect_format(folder)
    with pytest.raises(DataError, match=r"examples/ is a directory, not a data file"):
        load_examples(folder)


def test_a_failed_write_leaves_the_existing_file_as_it_was(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The rows are written whole through a temporary sibling: a failure part-way leaves the old file and no
    leftover beside it."""
    from intentune import formats

    path = tmp_path / "nlu.yml"
    write_examples(ROWS, path)
    before = path.read_bytes()

    def broken(texts: object, labels: object) -> str:
        raise OSError("disk full")

    monkeypatch.setattr(formats, "_rasa_text", broken)
    with pytest.raises(OSError, match="disk full"):
        write_examples(Examples(["other"], ["greet"]), path)
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["nlu.yml"]
