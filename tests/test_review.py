"""The review queue: its order on messages whose probabilities and vectors are fixed, duplicates and labelled texts
left out, the diversity step, the CSV read back as training data, and the CLI end to end on a tiny model."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from intentune import Config, DataError, load_examples
from intentune.cli import app
from intentune.evaluate.oos import Thresholds
from intentune.manifest import row_id
from intentune.messages import Messages, read_messages
from intentune.review import build_queue, labelled_keys, match_key, select_diverse, write_queue

from conftest import tiny_sets, toy_data

runner = CliRunner()
CLASSES = ["a", "b", "c"]


class FixedPredictor:
    """A model whose calibrated probabilities and pooled vectors are given per text."""

    def __init__(self, table: dict[str, tuple[list[float], list[float]]], threshold: float | None = None) -> None:
        self.table = table
        self.classes_ = CLASSES
        self.config = Config()
        self.temperature_ = 1.0
        self.distance_ = None
        self.thresholds = Thresholds(self.config.oos.label, threshold) if threshold is not None else None

    def forward(self, texts: list[str], *, batch_size: int | None = None, pooled: bool = False):
        logits = np.log(np.array([self.table[t][0] for t in texts]))  # softmax(log p) = p
        vectors = np.array([self.table[t][1] for t in texts], dtype=np.float32)
        return logits, (vectors if pooled else None)


def orthogonal(i: int, size: int = 8) -> list[float]:
    return [1.0 if j == i else 0.0 for j in range(size)]


PROBS = {
    "close call": [0.5, 0.45, 0.05],  # margin 0.05 -> score 0.95
    "fairly sure": [0.6, 0.3, 0.1],  # margin 0.3 -> 0.7
    "very sure": [0.9, 0.05, 0.05],  # margin 0.85 -> 0.15
    "no idea": [0.34, 0.33, 0.33],  # below the 0.4 threshold: rejected, 1 - 0.01 + 0.5 = 1.49
}


def fixed(probs: dict[str, list[float]] = PROBS, threshold: float | None = 0.4) -> FixedPredictor:
    return FixedPredictor({t: (p, orthogonal(i)) for i, (t, p) in enumerate(probs.items())}, threshold)


def test_the_most_informative_come_first_with_the_reason() -> None:
    result = build_queue(fixed(), ["very sure", "fairly sure", "close call", "no idea"], n=10)
    assert [r["text"] for r in result.rows] == ["no idea", "close call", "fairly sure", "very sure"]
    assert [r["score"] for r in result.rows] == pytest.approx([1.49, 0.95, 0.7, 0.15])
    assert result.rows[0]["reason"] == "out of scope; margin 0.01"
    assert result.rows[0]["predicted_intent"] == "oos"
    assert (result.rows[1]["reason"], result.rows[1]["predicted_intent"]) == ("margin 0.05", "a")
    assert result.rows[1]["confidence"] == pytest.approx(0.5)


def test_n_limits_the_queue() -> None:
    assert [r["text"] for r in build_queue(fixed(), list(PROBS), n=2).rows] == ["no idea", "close call"]


def test_exact_duplicates_appear_once_with_their_count() -> None:
    probs = {"Where is my card?": [0.5, 0.3, 0.2], "where is my card": [0.5, 0.3, 0.2], "hi": [0.8, 0.1, 0.1]}
    texts = ["Where is my card?", "hi", "where is my card", "Where is my card?"]
    result = build_queue(fixed(probs), texts, n=10)
    assert [(r["text"], r["count"]) for r in result.rows] == [("Where is my card?", 3), ("hi", 1)]
    assert (result.read, result.unique) == (4, 2)


def test_labelled_texts_are_left_out_by_their_key_or_their_row_id() -> None:
    probs = {"Hello there!": [0.5, 0.3, 0.2], "track my parcel": [0.4, 0.4, 0.2], "Track my parcel": [0.4, 0.4, 0.2],
             "something new": [0.6, 0.2, 0.2]}  # fmt: skip
    labelled = ({match_key("hello there")}, {row_id("track my parcel", "b")})
    result = build_queue(fixed(probs, None), ["Hello there!", "track my parcel", "something new"], labelled=labelled)
    assert ([r["text"] for r in result.rows], result.known) == (["something new"], 2)
    # A key matches ignoring case and punctuation; a row id (under any trained intent) the exact text only.
    result = build_queue(fixed(probs, None), ["Track my parcel", "something new"], labelled=labelled)
    assert (sorted(r["text"] for r in result.rows), result.known) == (["Track my parcel", "something new"], 0)


def test_models_that_disagree_rank_first() -> None:
    probs = {"x": [0.7, 0.2, 0.1], "y": [0.5, 0.45, 0.05], "z": [0.6, 0.3, 0.1]}
    other = {**probs, "x": [0.2, 0.7, 0.1]}
    result = build_queue(fixed(probs), list(probs), other=fixed(other), n=10)
    assert [r["text"] for r in result.rows] == ["x", "y", "z"]
    assert result.rows[0]["reason"] == "models disagree: a vs b; margin 0.50"
    assert result.rows[0]["score"] == pytest.approx(1.5)


def test_diversity_picks_another_cluster_before_a_second_from_the_same() -> None:
    a1, a2, a3, b1 = [1.0, 0.0], [0.99, 0.141], [0.98, 0.199], [0.0, 1.0]
    picks = select_diverse(np.array([a1, a2, a3, b1]), np.array([1.0, 0.95, 0.9, 0.5]), 4, max_similarity=0.999)
    assert picks == [0, 3, 2, 1]
    # By score alone the order would be 0, 1, 2, 3.


def test_near_duplicates_of_a_picked_message_are_never_picked() -> None:
    vectors = np.array([[1.0, 0.0], [1.0, 0.01], [0.0, 1.0]])
    assert select_diverse(vectors, np.array([0.9, 0.8, 0.1]), 3, max_similarity=0.95) == [0, 2]
    assert select_diverse(vectors, np.array([0.9, 0.8, 0.1]), 3, max_similarity=1.0) == [0, 2, 1]


def test_the_filled_queue_reads_back_as_training_data(tmp_path: Path) -> None:
    path = tmp_path / "queue.csv"
    write_queue(build_queue(fixed(), list(PROBS), n=10).rows, path, text_field="text", label_field="intent")
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["text", "predicted_intent", "confidence", "reason", "score", "count", "intent"]
    assert all(row["intent"] == "" for row in rows)
    with pytest.raises(DataError, match=r"queue.csv:2: empty intent in field 'intent'"):
        load_examples(path)  # an unlabelled row is refused, naming its line
    for row, label in zip(rows, ["oos", "a", "b", "c"]):
        row["intent"] = label
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    examples = load_examples(path)
    assert examples.texts == ["no idea", "close call", "fairly sure", "very sure"]
    assert examples.labels == ["oos", "a", "b", "c"]
    assert set(examples.sources) == {"real"}


def test_read_messages_takes_a_log_a_text_file_and_a_csv(tmp_path: Path) -> None:
    log = tmp_path / "predictions.jsonl"
    records = [{"time": "2025-01-01T00:00:00Z", "model": "m1", "text": " where is it ", "intent": "a",
                "confidence": 0.4, "is_out_of_scope": False, "top": [{"intent": "a", "confidence": 0.4}]},
               {"time": "2025-01-01T00:00:01Z", "model": "m1", "text": "hi", "intent": "oos"}]  # fmt: skip
    log.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    assert read_messages(log) == ["where is it", "hi"]
    # A rotated log is read oldest file first; lines holding only a hash of their text are skipped.
    older = {"time": "2024-12-31T00:00:00Z", "model_id": "m0", "text": "older one", "intent": "a"}
    hashed = {"time": "2024-12-31T00:00:01Z", "model_id": "m0", "text_sha256": "ab" * 32, "intent": "a"}
    (tmp_path / "predictions.jsonl.1").write_text(json.dumps(older) + "\n" + json.dumps(hashed) + "\n")
    log.rename(tmp_path / "predictions.jsonl")
    assert read_messages(tmp_path / "predictions.jsonl") == ["older one", "where is it", "hi"]
    (tmp_path / "hashes.jsonl").write_text(json.dumps(hashed) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"hashes of its texts only \(serve.log_texts = false\)"):
        read_messages(tmp_path / "hashes.jsonl")
    (tmp_path / "other.jsonl").write_text(json.dumps({"utterance": "x"}) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"no text field 'text' \(fields found: utterance\); set --text-field"):
        read_messages(tmp_path / "other.jsonl")
    (tmp_path / "texts.txt").write_text("one\n\n two \n", encoding="utf-8")
    assert read_messages(tmp_path / "texts.txt") == ["one", "two"]
    (tmp_path / "data.csv").write_text("utterance,intent\nfirst,a\nsecond,\n", encoding="utf-8")
    assert read_messages(tmp_path / "data.csv", text_field="utterance") == ["first", "second"]
    (tmp_path / "empty.txt").write_text("\n \n", encoding="utf-8")
    with pytest.raises(DataError, match="no messages found"):
        read_messages(tmp_path / "empty.txt")
    assert Messages.group(["A!", "a", "b"]).counts == [2, 1]


@pytest.fixture(scope="module")
def run_folder(tiny_encoder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run trained on a copy of the toy set, so that a test may remove the copy afterwards."""
    from intentune import Examples, write_examples

    folder = tmp_path_factory.mktemp("review")
    write_examples(Examples(*toy_data()), folder / "train.csv")
    train = str(folder / "train.csv")  # validation on the same file: no split-off rows in the run folder
    args = ["train", train, "--validation", train, "--backbone", str(tiny_encoder), "-o", str(folder / "run")]
    result = runner.invoke(app, [*args, "--quiet", *tiny_sets(epochs=2)])
    assert result.exit_code == 0, result.output
    return folder


