"""Adding intents to a trained model (``intentune train NEW --init-from OLD``): the old head rows are kept exactly,
new rows start from their examples, replay rows come from the old run's training split, a config that contradicts
the old model is one error, the CLI writes the comparison with the old model, and --resume picks up the old model
from the manifest.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from intentune import Examples, IntentClassifier, load_examples, write_examples
from intentune.cli import app
from intentune.errors import ConfigError
from intentune.extend import CONTINUED_RATE_SHARE, load_previous, resume_previous
from intentune.manifest import row_id
from intentune.pipeline import train_run
from intentune.preprocess import normalize_for_matching
from intentune.replay import TRAIN_SPLIT, VALIDATION_SPLIT, find_run_rows, sample_replay
from intentune.train import Callback
from intentune.train.head_init import expand_head
from intentune.train.losses import Distillation, DistillationLoss
from intentune.train.optim import DEFAULT_LEARNING_RATE

from conftest import TINY_TRAIN, TOY, tiny_sets

runner = CliRunner()

OLD = ["goodbye", "greeting", "order_status"]
NEW = "product_info"
TINY = tiny_sets(epochs=20)


def _rows(intents: list[str], part: slice) -> Examples:
    texts = [t for intent in intents for t in TOY[intent][part]]
    return Examples(texts, [intent for intent in intents for _ in TOY[intent][part]])


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The old data (rows 0-4 of three intents), the new data (rows 0-4 of a fourth intent, and row 0 of two old
    ones: order_status gets no new rows), and a test file of the rows no one trains on (row 5 of every intent)."""
    folder = tmp_path_factory.mktemp("extend-data")
    write_examples(_rows(OLD, slice(0, 5)), folder / "old.csv")
    new = _rows([NEW], slice(0, 5))
    new.extend(_rows(["goodbye", "greeting"], slice(0, 1)))
    write_examples(new, folder / "new.csv")
    write_examples(_rows([*OLD, NEW], slice(5, 6)), folder / "test.csv")
    return folder


