"""Distillation: the loss, the teacher's soft targets, and ``intentune distill`` end to end on tiny backbones."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from intentune import Examples, IntentClassifier, load_teacher, write_examples
from intentune.cli import app
from intentune.train import Distillation, DistillationLoss, SoftTargets

from conftest import TOY, tiny_sets, toy_data

runner = CliRunner()
TINY = tiny_sets(epochs=20)


def test_the_loss_mixes_the_teachers_kl_and_the_true_intents_cross_entropy() -> None:
    torch.manual_seed(0)
    logits = torch.randn(4, 3)
    soft = torch.softmax(torch.randn(4, 3), dim=-1)
    hard = torch.tensor([0.0, 2.0, -1.0, 1.0])  # the third text is unlabelled
    targets = torch.cat([soft, hard[:, None]], dim=1)
    t = 2.0
    kl = torch.nn.functional.kl_div(torch.log_softmax(logits / t, -1), soft, reduction="batchmean") * t * t
    labelled = hard >= 0
    ce = torch.nn.functional.cross_entropy(logits[labelled], hard[labelled].long())
    assert DistillationLoss(Distillation(t, 1.0))(logits, targets).item() == pytest.approx(kl.item())
    assert DistillationLoss(Distillation(t, 0.0))(logits, targets).item() == pytest.approx(ce.item())
    mixed = DistillationLoss(Distillation(t, 0.3))(logits, targets).item()
    assert mixed == pytest.approx(0.3 * kl.item() + 0.7 * ce.item())
    # Only unlabelled rows: the teacher's part alone, whatever alpha says.
    unlabelled = targets.clone()
    unlabelled[:, -1] = -1
    alone = DistillationLoss(Distillation(t, 0.3))(logits, unlabelled).item()
    assert alone == pytest.approx(0.3 * kl.item())


def test_with_columns_the_teacher_judges_only_its_own_intents() -> None:
    torch.manual_seed(1)
    logits = torch.randn(5, 4)
    soft = torch.softmax(torch.randn(5, 2), dim=-1)  # a teacher that knows the student's intents 3 and 1, in that order
    hard = torch.tensor([0.0, 1.0, 2.0, 3.0, 2.0])
    targets = torch.cat([soft, hard[:, None]], dim=1)
    t = 2.0
    kept = logits[:, [3, 1]]
    kl = torch.nn.functional.kl_div(torch.log_softmax(kept / t, -1), soft, reduction="batchmean") * t * t
    ce = torch.nn.functional.cross_entropy(logits, hard.long())
    loss = DistillationLoss(Distillation(t, 0.4, columns=(3, 1)))(logits, targets).item()
    assert loss == pytest.approx(0.4 * kl.item() + 0.6 * ce.item())
    # The other intents' logits reach the loss through the cross-entropy alone.
    raised = logits.clone()
    raised[:, [0, 2]] += 5.0
    teacher_part = DistillationLoss(Distillation(t, 1.0, columns=(3, 1)))
    assert teacher_part(raised, targets).item() == pytest.approx(kl.item())


def test_the_loss_pulls_the_student_towards_the_teacher() -> None:
    soft = torch.tensor([[0.7, 0.2, 0.1]])
    targets = torch.cat([soft, torch.tensor([[-1.0]])], dim=1)
    logits = torch.zeros(1, 3, requires_grad=True)
    loss_fn = DistillationLoss(Distillation(1.0, 1.0))
    for _ in range(300):
        loss = loss_fn(logits, targets)
        loss.backward()
        with torch.no_grad():
            logits -= 0.5 * logits.grad
            logits.grad.zero_()
    assert torch.allclose(torch.softmax(logits, -1), soft, atol=1e-3)


def test_soft_target_rows_follow_the_students_intent_order() -> None:
    targets = SoftTargets(["a", "b"], np.array([[0.9, 0.1], [0.3, 0.7]]), [True, False], Distillation(2.0, 0.5))
    assert targets.rows(["b", "a"], [1, 0]) == [[0.1, 0.9, 1.0], [0.7, 0.3, -1.0]]
    assert targets.summary() == {"temperature": 2.0, "alpha": 0.5, "texts": 2, "unlabelled_texts": 1}


@pytest.fixture(scope="module")
def teacher_run(toy_files: Path, tiny_encoder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("teacher") / "run"
    args = ["train", str(toy_files / "train.csv"), "--validation", str(toy_files / "validation.csv")]
    args += ["--test", str(toy_files / "test.jsonl"), "--backbone", str(tiny_encoder), "-o", str(out), "--quiet"]
    result = runner.invoke(app, [*args, *TINY])
    assert result.exit_code == 0, result.output
    return out


def test_teacher_targets_soften_the_calibrated_probabilities_and_add_unlabelled_texts(teacher_run: Path) -> None:
    teacher = load_teacher(teacher_run)
    texts, labels = toy_data()
    train = Examples(texts[:6], labels[:6])
    extra = ["where is my parcel", texts[0], "where is my parcel", "bye for now"]  # repeats and a training text
    settings = teacher.student_config(None, ["train.distill_temperature=2.0"]).train
    rows, soft = teacher.targets(train, extra, settings)
    assert rows.texts == [*texts[:6], "where is my parcel", "bye for now"]
    assert soft.labelled == [True] * 6 + [False, False]
    calibrated = teacher.classifier.predict_proba(rows.texts)
    expected = np.sqrt(calibrated) / np.sqrt(calibrated).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(soft.probabilities, expected, rtol=1e-5)
    answers = [teacher.classifier.classes_[i] for i in calibrated[6:].argmax(axis=1)]
    assert rows.labels == [*labels[:6], *answers]
    assert soft.classes == list(teacher.classifier.classes_)


def test_the_student_config_keeps_the_task_and_resets_the_backbones_settings(teacher_run: Path) -> None:
    teacher = load_teacher(teacher_run)
    config = teacher.student_config("minilm-l6", ["train.epochs=3"])
    assert config.model.backbone == "minilm-l6" and config.train.epochs == 3
    assert config.train.learning_rate is None  # the teacher trained at TINY's 3e-3
    assert config.data.train_file == teacher.classifier.config.data.train_file is not None
    assert config.oos == teacher.classifier.config.oos


def test_distill_command_trains_a_student_and_sets_it_beside_the_teacher(
    teacher_run: Path, tiny_decoder: Path, toy_files: Path, tmp_path: Path
) -> None:
    unlabeled = tmp_path / "logs.txt"
    unlabeled.write_text("where is my parcel now\nsee you tomorrow\nhey good evening\n", encoding="utf-8")
    out = tmp_path / "student"
    args = ["distill", str(teacher_run), "--student", str(tiny_decoder), "-o", str(out), "--quiet"]
    args += ["--unlabeled", str(unlabeled), *TINY, "--set", "model.pooling=last"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "teacher and student side by side" in result.output
    record = json.loads((out / "distill.json").read_text())
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["training"]["distillation"] == {"temperature": 2.0, "alpha": 0.5, "texts": 27, "unlabelled_texts": 3}
    student = IntentClassifier.load(out / "model")
    assert student.kind_ == "decoder" and student.classes_ == sorted(TOY)
    assert student.thresholds_ is not None  # its own out-of-scope thresholds, fitted on the validation data
    # The side-by-side numbers are the two models' own on the test file.
    assert record["student_scores"]["accuracy"] == pytest.approx(metrics["accuracy"])
    teacher_metrics = json.loads((teacher_run / "metrics.json").read_text())
    assert record["teacher_scores"]["accuracy"] == pytest.approx(teacher_metrics["accuracy"])
    assert record["rows"] == 12 and set(record["agreement_per_intent"]) == set(TOY)
    assert record["agreement"] >= 0.75, record  # the toy intents are easy: both answer nearly all rows right
    assert record["student_scores"]["parameters"] != record["teacher_scores"]["parameters"]
    assert "| accuracy |" in (out / "distill.md").read_text()


def test_a_student_cannot_learn_intents_the_teacher_does_not_know(
    teacher_run: Path, tiny_encoder: Path, tmp_path: Path
) -> None:
    data = tmp_path / "more.csv"
    texts, labels = toy_data()
    write_examples(Examples([*texts, "refund please", "i want my money back"], [*labels, "refund", "refund"]), data)
    out = tmp_path / "student"
    args = ["distill", str(teacher_run), "--student", str(tiny_encoder), "-o", str(out), "--data", str(data)]
    result = runner.invoke(app, [*args, "--quiet", *TINY])
    assert result.exit_code == 1
    assert "the teacher model does not know the intents refund" in result.output
    assert "Traceback" not in result.output and not out.exists()


def test_distill_from_a_folder_without_a_model_is_one_clear_line(tmp_path: Path) -> None:
    result = runner.invoke(app, ["distill", str(tmp_path), "-o", str(tmp_path / "out")])
    assert result.exit_code == 1 and result.output.count("\n") == 1 and "error:" in result.output


def test_an_interrupted_distillation_resumes_from_its_checkpoint(
    teacher_run: Path, tiny_encoder: Path, tmp_path: Path
) -> None:
    unlabeled = tmp_path / "logs.txt"
    unlabeled.write_text("where is my parcel now\nsee you tomorrow\n", encoding="utf-8")
    out = tmp_path / "student"
    args = ["distill", str(teacher_run), "-o", str(out), "--quiet", "--unlabeled", str(unlabeled)]
    missing = runner.invoke(app, [*args, "--resume"])
    assert missing.exit_code == 1 and "checkpoint" in missing.output and "Traceback" not in missing.output
    first = runner.invoke(app, [*args, "--student", str(tiny_encoder), *TINY, "--set", "train.keep_checkpoint=true"])
    assert first.exit_code == 0, first.output
    before = json.loads((out / "metrics.json").read_text())
    # The run's own config.toml (student, tiny settings, kept checkpoint) and the same teacher and texts.
    resumed = runner.invoke(app, [*args, "--resume"])
    assert resumed.exit_code == 0, resumed.output
    after = json.loads((out / "metrics.json").read_text())
    assert after["accuracy"] == before["accuracy"]
    assert after["training"]["distillation"] == before["training"]["distillation"]
    assert json.loads((out / "manifest.json").read_text())["resumes"], "the resume is recorded in the manifest"
    # Other unlabelled texts make other training targets: the checkpoint is refused, not silently reused.
    unlabeled.write_text("a different message entirely\n", encoding="utf-8")
    refused = runner.invoke(app, [*args, "--resume"])
    assert refused.exit_code == 1 and "Traceback" not in refused.output
