"""`data validate`: each kind of finding on planted problems, and the published overlaps of the shared datasets."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from intentune import Examples
from intentune.cli import app
from intentune.preprocess import normalize_for_matching
from intentune.validate import validate_examples

from conftest import ROOT

SHARED = ROOT.parent / "shared" / "datasets"


def examples(rows: list[tuple[str, str]], source: str) -> Examples:
    return Examples([t for t, _ in rows], [label for _, label in rows], list(range(2, len(rows) + 2)), source)


def codes(report) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for f in report.findings:
        found.setdefault(f.code, []).extend(f.rows)
    return found


def test_normalize_for_matching() -> None:
    assert normalize_for_matching("  Où est   ma CARTE?! ") == "ou est ma carte"


def test_planted_problems_are_each_found_with_their_rows() -> None:
    train = examples(
        [
            ("hi", "greet"), ("hi", "greet"), ("Hi!", "greet"), ("hello", "greet"), ("hey", "greet"),
            ("bye", "leave"), ("see you", "leave"), ("cya", "leave"), ("later", "leave"), ("ciao", "leave"),
            ("my card", "card"), ("my card", "lost"), ("   ", "card"),
        ],
        "train.csv",
    )  # fmt: skip
    test = examples([("See you", "leave"), ("refund please", "refund")], "test.csv")
    report = validate_examples(train, test=test, min_per_intent=3)
    found = codes(report)
    assert found["duplicate"] == ["train.csv:2", "train.csv:3"]
    assert found["near_duplicate"] == ["train.csv:2", "train.csv:3", "train.csv:4"]
    assert found["conflict"] == ["train.csv:12", "train.csv:13"]
    assert found["empty_text"] == ["train.csv:14"]
    assert found["leakage"] == ["train.csv:8 = test.csv:2"]
    assert found["unknown_intent"] == ["test.csv:3"]
    assert sorted(found["few_examples"]) == ["train.csv:12", "train.csv:13", "train.csv:14"]  # card (2), lost (1)
    assert {f.code for f in report.errors} == {"conflict", "empty_text", "unknown_intent", "few_examples"}
    assert report.findings[0].level == "error"  # errors come first


def test_clean_data_has_no_findings() -> None:
    train = examples([(f"hello {i}", "greet") for i in range(5)] + [(f"bye {i}", "leave") for i in range(5)], "t.csv")
    report = validate_examples(train)
    assert report.findings == [] and report.imbalance_ratio == 1.0


def test_token_lengths_against_max_length(tiny_encoder: Path) -> None:
    from transformers import AutoTokenizer

    train = examples([("hi", "a"), ("hi there", "a"), ("where is my order " * 10, "b"), ("bye", "b")], "t.csv")
    report = validate_examples(
        train, tokenizer=AutoTokenizer.from_pretrained(tiny_encoder), max_length=16, min_per_intent=1
    )
    assert report.token_lengths["over_max_length"] == 1
    assert codes(report)["too_long"][0].startswith("t.csv:4 (")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["banking77/train.csv", "--test", "banking77/test.csv"], ["7 texts appear in both train and test"]),
        (
            ["clinc150/train.csv", "--validation", "clinc150/validation.csv", "--test", "clinc150/test.csv"],
            ["3 texts appear in both train and validation", "2 texts appear in both train and test"],
        ),
    ],
)
def test_shared_datasets_report_the_overlaps_their_readmes_state(args: list[str], expected: list[str]) -> None:
    paths = [str(SHARED / a) if a.endswith(".csv") else a for a in args]
    result = CliRunner().invoke(app, ["data", "validate", *paths, "--backbone", "none"])
    for sentence in expected:
        assert sentence in result.output
    assert "duplicate" in result.output


def test_validate_exit_code_and_json(tmp_path: Path) -> None:
    (tmp_path / "ok.csv").write_text("text,intent\n" + "".join(f"hello {i},greet\nbye {i},leave\n" for i in range(5)))
    (tmp_path / "bad.csv").write_text("text,intent\nhi,greet\nhi,leave\nbye,leave\nyo,greet\n")
    runner = CliRunner()
    ok = runner.invoke(app, ["data", "validate", str(tmp_path / "ok.csv"), "--backbone", "none", "--json"])
    assert ok.exit_code == 0 and '"num_errors": 0' in ok.output
    bad = runner.invoke(app, ["data", "validate", str(tmp_path / "bad.csv"), "--backbone", "none"])
    assert bad.exit_code == 1
    assert "the same text 'hi' is labelled greet, leave" in bad.output and "bad.csv:2, " in bad.output


def test_validate_names_the_line_where_a_quote_never_closes(tmp_path: Path) -> None:
    rows = "".join(f"hello {i},greet\nbye {i},leave\n" for i in range(5))
    (tmp_path / "f.csv").write_text(f'text,intent\nhi,greet\nyo,greet\n"so long,leave\n{rows}', encoding="utf-8")
    result = CliRunner().invoke(app, ["data", "validate", str(tmp_path / "f.csv"), "--backbone", "none"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f'error: {tmp_path / "f.csv"}:4: a quote opens here and never closes; close it or escape it as ""'
    ]


def test_validate_rejects_a_header_only_file_and_a_directory(tmp_path: Path) -> None:
    (tmp_path / "f.csv").write_text("text,intent\n", encoding="utf-8")
    (tmp_path / "examples").mkdir()
    result = CliRunner().invoke(app, ["data", "validate", str(tmp_path / "f.csv"), "--backbone", "none"])
    assert result.exit_code == 1 and result.output.strip().startswith(f"error: {tmp_path / 'f.csv'} has no rows")
    result = CliRunner().invoke(app, ["data", "validate", str(tmp_path / "examples"), "--backbone", "none"])
    assert result.exit_code == 1
    assert (
        result.output.strip()
        == f"error: {tmp_path / 'examples'}/ is a directory, not a data file; pass a .csv, .jsonl or .yml file"
    )


def multi_intent_train() -> Examples:
    """greet and leave alone and together; order only inside combinations; one combination seen once."""
    return examples(
        [(f"hello {i}", "greet") for i in range(5)]  # lines 2-6
        + [(f"bye {i}", "leave") for i in range(5)]  # lines 7-11
        + [("hi and bye", "greet+leave"), ("hello, goodbye", "leave+greet")]  # lines 12-13: one combination
        + [("hi, where is my parcel", "greet+order"), ("bye, where is my parcel", "leave+order")]  # lines 14-15
        + [("hi, my parcel, bye", "order+greet+leave")],  # line 16
        "train.csv",
    )


def test_multi_intent_rows_are_counted_and_flagged_with_their_rows() -> None:
    test = examples([("hey and ciao", "leave+greet"), ("hi, refund please", "greet+refund")], "test.csv")
    report = validate_examples(multi_intent_train(), test=test, min_per_intent=3)
    found = codes(report)
    assert found["multi_intent_rows"] == [f"train.csv:{line}" for line in range(12, 17)]
    assert found["combination_only_intents"] == ["train.csv:14", "train.csv:15", "train.csv:16"]
    assert found["rare_combinations"] == ["train.csv:14", "train.csv:15", "train.csv:16"]
    by_code = {f.code: f for f in report.findings}
    assert by_code["multi_intent_rows"].level == "info"
    assert by_code["multi_intent_rows"].message.startswith("train.csv: 5 of 15 training rows have several intents")
    assert "only in combinations, never alone: order;" in by_code["combination_only_intents"].message
    assert "3 combinations occur once in training: greet+leave+order, greet+order, leave+order;" in (
        by_code["rare_combinations"].message
    )
    # an intent's examples are the rows that contain it; order (3 rows) is not short of min_per_intent=3
    assert report.counts == {"greet": 9, "leave": 9, "order": 3}
    assert "few_examples" not in found
    # test intents are compared one by one: greet and leave are known, refund is not
    assert found["unknown_intent"] == ["test.csv:3"]
    assert "training lacks: refund" in by_code["unknown_intent"].message
    assert [f.level for f in report.findings][-1] == "info"  # notes come after errors and warnings
    assert report.warnings and "multi_intent_rows" not in {f.code for f in report.warnings}


def test_joined_rows_seen_once_are_no_rare_combination_to_check() -> None:
    """A joined row's label comes from its two messages, so a combination that one joined row carries is no slip
    to check; one labelled row of a combination still is."""
    rows = [(f"hello {i}", "greet") for i in range(3)] + [(f"bye {i}", "leave") for i in range(3)]  # lines 2-7
    rows += [(f"where is my parcel {i}", "order") for i in range(3)]  # lines 8-10
    rows += [("hi, where is my parcel", "greet+order"), ("bye 1, and where is my parcel 0", "leave+order")]  # 11-12
    train = examples(rows, "train.csv")
    train.sources[-1] = "joined"
    report = validate_examples(train, min_per_intent=1)
    assert codes(report)["rare_combinations"] == ["train.csv:11"]
    assert "1 combination occurs once in training: greet+order;" in (
        next(f.message for f in report.findings if f.code == "rare_combinations")
    )


def test_combinations_in_any_order_are_one_label_not_a_conflict() -> None:
    train = multi_intent_train()
    train.extend(examples([("hi and bye", "leave+greet")], "train.csv"))
    found = codes(validate_examples(train, min_per_intent=1))
    assert "conflict" not in found
    assert found["duplicate"] == ["train.csv:12", "train.csv:2"]


def test_an_intent_seen_only_in_combinations_counts_its_rows_for_the_small_intent_check() -> None:
    report = validate_examples(multi_intent_train(), min_per_intent=5)
    few = [f for f in report.findings if f.code == "few_examples"]
    assert [f.message for f in few] == ["intent 'order' has 3 training examples (fewer than 5)"]
    assert few[0].rows == ["train.csv:14", "train.csv:15", "train.csv:16"]


def test_an_empty_separator_keeps_every_label_one_intent() -> None:
    report = validate_examples(multi_intent_train(), min_per_intent=1, separator="")
    found = codes(report)
    assert not {"multi_intent_rows", "combination_only_intents", "rare_combinations"} & set(found)
    assert report.counts["greet+leave"] == 1 and report.counts["leave+greet"] == 1


def test_single_label_data_gets_no_multi_intent_findings() -> None:
    train = examples([(f"hello {i}", "greet") for i in range(5)] + [(f"bye {i}", "leave") for i in range(2)], "t.csv")
    report = validate_examples(train)
    assert report.counts == {"greet": 5, "leave": 2}
    assert [f.code for f in report.findings] == ["few_examples"]


def test_validate_command_uses_the_configured_separator(tmp_path: Path) -> None:
    rows = "".join(f"hello {i},greet\nbye {i},leave\n" for i in range(5)) + "hi and bye,greet|leave\n"
    (tmp_path / "t.csv").write_text("text,intent\n" + rows, encoding="utf-8")
    runner = CliRunner()
    args = ["data", "validate", str(tmp_path / "t.csv"), "--backbone", "none", "--min-examples", "1"]
    piped = runner.invoke(app, [*args, "--set", "data.multi_label_separator=|"])
    assert piped.exit_code == 0
    assert "info: " in piped.output and "1 of 11 training rows have several intents" in piped.output
    assert "1 combination occurs once in training: greet|leave" in piped.output
    plain = runner.invoke(app, args)  # with the default "+", "greet|leave" is an intent of its own
    assert plain.exit_code == 0 and "several intents" not in plain.output
