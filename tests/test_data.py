"""Reading, checking and splitting data files; every error names the file, line and field."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from intentune import Config, DataError, Examples, load_examples, split_examples, write_examples
from intentune.cli import app
from intentune.datafiles import split_data

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_reads_csv_with_line_numbers(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", 'text,intent\nhi,greeting\n\n"where, is it",order_status\n')
    data = load_examples(path)
    assert data.texts == ["hi", "where, is it"]
    assert data.labels == ["greeting", "order_status"]
    assert data.lines == [2, 4]


def test_reads_jsonl_with_custom_fields(tmp_path: Path) -> None:
    rows = [{"utterance": "hi", "label": "greeting"}, {"utterance": "bye", "label": "goodbye"}]
    path = write(tmp_path / "d.jsonl", "\n".join(json.dumps(r) for r in rows) + "\n")
    data = load_examples(path, text_field="utterance", label_field="label")
    assert data.texts == ["hi", "bye"] and data.labels == ["greeting", "goodbye"]


def test_missing_column_names_line_fields_and_setting(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", "text,label\nhi,greeting\n")
    with pytest.raises(
        DataError, match=r"d.csv:2: missing field 'intent' \(fields found: text, label\); set data.label_field"
    ):
        load_examples(path)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.csv", "", "empty file; expected a header row"),
        ("header.csv", "text,intent\n\n", r"header.csv has no rows \(only a header\); add one row per example"),
        ("empty.jsonl", "", "empty file; expected one JSON object per line"),
        ("blank.csv", "text,intent\nhi,greeting\n   ,greeting\n", r"blank.csv:3: empty text in field 'text'"),
        ("nolabel.csv", "text,intent\nhi,\n", r"nolabel.csv:2: empty intent in field 'intent'"),
        ("bad.jsonl", '{"text": "hi", "intent": "a"}\n{oops\n', r"bad.jsonl:2: not valid JSON"),
        ("list.jsonl", '["hi", "a"]\n', r"list.jsonl:1: expected a JSON object, found list"),
        ("extra.csv", "text,intent\nhi, there,greeting\n", r"extra.csv:2: more values than header columns"),
        ("data.txt", "hi", r"unknown file type '.txt'"),
        (
            "quote.csv",
            'text,intent\nhi,greet\nbye,leave\n"so long,leave\nyo,greet\n',
            r"quote.csv:4: a quote opens here",
        ),
    ],
)
def test_malformed_files_give_clear_errors(tmp_path: Path, name: str, content: str, message: str) -> None:
    with pytest.raises(DataError, match=message):
        load_examples(write(tmp_path / name, content))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="nope.csv: file not found"):
        load_examples(tmp_path / "nope.csv")


def test_a_directory_is_not_a_data_file(tmp_path: Path) -> None:
    (tmp_path / "examples").mkdir()
    with pytest.raises(DataError, match=r"examples/ is a directory, not a data file; pass a \.csv, \.jsonl or \.yml"):
        load_examples(tmp_path / "examples")


@pytest.mark.parametrize(
    "args",
    [
        ["train", "{dir}", "-o", "{out}"],
        ["train", "{ok}", "--validation", "{dir}", "-o", "{out}"],
        ["data", "validate", "{dir}", "--backbone", "none"],
        ["data", "split", "{dir}", "-o", "{out}"],
        ["data", "convert", "{dir}", "{out}/x.jsonl"],
    ],
)
def test_cli_says_a_directory_is_not_a_data_file(tmp_path: Path, args: list[str]) -> None:
    (tmp_path / "examples").mkdir()
    ok = write(tmp_path / "ok.csv", "text,intent\n" + "".join(f"hi {i},greet\nbye {i},leave\n" for i in range(5)))
    paths = {"dir": tmp_path / "examples", "ok": ok, "out": tmp_path / "out"}
    result = CliRunner().invoke(app, [a.format(**paths) for a in args])
    assert result.exit_code == 1, result.output
    assert result.output.strip().splitlines() == [
        f"error: {tmp_path / 'examples'}/ is a directory, not a data file; pass a .csv, .jsonl or .yml file"
    ]
    assert not (tmp_path / "out").exists()


def test_cli_says_a_test_file_that_is_a_directory_is_not_a_data_file(tmp_path: Path) -> None:
    (tmp_path / "examples").mkdir()
    ok = write(tmp_path / "ok.csv", "text,intent\n" + "".join(f"hi {i},greet\nbye {i},leave\n" for i in range(5)))
    args = ["train", str(ok), "--test", str(tmp_path / "examples"), "-o", str(tmp_path / "run")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1, result.output
    assert result.output.strip().splitlines() == [
        f"error: {tmp_path / 'examples'}/ is a directory, not a data file; pass a .csv, .jsonl or .yml file"
    ]


def test_write_then_read_round_trips(tmp_path: Path) -> None:
    data = Examples(['say "hi", please', "bye"], ["greeting", "goodbye"])
    for name in ("out.csv", "out.jsonl"):
        write_examples(data, tmp_path / name)
        again = load_examples(tmp_path / name)
        assert (again.texts, again.labels) == (data.texts, data.labels)


def test_split_is_stratified_disjoint_and_complete() -> None:
    data = load_examples(EXAMPLES / "shop_assistant.csv")
    parts = split_examples(data, {"train": 0.8, "validation": 0.1, "test": 0.1}, seed=1)
    assert sum(len(p) for p in parts.values()) == len(data)
    lines = [set(p.lines) for p in parts.values()]
    assert not (lines[0] & lines[1]) and not (lines[0] & lines[2]) and not (lines[1] & lines[2])
    total = Counter(data.labels)
    for name, share in (("train", 0.8), ("validation", 0.1), ("test", 0.1)):
        counts = Counter(parts[name].labels)
        assert set(counts) == set(total)
        for intent, n in total.items():
            assert abs(counts[intent] - n * share) <= 1, (name, intent)


def test_split_is_reproducible_and_seeded() -> None:
    data = load_examples(EXAMPLES / "shop_assistant.csv")
    fractions = {"train": 0.7, "validation": 0.15, "test": 0.15}
    first = split_examples(data, fractions, seed=5)
    again = split_examples(data, fractions, seed=5)
    other = split_examples(data, fractions, seed=6)
    assert first["test"].texts == again["test"].texts
    assert first["test"].texts != other["test"].texts


def test_split_refuses_intents_too_small_to_stratify() -> None:
    data = Examples(["a", "b", "c", "d", "e"], ["x", "x", "x", "y", "y"], [2, 3, 4, 5, 6], "d.csv")
    with pytest.raises(DataError, match=r"fewer than 3 examples, too few to split stratified: 'y' has 2 \(line 5, 6\)"):
        split_examples(data, {"train": 0.8, "validation": 0.1, "test": 0.1})


def test_split_keeps_rare_combinations_without_losing_or_repeating_rows() -> None:
    labels = (
        ["greet"] * 20 + ["leave"] * 20 + ["order"] * 10 + ["greet+order"] * 10  # common labels
        + ["leave+order", "order+greet+leave", "refund+order", "refund+order"]  # rare: once, once, twice
        + ["order+leave"]  # the same combination as leave+order, written in another order
    )  # fmt: skip
    data = Examples([f"message {i}" for i in range(len(labels))], labels, list(range(2, len(labels) + 2)), "m.csv")
    shares = {"train": 0.8, "validation": 0.1, "test": 0.1}
    parts = split_examples(data, shares, seed=3)
    lines = sorted(line for part in parts.values() for line in part.lines)
    assert lines == data.lines  # every row exactly once
    for name, share in shares.items():
        counts = Counter(parts[name].labels)
        for label in ("greet", "leave", "order", "greet+order"):
            assert abs(counts[label] - labels.count(label) * share) <= 1, (name, label)
    with pytest.raises(DataError, match=r"too few to split stratified: 'leave\+order' has 1"):
        split_examples(data, shares, seed=3, separator="")  # without a separator, combinations are plain labels


def test_split_data_groups_combinations_by_the_configured_separator(tmp_path: Path) -> None:
    rows = [f"message {i},{label}" for i, label in enumerate(["greet"] * 20 + ["order"] * 20 + ["greet|order"])]
    (tmp_path / "m.csv").write_text("text,intent\n" + "\n".join(rows) + "\n")
    shares = {"train": 0.8, "validation": 0.1, "test": 0.1}
    with pytest.raises(DataError, match=r"'greet\|order' has 1"):
        split_data(tmp_path / "m.csv", tmp_path / "plain", fractions=shares)  # "+" does not split "greet|order"
    config = Config()
    config.data.multi_label_separator = "|"
    parts = split_data(tmp_path / "m.csv", tmp_path / "split", fractions=shares, config=config)
    assert sum(len(part) for part in parts.values()) == 41


def test_split_refuses_a_single_intent() -> None:
    data = Examples(["a", "b", "c"], ["x", "x", "x"], source="d.csv")
    with pytest.raises(DataError, match=r"d.csv: only one intent \('x'\) in 3 rows"):
        split_examples(data, {"train": 0.8, "validation": 0.2})


def test_split_data_writes_files_and_checks_shares(tmp_path: Path) -> None:
    parts = split_data(
        EXAMPLES / "shop_assistant.csv", tmp_path, fractions={"train": 0.8, "validation": 0.1, "test": 0.1}
    )
    for name, part in parts.items():
        assert load_examples(tmp_path / f"{name}.csv").texts == part.texts
    from intentune import ConfigError

    with pytest.raises(ConfigError, match="train share must be between 0.6 and 0.8, found 0.9"):
        split_data(
            EXAMPLES / "shop_assistant.csv", tmp_path, fractions={"train": 0.9, "validation": 0.05, "test": 0.05}
        )


def test_bundled_example_splits_match_the_split_command(tmp_path: Path) -> None:
    """examples/{train,validation,test}.csv are exactly `intentune data split examples/shop_assistant.csv`."""
    split_data(EXAMPLES / "shop_assistant.csv", tmp_path, fractions={"train": 0.8, "validation": 0.1, "test": 0.1})
    for name in ("train", "validation", "test"):
        assert (tmp_path / f"{name}.csv").read_text() == (EXAMPLES / f"{name}.csv").read_text()
    counts = load_examples(EXAMPLES / "shop_assistant.csv").counts()
    assert counts == {"goodbye": 75, "greeting": 75, "order_status": 75, "product_info": 75}
