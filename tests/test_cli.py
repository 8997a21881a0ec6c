"""The CLI, in process: train -> evaluate -> predict on a tiny backbone; inspect; split; one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from intentune import Examples, write_examples
from intentune.cli import app

from conftest import EXAMPLES, tiny_sets, toy_data

runner = CliRunner()

TINY_TRAIN = tiny_sets(epochs=25, few_shot="auto")


@pytest.fixture(scope="module")
def toy_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("toy")
    texts, labels = toy_data()
    write_examples(Examples(texts, labels), folder / "train.csv")
    write_examples(Examples(texts[::2], labels[::2]), folder / "test.jsonl")
    return folder


@pytest.fixture(scope="module")
def trained_run(toy_files: Path, tiny_decoder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run")
    train = str(toy_files / "train.csv")
    args = ["train", train, "--validation", train, "--test", str(toy_files / "test.jsonl")]
    result = runner.invoke(app, [*args, "--backbone", str(tiny_decoder), "-o", str(out), "--quiet", *TINY_TRAIN])
    assert result.exit_code == 0, result.output
    assert "Evaluation on the test data" in result.output
    return out


def test_train_writes_a_complete_run_folder(trained_run: Path) -> None:
    for name in ("model/intentune.json", "config.toml", "train_log.jsonl", "metrics.json", "report.md",
                 "errors.jsonl", "confusion_matrix.png"):  # fmt: skip
        assert (trained_run / name).is_file(), name
    metrics = json.loads((trained_run / "metrics.json").read_text())
    assert metrics["evaluated_on"] == "test" and metrics["accuracy"] == 1.0
    assert metrics["data_sizes"] == {"train": 24, "validation": 24, "test": 12}
    assert "train.epochs" not in (trained_run / "config.toml").read_text()
    assert "epochs = 25" in (trained_run / "config.toml").read_text()
    log = [json.loads(line) for line in (trained_run / "train_log.jsonl").read_text().splitlines()]
    assert log and {"val_accuracy", "val_loss", "step"} <= set(log[0])


def test_train_without_validation_splits_it_off(toy_files: Path, tiny_encoder: Path, tmp_path: Path) -> None:
    args = ["train", str(toy_files / "train.csv"), "--backbone", str(tiny_encoder), "-o", str(tmp_path), "--quiet"]
    result = runner.invoke(app, [*args, *TINY_TRAIN, "--set", "train.epochs=1"])
    assert result.exit_code == 0, result.output
    assert "Evaluation on the validation data" in result.output
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["data_sizes"] == {"train": 20, "validation": 4, "test": 0}  # one row per intent split off
    assert len((tmp_path / "splits" / "validation.csv").read_text().splitlines()) == 5


def test_evaluate_and_predict(trained_run: Path, toy_files: Path) -> None:
    result = runner.invoke(app, ["evaluate", str(trained_run), str(toy_files / "test.jsonl"), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["accuracy"] == 1.0
    result = runner.invoke(app, ["predict", str(trained_run / "model"), "where is my order", "--json", "--top-k", "2"])
    assert result.exit_code == 0, result.output
    row = json.loads(result.output)
    assert row["intent"] == "order_status" and len(row["top"]) == 2 and 0.25 < row["confidence"] <= 1.0


def test_predict_reads_a_file_and_stdin(trained_run: Path, tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("hello there\n\nbye now\n")
    result = runner.invoke(app, ["predict", str(trained_run), "--file", str(tmp_path / "in.txt")])
    assert result.exit_code == 0, result.output
    assert [line.split("\t")[0] for line in result.output.splitlines()] == ["greeting", "goodbye"]
    result = runner.invoke(app, ["predict", str(trained_run)], input="track my parcel\n")
    assert result.output.startswith("order_status\t")


def test_inspect_tiny_decoder(tiny_decoder: Path) -> None:
    result = runner.invoke(app, ["inspect", str(tiny_decoder)])
    assert result.exit_code == 0, result.output
    assert "decoder (llama)" in result.output
    assert "layers: ModuleList [2 x LlamaDecoderLayer" in result.output
    assert "'<|endoftext|>'" in result.output  # pad falls back to the end-of-text token
    info = json.loads(runner.invoke(app, ["inspect", str(tiny_decoder), "--json"]).output)
    assert info["hidden_size"] == 32 and info["layers"] == 2 and info["parameters"] == info["trainable_parameters"]


def test_data_split_command(tmp_path: Path) -> None:
    result = runner.invoke(app, ["data", "split", str(EXAMPLES / "shop_assistant.csv"), "-o", str(tmp_path),
                                 "--train", "0.7", "--validation", "0.15", "--test", "0.15"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "train: 212 rows, 4 intents" in result.output  # per intent: 75 - 11 - 11
    assert sorted(p.name for p in tmp_path.iterdir()) == ["test.csv", "train.csv", "validation.csv"]


def _split(tmp_path: Path, *args: str) -> list[str]:
    """Run `data split` of the example file; the lines it prints (train, validation, test sizes)."""
    result = runner.invoke(app, ["data", "split", str(EXAMPLES / "shop_assistant.csv"), "-o", str(tmp_path), *args])
    assert result.exit_code == 0, result.output
    return result.output.splitlines()[:3]


def test_data_split_takes_fractions_and_seed_from_the_config(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("[data]\nvalidation_fraction = 0.15\ntest_fraction = 0.15\nsplit_seed = 7\n")
    sizes = ["train: 212 rows, 4 intents", "validation: 44 rows, 4 intents", "test: 44 rows, 4 intents"]
    assert _split(tmp_path / "a", "--config", str(config)) == sizes  # per intent: 75 - 11 - 11
    flags = ["--train", "0.7", "--validation", "0.15", "--test", "0.15", "--seed", "7"]
    assert _split(tmp_path / "b", *flags) == sizes
    assert (tmp_path / "a" / "train.csv").read_text() == (tmp_path / "b" / "train.csv").read_text()  # same seed
    assert (tmp_path / "a" / "train.csv").read_text() != (EXAMPLES / "train.csv").read_text()  # not seed 13


def test_data_split_set_and_flags_override_the_config(tmp_path: Path) -> None:
    assert _split(tmp_path / "a", "--set", "data.test_fraction=0.2") == [
        "train: 208 rows, 4 intents", "validation: 32 rows, 4 intents", "test: 60 rows, 4 intents",
    ]  # fmt: skip
    config = tmp_path / "c.toml"
    config.write_text("[data]\nvalidation_fraction = 0.15\ntest_fraction = 0.15\n")
    assert _split(tmp_path / "b", "--config", str(config), "--test", "0.1") == [
        "train: 224 rows, 4 intents", "validation: 44 rows, 4 intents", "test: 32 rows, 4 intents",
    ]  # fmt: skip
    # A flag wins over --set, and the defaults still give the bundled example splits.
    assert _split(tmp_path / "c", "--set", "data.split_seed=7", "--seed", "13")[0] == "train: 236 rows, 4 intents"
    assert (tmp_path / "c" / "test.csv").read_text() == (EXAMPLES / "test.csv").read_text()


@pytest.mark.parametrize(
    "command",
    [
        ["data", "validate", str(EXAMPLES / "train.csv"), "--backbone", "none"],
        ["data", "split", str(EXAMPLES / "train.csv"), "-o", "unused"],
        ["data", "convert", str(EXAMPLES / "train.csv"), "unused.jsonl"],
    ],
)
def test_data_commands_take_set_and_reject_a_mistyped_key(command: list[str]) -> None:
    _one_line_error([*command, "--set", "data.text_feild=utterance"], "--set: unknown key data.text_feild; keys of")


def test_data_validate_reads_its_files_and_fields_from_the_config(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("utterance,label\n" + "".join(f"hi {i},greet\nbye {i},leave\n" for i in range(5)))
    (tmp_path / "v.csv").write_text("utterance,label\nhi 1,greet\nbye now,leave\n")
    config = tmp_path / "c.toml"
    config.write_text(
        f"[data]\ntext_field = 'utterance'\nlabel_field = 'label'\nvalidation_file = '{tmp_path / 'v.csv'}'\n"
    )
    args = ["data", "validate", str(tmp_path / "t.csv"), "--backbone", "none", "--json"]
    result = runner.invoke(app, [*args, "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "appear in both train and validation" in result.output


def test_data_convert_takes_its_fields_from_the_config(tmp_path: Path) -> None:
    (tmp_path / "in.csv").write_text("utterance,label\nhi,greet\nbye,leave\n")
    args = ["data", "convert", str(tmp_path / "in.csv"), str(tmp_path / "out.csv")]
    result = runner.invoke(app, [*args, "--set", "data.text_field=utterance", "--set", "data.label_field=label"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out.csv").read_text().splitlines()[0] == "utterance,label"


def test_config_init_and_show(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    assert runner.invoke(app, ["config", "init", str(path)]).exit_code == 0
    assert runner.invoke(app, ["config", "init", str(path)]).exit_code == 1  # no silent overwrite
    result = runner.invoke(app, ["config", "show", str(path), "--set", "train.epochs=2"])
    assert result.exit_code == 0 and "epochs = 2" in result.output


def _one_line_error(args: list[str], expected: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert expected in lines[0]


def test_error_missing_column(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text("utterance,intent\nhi,greeting\n")
    _one_line_error(
        ["train", str(tmp_path / "d.csv")], "d.csv:2: missing field 'text' (fields found: utterance, intent)"
    )


def test_error_empty_file(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text("")
    _one_line_error(["train", str(tmp_path / "d.csv")], "d.csv: empty file")


def test_error_one_intent(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text("text,intent\nhi,greeting\nhello,greeting\nhey,greeting\n")
    _one_line_error(["train", str(tmp_path / "d.csv")], "only one intent ('greeting') in 3 rows")


def test_error_unknown_backbone(toy_files: Path) -> None:
    _one_line_error(
        ["train", str(toy_files / "train.csv"), "--backbone", "gpt-17"],
        "unknown backbone 'gpt-17': not a bundled name (smollm2-135m, minilm-l6, mpnet-base)",
    )
    _one_line_error(["inspect", "no-such-thing"], "unknown backbone 'no-such-thing'")


def test_error_not_a_model_folder(tmp_path: Path) -> None:
    _one_line_error(["predict", str(tmp_path), "hi"], "is not an intentune model folder (no intentune.json)")
    _one_line_error(["evaluate", str(tmp_path / "nope"), str(EXAMPLES / "test.csv")], "does not exist")


def test_error_bad_override() -> None:
    _one_line_error(["train", str(EXAMPLES / "train.csv"), "--set", "train.epoch=3"], "unknown key train.epoch")


def test_verbose_shows_the_traceback(tmp_path: Path) -> None:
    result = runner.invoke(app, ["--verbose", "predict", str(tmp_path), "hi"])
    assert result.exit_code == 1 and result.exception is not None
    assert type(result.exception).__name__ == "ModelError"


def test_usage_error_exits_2() -> None:
    assert runner.invoke(app, ["train", "--no-such-option"]).exit_code == 2
