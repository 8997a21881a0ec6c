"""Data doctor: the suspect and overlap rules on hand-made probabilities, embeddings from tiny backbones, the CLI,
and (marked ``bundled``) recovery of planted label noise in CLINC150 with the real MiniLM encoder."""

from __future__ import annotations

import csv
import json
import random
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from intentune import Examples, load_examples
from intentune.cli import app
from intentune.doctor import DoctorReport, diagnose_examples, embed_texts, find_label_issues, find_overlaps

from conftest import ROOT, toy_data

SHARED = ROOT.parent / "shared" / "datasets"
runner = CliRunner()

LABELS = ["a", "a", "a", "b", "b", "b", "c", "c"]
PROBS = np.array(
    [
        [0.8, 0.1, 0.1],
        [0.7, 0.2, 0.1],
        [0.2, 0.7, 0.1],  # labelled a, b preferred by 0.5, and 0.7 >= b's mean self-confidence 0.467: confident
        [0.1, 0.8, 0.1],
        [0.3, 0.4, 0.3],
        [0.5, 0.2, 0.3],  # labelled b, a preferred by 0.3, but 0.5 < a's mean self-confidence 0.567
        [0.1, 0.1, 0.8],
        [0.1, 0.4, 0.5],
    ]
)


def hand_made() -> Examples:
    return Examples([f"text {i}" for i in range(8)], LABELS, list(range(2, 10)), "hand.csv")


def hand_made_report() -> DoctorReport:
    examples = hand_made()
    suspects, thresholds = find_label_issues(examples, PROBS, ["a", "b", "c"])
    overlaps = find_overlaps(examples, PROBS, ["a", "b", "c"])
    return DoctorReport("hand.csv", 8, 3, "embeddings", "test", 2, 0.75, suspects, overlaps, thresholds)


def test_suspects_are_rows_another_intent_wins_ranked_by_margin() -> None:
    suspects, thresholds = find_label_issues(hand_made(), PROBS, ["a", "b", "c"])
    assert [(s.row, s.line, s.given, s.suggested, s.margin, s.confident) for s in suspects] == [
        (2, 4, "a", "b", 0.5, True),
        (5, 7, "b", "a", 0.3, False),
    ]
    assert (suspects[0].p_given, suspects[0].p_suggested, suspects[0].text) == (0.2, 0.7, "text 2")
    assert thresholds == {"a": pytest.approx(0.5667), "b": pytest.approx(0.4667), "c": pytest.approx(0.65)}


def test_overlaps_count_confusions_both_ways() -> None:
    (overlap,) = find_overlaps(hand_made(), PROBS, ["a", "b", "c"])
    assert (overlap.intent_a, overlap.intent_b, overlap.a_as_b, overlap.b_as_a) == ("a", "b", 1, 1)
    assert overlap.share == 0.3333 and overlap.rate_a_as_b == pytest.approx(1 / 3)
    assert [(e["row"], e["given"], e["predicted"]) for e in overlap.examples] == [(2, "a", "b"), (5, "b", "a")]
    assert find_overlaps(hand_made(), PROBS, ["a", "b", "c"], min_share=0.34) == []
    assert find_overlaps(hand_made(), PROBS, ["a", "b", "c"], min_count=3) == []


def test_report_renders_and_saves_every_file(tmp_path: Path) -> None:
    report = hand_made_report()
    text = report.to_text()
    assert "Possibly mislabelled: 2 rows (1 confident, marked *)" in text
    assert " *hand.csv:4  a (0.20) -> b (0.70)  'text 2'" in text
    assert "a <-> b: share 0.333; a as b 1/3, b as a 1/3" in text
    assert "| 2 | 4 | text 2 | `a` | 0.200 | `b` | 0.700 | yes |" in report.to_markdown()
    paths = report.save(tmp_path)
    assert sorted(p.name for p in paths.values()) == ["doctor.json", "doctor.md", "overlaps.csv", "suspects.csv"]
    suspects = list(csv.DictReader((tmp_path / "suspects.csv").open(encoding="utf-8")))
    assert [(r["row"], r["line"], r["suggested"]) for r in suspects] == [("2", "4", "b"), ("5", "7", "a")]
    (overlap,) = csv.DictReader((tmp_path / "overlaps.csv").open(encoding="utf-8"))
    assert overlap["examples"] == "text 2 | text 5" and overlap["rate_b_as_a"] == "0.3333"
    data = json.loads((tmp_path / "doctor.json").read_text())
    assert data["num_suspects"] == 2 and data["num_confident_suspects"] == 1


