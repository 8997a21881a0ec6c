"""Two-intent rows joined from single-intent ones: the joining itself (intents, groups, seeds, connectors,
punctuation, limits), the groups file, and ``intentune data join`` on files, with its one-line errors."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from intentune import ConfigError, Examples, load_examples
from intentune.cli import app
from intentune.data import split_examples
from intentune.errors import DataError
from intentune.multi_intent import JOINED, join_intent_pairs, join_texts, load_groups

runner = CliRunner()

TEXTS = {
    "greet": ["hi there", "hello", "good morning", "hey"],
    "ask_status": ["where is my order", "has it shipped yet", "order status please", "track my parcel"],
    "refund": ["i want my money back", "refund me", "can i get a refund", "return it for cash"],
    "cancel": ["cancel my order", "stop the order", "i don't want it anymore", "call it off"],
}


def rows(extra: dict[str, list[str]] | None = None) -> Examples:
    by_intent = {**TEXTS, **(extra or {})}
    return Examples([t for ts in by_intent.values() for t in ts], [y for y, ts in by_intent.items() for _ in ts])


def test_joined_rows_name_two_different_intents_of_their_two_messages() -> None:
    data = rows({"oos": ["what is the weather"], "greet+refund": ["hi, refund me"]})
    joined = join_intent_pairs(data, 40, seed=3, connectors=[", and "])
    assert len(joined) == 40 and joined.sources == [JOINED] * 40
    intent_of = {t: y for t, y in zip(data.texts, data.labels)}
    for text, label in zip(joined.texts, joined.labels):
        first, second = text.split(", and ")
        pair = (intent_of[first], intent_of[second])
        assert pair[0] != pair[1] and label == "+".join(sorted(pair))  # sorted, so one combination has one label
        assert "oos" not in pair and "greet+refund" not in pair  # out-of-scope rows and combinations take no part
    assert len({t.lower() for t in joined.texts}) == 40  # no text twice
    assert len(Counter(joined.labels)) >= 5  # of the 6 combinations of 4 intents, drawn at random


def test_the_seed_fixes_the_rows_and_another_seed_changes_them() -> None:
    first, again, other = (join_intent_pairs(rows(), 20, seed=s) for s in (1, 1, 2))
    assert first.texts == again.texts and first.labels == again.labels
    assert first.texts != other.texts


def test_groups_keep_intents_of_one_group_apart() -> None:
    groups = {"greet": "small_talk", "ask_status": "orders", "cancel": "orders", "refund": "orders"}
    joined = join_intent_pairs(rows(), 30, groups=groups, seed=0)
    assert all("greet" in label.split("+") for label in joined.labels)  # every pair crosses the two groups
    with pytest.raises(DataError, match=r"intents without a group: refund; add them"):
        join_intent_pairs(rows(), 5, groups={k: v for k, v in groups.items() if k != "refund"})
    with pytest.raises(DataError, match=r"two groups or more, found 1"):
        join_intent_pairs(rows(), 5, groups=dict.fromkeys(TEXTS, "all"))


def test_connectors_are_drawn_and_punctuation_fits_them() -> None:
    joined = join_intent_pairs(rows(), 30, connectors=[", and ", ". Also, "], seed=0)
    assert {", and " in t for t in joined.texts} == {True, False}  # both connectors were drawn
    default = join_intent_pairs(rows(), 30, seed=0).texts  # ", and ", " and ", ". Also, "
    assert all(", and " in t or " and " in t or ". Also, " in t for t in default)
    assert any(". Also, " in t for t in default) and any(" and " in t and ", and " not in t for t in default)
    assert join_texts("I need it by Saturday.", ", and ", "hi") == "I need it by Saturday, and hi"
    assert join_texts("is it still pending? ", ", and ", " bye") == "is it still pending? and bye"
    assert join_texts("Bye!", ". Also, ", "how heavy is it") == "Bye! Also, how heavy is it"
    assert join_texts("hello.", " y ", "adiós") == "hello. y adiós"  # a connector without a mark leaves it


def test_a_count_the_rows_cannot_make_is_refused() -> None:
    two = Examples(["hi", "where is my order"], ["greet", "ask_status"])
    pairs = join_intent_pairs(two, 2, connectors=[", and "]).texts
    assert sorted(pairs) == ["hi, and where is my order", "where is my order, and hi"]
    with pytest.raises(DataError, match=r"make at most 2 joined messages; ask for fewer"):
        join_intent_pairs(two, 3)
    same_text = Examples(["hi", "hi"], ["greet", "ask_status"])  # both orders make one text
    with pytest.raises(DataError, match=r"found only 1 distinct joined messages of 2; ask for fewer"):
        join_intent_pairs(same_text, 2, connectors=[", and "])
    with pytest.raises(DataError, match=r"two intents or more, found 1"):
        join_intent_pairs(Examples(["hi", "hello"], ["greet", "greet"]), 1)
    with pytest.raises(ConfigError, match="count must be at least 1"):
        join_intent_pairs(rows(), 0)
    with pytest.raises(ConfigError, match="multi_label_separator is empty"):
        join_intent_pairs(rows(), 1, separator="")


def test_joined_rows_only_ever_train_when_a_file_is_split() -> None:
    data = rows({name: [f"{name} example {i}" for i in range(10)] for name in TEXTS})
    joined = join_intent_pairs(data, 12, seed=0)
    both = Examples(data.texts + joined.texts, data.labels + joined.labels, sources=data.sources + joined.sources)
    parts = split_examples(both, {"train": 0.8, "validation": 0.1, "test": 0.1}, seed=0)
    assert sum(s == JOINED for s in parts["train"].sources) == 12
    assert all(JOINED not in parts[name].sources for name in ("validation", "test"))


def test_groups_file_reads_json_and_yaml_and_names_what_is_wrong(tmp_path: Path) -> None:
    (tmp_path / "g.json").write_text(json.dumps({"orders": ["cancel", "refund"], "talk": ["greet"]}))
    (tmp_path / "g.yml").write_text("orders: [cancel, refund]\ntalk:\n  - greet\n")
    expected = {"cancel": "orders", "refund": "orders", "greet": "talk"}
    assert load_groups(tmp_path / "g.json") == load_groups(tmp_path / "g.yml") == expected
    cases = {
        "twice.json": ('{"a": ["greet"], "b": ["greet"]}', r"intent 'greet' is in two groups, 'a' and 'b'"),
        "list.json": ('["greet"]', r"expected a mapping of each group to a list of its intents"),
        "broken.json": ('{"a": ["greet"', r"cannot read intent groups \(Expecting"),
        "broken.yml": ("a: [greet\n", r"cannot read intent groups \("),
    }
    for name, (content, message) in cases.items():
        (tmp_path / name).write_text(content)
        with pytest.raises(DataError, match=message):
            load_groups(tmp_path / name)
    with pytest.raises(DataError, match=r"missing.json: cannot read intent groups"):
        load_groups(tmp_path / "missing.json")


def test_join_command_adds_joined_rows_that_read_back_as_training_data(tmp_path: Path) -> None:
    source = tmp_path / "train.csv"
    data = rows()
    source.write_text("text,intent\n" + "".join(f'"{t}",{y}\n' for t, y in zip(data.texts, data.labels)))
    out = tmp_path / "train_joined.jsonl"
    result = runner.invoke(app, ["data", "join", str(source), "-o", str(out), "--count", "10", "--seed", "4"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"wrote {len(data) + 10} rows (10 joined, ")
    back = load_examples(out)
    assert back.texts[: len(data)] == data.texts and back.sources.count("joined") == 10
    assert back.texts[len(data) :] == join_intent_pairs(data, 10, seed=4).texts  # the command is the function
    only = tmp_path / "only.csv"
    result = runner.invoke(app, ["data", "join", str(source), "-o", str(only), "--count", "3", "--only-joined",
                                 "--connector", " and also "])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert all(" and also " in text for text in load_examples(only).texts) and len(load_examples(only)) == 3


def test_join_command_errors_are_one_line_and_leave_the_output_as_it_was(tmp_path: Path) -> None:
    source = tmp_path / "train.csv"
    source.write_text("text,intent\nhi,greet\nwhere is my order,ask_status\n")
    before = source.read_bytes()
    result = runner.invoke(app, ["data", "join", str(source), "-o", str(source), "--count", "5"])
    assert result.exit_code == 1
    assert result.output.strip() == f"error: {source}: these rows make at most 2 joined messages; ask for fewer"
    assert source.read_bytes() == before
    (tmp_path / "g.json").write_text('{"talk": ["greet"]}')
    result = runner.invoke(app, ["data", "join", str(source), "-o", str(tmp_path / "out.csv"), "--count", "1",
                                 "--groups", str(tmp_path / "g.json")])  # fmt: skip
    assert result.exit_code == 1 and result.output.count("\n") == 1
    assert "intents without a group: ask_status" in result.output and not (tmp_path / "out.csv").exists()
    result = runner.invoke(app, ["data", "join", str(source), "-o", str(source), "--count", "2"])
    assert result.exit_code == 0 and len(load_examples(source)) == 4  # the input itself may be the output
