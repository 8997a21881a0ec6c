"""A run folder changes only when a run can start: every input is read and checked, and the backbone loaded, before
anything is written; a failed train leaves an existing run byte for byte as it was. Test intents the model does not
know are reported, not fatal; a resume is recorded in the manifest, not written over it.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from intentune import Examples, write_examples
from intentune.cli import app
from intentune.errors import ConfigError

from conftest import tiny_config, tiny_sets, toy_data

runner = CliRunner()

TINY = tiny_sets(epochs=3)


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This module's own data files, besides the shared toy set (``toy_files``)."""
    folder = tmp_path_factory.mktemp("data")
    texts, labels = toy_data()
    extra = Examples(["pay my bill", "reset my password", "hello there"], ["billing", "account", "greeting"])
    write_examples(extra, folder / "test_unknown.csv")
    return folder


@pytest.fixture(scope="module")
def finished_run(toy_files: Path, tiny_encoder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run") / "shop"
    args = ["train", str(toy_files / "train.csv"), "--validation", str(toy_files / "validation.csv")]
    result = runner.invoke(app, [*args, "--backbone", str(tiny_encoder), "-o", str(out), "--quiet", *TINY])
    assert result.exit_code == 0, result.output
    return out


@pytest.mark.parametrize(
    "change, message",
    [
        (["--backbone", "nosuch-model"], "unknown backbone"),
        (["--set", "model.multi_label=maybe"], "model.multi_label must be auto, true or false"),
        (["--test", "{files}"], "is a directory"),
        (["--test", "{files}/missing.csv"], "missing.csv"),
        (["--set", "data.remove_special_chars=true", "--test", "{files}/punct.csv"], "empty after preprocessing"),
    ],
)
def test_a_failed_train_leaves_the_run_folder_byte_identical(
    finished_run: Path, files: Path, toy_files: Path, tiny_encoder: Path, change: list[str], message: str
) -> None:
    write_examples(Examples(["?!?", "hello"], ["greeting", "greeting"]), files / "punct.csv")
    before = _snapshot(finished_run)
    change = [c.format(files=files) for c in change]
    args = ["train", str(toy_files / "train.csv"), "--validation", str(toy_files / "validation.csv")]
    if "--backbone" not in change:
        args += ["--backbone", str(tiny_encoder)]
    result = runner.invoke(app, [*args, *change, "-o", str(finished_run), "--quiet", *TINY])
    assert result.exit_code == 1, result.output
    assert message in result.output
    assert _snapshot(finished_run) == before


def test_test_intents_the_model_lacks_are_reported_not_fatal(
    files: Path, toy_files: Path, tiny_encoder: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    args = ["train", str(toy_files / "train.csv"), "--validation", str(toy_files / "validation.csv")]
    args += ["--test", str(files / "test_unknown.csv"), "--backbone", str(tiny_encoder)]
    with caplog.at_level("WARNING"):
        result = runner.invoke(app, [*args, "-o", str(tmp_path / "run"), "--quiet", *TINY])
    assert result.exit_code == 0, result.output
    assert any("not in the training data (account, billing" in r.getMessage() for r in caplog.records)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["unknown_intents"] == {"account": 1, "billing": 1}
    assert metrics["accuracy"] <= 1 / 3  # the two rows of unknown intents count as errors
    card = (tmp_path / "run" / "model" / "README.md").read_text()
    assert "test_unknown.csv" in card


def test_the_run_folder_has_a_model_card(finished_run: Path) -> None:
    import yaml

    card = (finished_run / "model" / "README.md").read_text()
    header = yaml.safe_load(card.split("---")[1])
    assert header["library_name"] == "intentune"
    manifest = json.loads((finished_run / "manifest.json").read_text())
    assert manifest["data_files"]["train"]["sha256"] in card
    assert "validation.csv" in card and "IntentClassifier.load" in card


def test_resume_is_recorded_in_the_manifest(toy_files: Path, tiny_encoder: Path, tmp_path: Path) -> None:
    from intentune.pipeline import train_run
    from intentune.train import Callback

    class Crash(Callback):
        def on_step_end(self, state, control) -> None:
            if state.step == 5:
                raise KeyboardInterrupt

    out = tmp_path / "run"
    config = tiny_config(tiny_encoder, epochs=4, checkpoint_every_steps=2, few_shot="off")
    config.data.train_file, config.data.validation_file = (
        str(toy_files / "train.csv"),
        str(toy_files / "validation.csv"),
    )
    with pytest.raises(KeyboardInterrupt):
        train_run(config, out, callbacks=[Crash()])
    started = json.loads((out / "manifest.json").read_text())
    assert "resumes" not in started
    # A resume with other data is refused by the checkpoint and leaves the run folder's files as they were.
    files = {name: (out / name).read_bytes() for name in ("manifest.json", "config.toml", "splits/train.csv")}
    other = copy.deepcopy(config)
    other.data.train_file = str(toy_files / "validation.csv")
    with pytest.raises(ConfigError, match="other data or training settings"):
        train_run(other, out, resume=True)
    assert {name: (out / name).read_bytes() for name in files} == files
    train_run(config, out, resume=True)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["created"] == started["created"] and manifest["splits"] == started["splits"]
    assert [r["from_step"] for r in manifest["resumes"]] == [4]