@pytest.fixture(scope="module")
def old_run(files: Path, tiny_encoder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("old") / "v1"
    args = ["train", str(files / "old.csv"), "--validation", str(files / "old.csv"), "--test", str(files / "test.csv")]
    result = runner.invoke(app, [*args, "--backbone", str(tiny_encoder), "-o", str(out), "--quiet", *TINY])
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def new_run(files: Path, old_run: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """``intentune train new.csv --init-from v1 --test test.csv`` (validation split off), and its output."""
    out = tmp_path_factory.mktemp("new") / "v2"
    args = ["train", str(files / "new.csv"), "--init-from", str(old_run), "--test", str(files / "test.csv")]
    result = runner.invoke(app, [*args, "-o", str(out), "--quiet", *TINY, "--set", "data.validation_fraction=0.2"])
    assert result.exit_code == 0, result.output
    return out, result.output


def test_expand_head_copies_old_rows_and_starts_new_ones_from_their_examples() -> None:
    torch.manual_seed(0)
    old = nn.Linear(8, 2)
    new = nn.Linear(8, 3)
    embeddings = torch.randn(6, 8)
    label_ids = torch.tensor([0, 0, 1, 1, 2, 2])  # classes: a, b (old), c (new)
    added = expand_head(new, old, ["b", "a"], ["a", "b", "c"], embeddings, label_ids)
    assert added == ["c"]
    assert torch.equal(new.weight[0], old.weight[1]) and torch.equal(new.bias[0], old.bias[1])
    assert torch.equal(new.weight[1], old.weight[0]) and torch.equal(new.bias[1], old.bias[0])
    direction = nn.functional.normalize(embeddings[4:].mean(0) - embeddings.mean(0), dim=0)
    expected = direction * old.weight.norm(dim=1).mean()
    assert torch.allclose(new.weight[2], expected, atol=1e-6)
    assert new.bias[2].item() == pytest.approx(old.bias.mean().item())


def test_sample_replay_draws_per_intent_seeded_and_skips_new_texts() -> None:
    pool = Examples([f"text {i}" for i in range(30)], ["a"] * 10 + ["b"] * 10 + ["other"] * 10)
    sample = sample_replay(pool, ["a", "b"], 4, seed=1, skip_texts=["TEXT 0!", "text 10"])
    assert sample.counts() == {"a": 4, "b": 4}
    assert not {"text 0", "text 10"} & set(sample.texts)
    assert sample.texts == sample_replay(pool, ["a", "b"], 4, seed=1, skip_texts=["text 0", "text 10"]).texts
    assert sample.texts != sample_replay(pool, ["a", "b"], 4, seed=2, skip_texts=["text 0", "text 10"]).texts
    assert len(sample_replay(pool, ["a"], 50, seed=1)) == 10  # all of an intent with fewer rows


def test_the_old_run_keeps_its_training_split(old_run: Path, files: Path) -> None:
    saved, old = load_examples(old_run / TRAIN_SPLIT), load_examples(files / "old.csv")
    assert sorted(zip(saved.texts, saved.labels)) == sorted(zip(old.texts, old.labels))


def test_cli_adds_an_intent_keeps_the_old_ones_and_writes_the_comparison(
    new_run: tuple[Path, str], old_run: Path, files: Path
) -> None:
    from intentune.serve.predlog import model_id

    out, output = new_run
    clf = IntentClassifier.load(out)
    assert clf.classes_ == sorted([*OLD, NEW])
    # The toy data is separable: the old intents' texts it trained on stay right, and the new intent is learnt.
    trained = load_examples(out / TRAIN_SPLIT)
    assert set(trained.labels) == {*OLD, NEW}
    answers = [clf.classes_[i] for i in clf.predict_proba(trained.texts).argmax(axis=1)]
    assert answers == trained.labels
    # Replay: every row of the old split whose text is not in the new data (15 less the 2 texts the new data has);
    # order_status, which has no new rows, is kept through its 5 replay rows.
    manifest = json.loads((out / "manifest.json").read_text())
    record = manifest["init_from"]
    assert record["path"] == str(old_run) and record["model_id"] == model_id(old_run)  # the old folder is unchanged
    assert record["replay"] == {
        "rows": 13,
        "intents": 3,
        "source": str(old_run / TRAIN_SPLIT),
        "replay_per_intent": 50,
        "resampled_each_epoch": True,  # the default (every old row here fits in one epoch)
        "validation_rows": 0,
        "validation_source": None,
    }  # the old run had no split-off rows
    splits = manifest["splits"]
    assert splits["train"]["rows"] + splits["validation"]["rows"] == 7 + 13
    old_ids = set(json.loads((old_run / "manifest.json").read_text())["splits"]["train"]["row_ids"])
    new = load_examples(files / "new.csv")
    new_ids = {row_id(t, y) for t, y in zip(new.texts, new.labels)}
    replayed = [i for s in ("train", "validation") for i in splits[s]["row_ids"] if i not in new_ids]
    assert len(replayed) == 13 and set(replayed) <= old_ids
    assert splits["validation"]["intents"]["order_status"] >= 1  # split-off validation rows hold old intents too
    summary = json.loads((out / "metrics.json").read_text())["training"]["init_from"]
    assert summary["intents_added"] == [NEW] and summary["model_id"] == record["model_id"]
    # The comparison: both models on the test rows of the old intents (3 of 4 rows).
    comparison = json.loads((out / "compare_with_previous.json").read_text())
    assert comparison["rows_compared"] == 3 and comparison["rows_left_out"] == {NEW: 1}
    assert set(OLD) <= set(comparison["per_intent_f1"]) and NEW in comparison["new_intents_f1"]
    assert comparison["previous_model_id"] == record["model_id"]
    assert "# Compared with the previous model" in (out / "compare_with_previous.md").read_text()
    assert "compare_with_previous.md" in output


def test_old_head_rows_are_copied_before_training_and_resume_finds_the_old_model(
    files: Path, old_run: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    previous = load_previous(old_run)
    # Two replay rows of each old intent per epoch, taking turns (the replay is every old row the new data lacks):
    # 7 new rows and 6 replayed ones an epoch, so 4 steps of 4 rows, and the cut below falls inside an epoch.
    settings = {**TINY_TRAIN, "device": "cpu", "epochs": 4, "checkpoint_every_steps": 2, "replay_per_intent": 2,
                "replay_resample": "true", "batch_size": 4}  # fmt: skip
    options = {"data.train_file": files / "new.csv", "data.validation_file": files / "new.csv"}
    config = previous.config([f"train.{k}={v}" for k, v in settings.items()], options)
    new = load_examples(files / "new.csv")

    class HeadAtStart(Callback):
        def __init__(self, classifier: IntentClassifier) -> None:
            self.classifier, self.rows = classifier, None

        def on_train_begin(self, state, control) -> None:
            head = self.classifier.net_.head
            self.rows = (head.weight.detach().clone(), head.bias.detach().clone())

    # The estimator: the caller mixes the replay rows in, fit starts from the old model.
    with caplog.at_level(logging.INFO, logger="intentune.extend"):
        data = previous.with_replay(new, config, new.texts)
        whole = IntentClassifier(config)
        spy = HeadAtStart(whole)
        whole.fit(data.texts, data.labels, validation=(new.texts, new.labels), callbacks=[spy],
                  checkpoint_dir=tmp_path / "whole", init_from=previous)  # fmt: skip
    assert spy.rows is not None
    assert len(data) == 7 + 13 and whole.train_summary_["steps"] == 4 * 4
    old_head = previous.classifier.net_.head
    for intent in OLD:
        new_row, old_row = whole.classes_.index(intent), previous.classes.index(intent)
        assert torch.equal(spy.rows[0][new_row], old_head.weight[old_row].detach())
        assert torch.equal(spy.rows[1][new_row], old_head.bias[old_row].detach())
    messages = [r.getMessage() for r in caplog.records]
    assert any("without new rows are kept and train on replay rows only: order_status" in m for m in messages)

    class Interrupt(Callback):
        def on_step_end(self, state, control) -> None:
            if state.step == 7:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_run(config, tmp_path / "cut", callbacks=[Interrupt()], init_from=old_run)
    resumed = train_run(config, tmp_path / "cut", resume=True)  # --resume alone: the manifest names the old model
    assert resumed is not None and resumed.classifier.train_summary_["resumed_from_step"] == 6
    for (name, a), b in zip(whole.net_.state_dict().items(), resumed.classifier.net_.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-5), name
    manifest = json.loads((tmp_path / "cut" / "manifest.json").read_text())
    assert manifest["init_from"]["model_id"] == previous.model_id and len(manifest["resumes"]) == 1
    with pytest.raises(ConfigError, match="did not start with --init-from"):
        resume_previous(old_run, previous)


@pytest.mark.parametrize(
    "change, key",
    [
        (["--backbone", "{decoder}"], "model.backbone"),
        (["--set", "model.pooling=cls"], "model.pooling"),
        (["--set", "model.max_length=16"], "model.max_length"),
        (["--set", "data.lowercase=true"], "data.lowercase"),
    ],
)
def test_a_config_that_contradicts_the_old_model_is_one_clear_error(
    files: Path, old_run: Path, tiny_decoder: Path, tmp_path: Path, change: list[str], key: str
) -> None:
    change = [c.format(decoder=tiny_decoder) for c in change]
    args = ["train", str(files / "new.csv"), "--init-from", str(old_run), "-o", str(tmp_path / "run"), "--quiet"]
    result = runner.invoke(app, [*args, *TINY, *change])
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and key in lines[0] and "contradicts the model --init-from starts from" in lines[0]
    assert not (tmp_path / "run").exists()


def test_the_config_comes_from_the_old_model_without_its_data_files(old_run: Path, tiny_encoder: Path) -> None:
    previous = load_previous(old_run)
    config = previous.config(["train.epochs=3"], {"data.train_file": "new.csv"})
    assert config.model.backbone == str(tiny_encoder) and config.train.epochs == 3
    assert config.data.train_file == "new.csv" and config.data.test_file is None
    assert config.data.validation_file is None
    # Continued training: few-shot mode off, an unset backbone rate at a share of the fresh-run default, an
    # explicit one as given; early stopping on accuracy unless the config names a metric.
    unset = previous.config(["train.learning_rate=none", "train.few_shot=on", "train.early_stopping_metric=auto"])
    settings = previous.train_settings(unset, OLD)
    assert settings.few_shot == "off" and settings.early_stopping_metric == "val_accuracy"
    assert settings.learning_rate == DEFAULT_LEARNING_RATE["encoder"] * CONTINUED_RATE_SHARE
    assert previous.train_settings(config, OLD).learning_rate == TINY_TRAIN["learning_rate"]
    by_loss = previous.config(["train.early_stopping_metric=val_loss"])
    assert previous.train_settings(by_loss, OLD).early_stopping_metric == "val_loss"


def test_split_off_validation_takes_old_intents_from_the_old_runs_validation_split(old_run: Path, files: Path) -> None:
    from intentune.pipeline import read_run_data

    previous = load_previous(old_run)
    # Every run keeps the rows it validated on, here the file it was given.
    assert previous.held_out_source == str(old_run / VALIDATION_SPLIT) and len(previous.held_out) == 15
    unseen = {"greeting": ["hello again", "MORNING HI!"], "goodbye": ["see you tomorrow"], "order_status": []}
    previous.held_out = Examples([t for ts in unseen.values() for t in ts], [i for i, ts in unseen.items() for _ in ts])
    config = previous.config(
        ["data.validation_fraction=0.3"],
        {"data.train_file": str(files / "new.csv"), "data.test_file": str(files / "test.csv")},
    )
    train, validation, _, split_off = read_run_data(config, init_from=previous)
    assert split_off
    replayed = set(zip(previous.replay_sample.texts, previous.replay_sample.labels))
    rows = set(zip(validation.texts, validation.labels))
    # No replayed row of greeting or goodbye validates (the old model trained on them all): they are back in
    # training, and those intents validate on the old run's unseen rows, less the one whose text is a test text
    # ("morning hi"). order_status has no unseen row: its replayed rows stay, so forgetting it still shows.
    covered = {"greeting", "goodbye"}
    assert not {row for row in rows & replayed if row[1] in covered}
    assert {row for row in replayed if row[1] in covered} <= set(zip(train.texts, train.labels))
    assert {row for row in replayed if row[1] == "order_status"} & rows
    assert {("hello again", "greeting"), ("see you tomorrow", "goodbye")} <= rows
    assert ("MORNING HI!", "greeting") not in rows
    new = load_examples(files / "new.csv")
    assert len(train) + len(validation) == len(new) + len(replayed) + 2  # nothing lost, two rows added
    assert {NEW} <= set(validation.labels)  # the new rows still give their share
    assert previous.replayed.validation_rows == 2
    assert previous.record()["replay"]["validation_source"] == str(old_run / "splits" / "validation.csv")


def test_a_validation_file_gets_old_run_rows_for_the_old_intents_it_lacks(
    old_run: Path, files: Path, tmp_path: Path
) -> None:
    from intentune.pipeline import read_run_data

    previous = load_previous(old_run)
    unseen = {"greeting": ["hello again"], "goodbye": ["see you tomorrow"], "order_status": ["where is my parcel"]}
    previous.held_out = Examples([t for ts in unseen.values() for t in ts], [i for i, ts in unseen.items() for _ in ts])
    given = Examples(["any news on my tracking", "my stuff?", "goodbye now"], ["order_status", NEW, "goodbye"])
    write_examples(given, tmp_path / "val.csv")
    config = previous.config(
        [], {"data.train_file": str(files / "new.csv"), "data.validation_file": str(tmp_path / "val.csv")}
    )
    train, validation, _, split_off = read_run_data(config, init_from=previous)
    assert not split_off
    rows = list(zip(validation.texts, validation.labels))
    # The file's rows stay as given; only greeting, an old intent the file has no row of, gets the old run's row.
    assert rows == [*zip(given.texts, given.labels), ("hello again", "greeting")]
    assert previous.replayed.validation_rows == 1
    assert len(train) == len(load_examples(files / "new.csv")) + previous.replayed.rows  # training untouched


def test_replay_falls_back_to_the_manifest_then_to_a_warning(
    old_run: Path, files: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A run written before splits/train.csv existed: the manifest's training file, less its validation rows.
    copy = tmp_path / "v1"
    shutil.copytree(old_run, copy)
    (copy / TRAIN_SPLIT).unlink()
    rows, source = find_run_rows(copy, "train", "text", "intent")
    assert source == str(files / "old.csv") and rows is not None and len(rows) == 15
    # Its validation rows likewise: the validation file the manifest names, while its hash is unchanged.
    (copy / VALIDATION_SPLIT).unlink()
    rows, source = find_run_rows(copy, "validation", "text", "intent")
    assert source == str(files / "old.csv") and rows is not None and len(rows) == 15
    # A model folder alone: no training rows, so one warning line and no replay; --replay FILE gives them.
    model_only = tmp_path / "models" / "shop"
    shutil.copytree(old_run / "model", model_only)
    previous = load_previous(model_only)
    assert previous.pool is None
    new = load_examples(files / "new.csv")
    with caplog.at_level(logging.WARNING, logger="intentune.extend"):
        same = previous.with_replay(new, previous.config())
    assert same is new and previous.replayed is not None and previous.replayed.rows == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "pass --replay FILE" in warnings[0] and "\n" not in warnings[0]
    given = load_previous(model_only, replay_file=files / "old.csv")
    config = given.config(["train.replay_per_intent=2", "train.replay_resample=false"])
    mixed = given.with_replay(new, config)
    replay = mixed.subset(list(range(len(new), len(mixed))))
    assert replay.counts() == {intent: 2 for intent in OLD}
    old_texts = {normalize_for_matching(t) for t in load_examples(files / "old.csv").texts}
    assert all(normalize_for_matching(t) in old_texts for t in replay.texts)
    assert not set(replay.texts) & set(new.texts)
    assert given.epoch_rows(mixed.texts, mixed.labels, config.train) is None  # one sample: every row, every epoch


def test_resampled_replay_keeps_every_old_row_and_draws_each_epochs_share(files: Path, old_run: Path) -> None:
    previous = load_previous(old_run)
    new = load_examples(files / "new.csv")
    config = previous.config(["train.replay_per_intent=2", "train.replay_resample=true"])
    mixed = previous.with_replay(new, config)
    replay = mixed.subset(list(range(len(new), len(mixed))))
    # Every old row whose text the new data does not have (15 less 2), not just 2 per intent.
    assert len(replay) == 13 and previous.replayed is not None and previous.replayed.resampled
    plan = previous.epoch_rows(mixed.texts, mixed.labels, config.train)
    assert plan is not None and plan.per_epoch == 2
    assert plan.fixed == tuple(range(len(new)))  # the new rows, every epoch
    assert sorted(i for pool in plan.pools for i in pool) == list(range(len(new), len(mixed)))
    assert [{mixed.labels[i] for i in pool} for pool in plan.pools] == [{intent} for intent in sorted(OLD)]
    assert plan.size == len(new) + 2 * len(OLD)


def test_replay_distill_keeps_the_old_models_answers_among_its_intents(files: Path, old_run: Path) -> None:
    previous = load_previous(old_run)
    new = load_examples(files / "new.csv")
    config = previous.config(["train.replay_distill=0.5", "train.distill_temperature=2", "train.device=cpu"])
    mixed = previous.with_replay(new, config)
    classes = sorted({*OLD, NEW})
    label_ids = [classes.index(y) for y in mixed.labels]
    off = previous.config(["train.replay_distill=0"]).train
    assert previous.soft_targets(mixed.texts, classes, label_ids, off) is None  # 0 = cross-entropy alone
    found = previous.soft_targets(mixed.texts, classes, label_ids, config.train)
    assert found is not None
    rows, settings = found
    # The old model's intents in its own order, as the new model's columns; its probabilities softened (T = 2).
    assert settings.columns == tuple(classes.index(c) for c in previous.classes) and settings.alpha == 0.5
    probs = previous.classifier.predict_proba(mixed.texts)
    softened = probs**0.5 / (probs**0.5).sum(axis=1, keepdims=True)
    assert len(rows) == len(mixed) and all(len(row) == len(OLD) + 1 for row in rows)
    assert [row[-1] for row in rows] == [float(i) for i in label_ids]
    assert np.allclose([row[:-1] for row in rows], softened, atol=1e-6)


def test_an_extension_keeps_the_old_answers_by_default_learns_the_new_intent_and_records_it(
    files: Path, old_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    used: list[Distillation] = []  # the settings of every loss computed in training
    forward = DistillationLoss.forward

    def spy(self: DistillationLoss, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        used.append(self.settings)
        return forward(self, logits, targets)

    monkeypatch.setattr(DistillationLoss, "forward", spy)
    out = tmp_path / "v2"
    args = ["train", str(files / "new.csv"), "--init-from", str(old_run), "--test", str(files / "test.csv")]
    result = runner.invoke(app, [*args, "-o", str(out), "--quiet", *TINY, "--set", "data.validation_fraction=0.2"])
    assert result.exit_code == 0, result.output
    # Training compared the new model with the old one's answers among the old intents, at the default share.
    old_classes = load_previous(old_run).classes
    new_classes = IntentClassifier.load(out).classes_
    expected = tuple(list(new_classes).index(c) for c in old_classes)
    assert used and {(d.alpha, d.columns) for d in used} == {(0.5, expected)}
    clf = IntentClassifier.load(out)
    trained = load_examples(out / TRAIN_SPLIT)
    answers = [clf.classes_[i] for i in clf.predict_proba(trained.texts).argmax(axis=1)]
    assert answers == trained.labels  # the toy data is separable: old intents kept, the new one learnt
    summary = json.loads((out / "metrics.json").read_text())["training"]["init_from"]
    assert summary["replay_distill"] == 0.5 and summary["intents_added"] == [NEW]


def test_replay_needs_init_from(files: Path) -> None:
    result = runner.invoke(app, ["train", str(files / "new.csv"), "--replay", str(files / "old.csv")])
    assert result.exit_code == 2 and "--replay needs --init-from" in result.output