def test_review_command_end_to_end(run_folder: Path, tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    texts = ["HELLO THERE!!", "hello there", "is my refund coming", "is my refund coming", "pay with crypto",
             "open an account", "bye now", "what is the weather"]  # fmt: skip
    log.write_text("".join(json.dumps({"text": t, "intent": "x"}) + "\n" for t in texts), encoding="utf-8")
    queue = tmp_path / "queue.csv"
    args = ["review", str(log), "--model", str(run_folder / "run"), "-o", str(queue), "--max-similarity", "1.0"]
    result = runner.invoke(app, [*args, "-n", "3"])
    assert result.exit_code == 0, result.output
    # "HELLO THERE!!" matches the training text "hello there" ignoring case and punctuation; so does its repeat.
    assert "8 messages read, 6 distinct; 2 already labelled; 3 in the queue" in result.output
    with queue.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 3 and all(row["intent"] == "" for row in rows)
    new = {"is my refund coming", "pay with crypto", "open an account", "what is the weather"}
    assert {row["text"] for row in rows} <= new
    assert [int(row["count"]) for row in rows if row["text"] == "is my refund coming"] in ([], [2])
    scores = [float(row["score"]) for row in rows]
    assert max(scores) == scores[0]  # the first pick is the most informative message

    # With the training file and the run folder's copy of its rows gone, exact training texts are still found by
    # their row ids in manifest.json (only "bye now": the first spelling of the greeting, "HELLO THERE!!", is no
    # training row).
    (run_folder / "train.csv").unlink()
    for copy in (run_folder / "run" / "splits").glob("*.csv"):
        copy.unlink()
    assert labelled_keys(run_folder / "run")[0] == set()
    result = runner.invoke(app, [*args, "-n", "10"])
    assert result.exit_code == 0, result.output
    assert "8 messages read, 6 distinct; 1 already labelled; 5 in the queue" in result.output
    with queue.open(encoding="utf-8", newline="") as handle:
        assert {row["text"] for row in csv.DictReader(handle)} == new | {"HELLO THERE!!"}


def test_review_errors_are_one_line(run_folder: Path, tmp_path: Path) -> None:
    (tmp_path / "empty.txt").write_text("", encoding="utf-8")
    result = runner.invoke(app, ["review", str(tmp_path / "empty.txt"), "--model", str(run_folder / "run")])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [f"error: {tmp_path / 'empty.txt'}: no messages found; give a "
                                                  "prediction log (.jsonl), .csv, .txt (one message per line), "
                                                  ".yml or .json file with at least one text"]  # fmt: skip
    (tmp_path / "log.txt").write_text("hello\n", encoding="utf-8")
    result = runner.invoke(app, ["review", str(tmp_path / "log.txt"), "--model", str(tmp_path / "nothing")])
    assert result.exit_code == 1
    assert "does not exist" in result.output and len(result.output.strip().splitlines()) == 1