@pytest.mark.parametrize("fixture", ["tiny_encoder", "tiny_decoder"])
def test_embeddings_are_unit_length_and_independent_of_batching(fixture: str, request: pytest.FixtureRequest) -> None:
    backbone = str(request.getfixturevalue(fixture))
    texts = ["hi", "where is my order, it is very late now", "bye bye", "price of the red jacket please"]
    one_by_one = embed_texts(texts, backbone, batch_size=1)
    batched = embed_texts(texts, backbone, batch_size=4)  # padded to the longest text
    assert one_by_one.shape == (4, 32)
    np.testing.assert_allclose(np.linalg.norm(batched, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(batched, one_by_one, atol=1e-5)


def test_embedding_doctor_on_tiny_backbone(tiny_encoder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import intentune.doctor

    seen: dict[str, np.ndarray] = {}

    def keep_probabilities(examples: Examples, probabilities: np.ndarray, classes: list[str]):  # noqa: ANN202
        seen["p"] = probabilities
        return find_label_issues(examples, probabilities, classes)

    monkeypatch.setattr(intentune.doctor, "find_label_issues", keep_probabilities)
    texts, labels = toy_data()
    examples = Examples(texts, labels, list(range(2, 26)), "toy.csv")
    report = diagnose_examples(examples, backbone=str(tiny_encoder), folds=3)
    assert (report.rows, report.intents, report.method, report.folds) == (24, 4, "embeddings", 3)
    margins = [s.margin for s in report.suspects]
    assert margins == sorted(margins, reverse=True) and all(m > 0 for m in margins)
    for s in report.suspects:
        assert examples.texts[s.row] == s.text and examples.labels[s.row] == s.given != s.suggested
    # Every out-of-fold error is a suspect, except near-ties (margin 0.0000 at the 4 decimals shown).
    p, given = seen["p"], np.array([sorted(set(labels)).index(y) for y in labels])
    errors = set(np.flatnonzero(p.argmax(axis=1) != given).tolist())
    others = np.where(np.eye(p.shape[1], dtype=bool)[given], -np.inf, p)
    ties = {i for i in errors if round(float(others[i].max() - p[i, given[i]]), 4) == 0}
    assert {s.row for s in report.suspects} == errors - ties
    assert report.oof_accuracy == pytest.approx(1 - len(errors) / 24)


@pytest.mark.parametrize("method", ["embeddings", "finetune"])
def test_doctor_command_writes_its_files(toy_files: Path, tiny_encoder: Path, tmp_path: Path, method: str) -> None:
    train = ["--set", "train.epochs=4", "--set", "train.device=cpu", "--set", "train.learning_rate=3e-3",
             "--set", "train.few_shot=off"]  # fmt: skip
    args = ["data", "doctor", str(toy_files / "train.csv"), "-o", str(tmp_path), "--method", method, "--folds", "3"]
    result = runner.invoke(app, [*args, "--backbone", str(tiny_encoder), "--quiet", *train])
    assert result.exit_code == 0, result.output
    assert "Possibly mislabelled:" in result.output and "Overlapping intents:" in result.output
    for name in ("suspects.csv", "overlaps.csv", "doctor.md", "doctor.json"):
        assert (tmp_path / name).is_file(), name
    data = json.loads((tmp_path / "doctor.json").read_text())
    assert (data["method"], data["rows"], data["backbone"]) == (method, 24, str(tiny_encoder))


def test_doctor_command_errors(toy_files: Path, tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["data", "doctor", str(toy_files / "train.csv"), "-o", str(tmp_path), "--method", "magic"]
    )
    assert result.exit_code == 2 and "expected embeddings or finetune" in result.output
    result = runner.invoke(app, ["data", "doctor", str(toy_files / "train.csv"), "-o", str(tmp_path), "--folds", "7"])
    assert result.exit_code == 1
    assert "fewer than 7 examples cannot be spread over 7 folds: 'goodbye' has 6 (line 8, 9" in result.output


@pytest.mark.bundled
def test_planted_label_noise_is_recovered_with_minilm() -> None:
    """CLINC150 train: the first 20 intents in sorted order, the first 50 rows of each in file order (1,000 rows);
    5% of the labels (50 rows, ``random.Random(13)``) flipped to another of the 20 intents, chosen at random.
    The embeddings doctor (minilm-l6, 5 folds) ranks suspects; its top 50 must hold at least 70% of the flipped
    rows. Measured on a shared 2-core CPU: 48 of 50 recovered (96%), 61 suspects in all, 26 s.
    """
    data = load_examples(SHARED / "clinc150" / "train.csv")
    intents = sorted(set(data.labels))[:20]
    rows = [i for intent in intents for i in [j for j, label in enumerate(data.labels) if label == intent][:50]]
    examples = data.subset(rows)
    rng = random.Random(13)
    flipped = sorted(rng.sample(range(len(examples)), round(0.05 * len(examples))))
    for i in flipped:
        examples.labels[i] = rng.choice([intent for intent in intents if intent != examples.labels[i]])
    started = time.perf_counter()
    report = diagnose_examples(examples, backbone="minilm-l6", folds=5)
    seconds = time.perf_counter() - started
    top = {s.row for s in report.suspects[: len(flipped)]}
    recovered = len(top & set(flipped))
    print(f"recovered {recovered}/{len(flipped)}, {len(report.suspects)} suspects, {seconds:.1f} s")
    assert (len(examples), len(flipped)) == (1000, 50)
    assert recovered >= 0.7 * len(flipped)
