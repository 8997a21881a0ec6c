"""Intent discovery: planted groups of rejected messages with fixed vectors come back as clusters named by their
distinctive word; the written files; the page escapes messages; the CLI end to end on a tiny model."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from intentune import Config, ConfigError
from intentune.cli import app
from intentune.discover import (
    DiscoverSettings,
    cluster_vectors,
    distinctive_words,
    find_intents,
    render_html,
    write_discovery,
)

runner = CliRunner()

CRYPTO = ["can I pay with crypto", "do you take crypto", "crypto payments please", "buy crypto with my card",
          "send crypto to a friend", "is my crypto wallet supported"]  # fmt: skip
PETS = ["can my dog come in", "is the shop dog friendly", "dog allowed inside", "bring my dog along",
        "my dog wants to visit"]  # fmt: skip
ODD = ["the weather is nice", "what time is it"]
KNOWN = ["where is my order", "track my parcel"]


class FixedPredictor:
    """A model with two intents whose probabilities and pooled vectors are given per text."""

    def __init__(self, table: dict[str, tuple[list[float], list[float]]]) -> None:
        self.table = table
        self.classes_ = ["a", "b"]
        self.config = Config()
        self.temperature_ = 1.0
        self.distance_ = None
        self.thresholds = None

    def forward(self, texts: list[str], *, batch_size: int | None = None, pooled: bool = False):
        logits = np.log(np.array([self.table[t][0] for t in texts]))
        vectors = np.array([self.table[t][1] for t in texts], dtype=np.float32)
        return logits, (vectors if pooled else None)


def planted() -> FixedPredictor:
    """Two tight groups of low-confidence messages (around two directions), two scattered ones, two confident."""
    rng = np.random.default_rng(0)
    table = {}
    for direction, group in enumerate([CRYPTO, PETS]):
        for text in group:
            vector = np.zeros(16)
            vector[direction] = 1.0
            table[text] = ([0.55, 0.45], (vector + rng.normal(0, 0.02, 16)).tolist())
    for i, text in enumerate(ODD):
        table[text] = ([0.5, 0.5], np.eye(16)[5 + 3 * i].tolist())
    for text in KNOWN:
        table[text] = ([0.95, 0.05], np.eye(16)[12].tolist())
    return FixedPredictor(table)


@pytest.mark.parametrize("method", ["hdbscan", "agglomerative"])
def test_planted_intents_come_back_as_named_clusters(method: str) -> None:
    texts = [*CRYPTO, *PETS, *ODD, *KNOWN, CRYPTO[0]]
    settings = DiscoverSettings(max_confidence=0.6, method=method, min_cluster_size=3, examples=3)
    found = find_intents(planted(), texts, settings)
    assert (found.read, found.unique, found.selected) == (16, 15, 13)  # the confident KNOWN rows are not selected
    assert [(c.size, c.unique) for c in found.clusters] == [(7, 6), (5, 5)]  # CRYPTO[0] twice
    crypto, pets = found.clusters
    assert set(crypto.examples) <= set(CRYPTO) and len(crypto.examples) == 3
    assert set(pets.examples) <= set(PETS)
    assert crypto.top_words[0] == "crypto" and "crypto" in crypto.name
    assert pets.top_words[0] == "dog" and "dog" in pets.name
    assert {row["text"] for row in found.messages if row["cluster"] == -1} == set(ODD)
    assert [row["cluster"] for row in found.messages] == sorted(row["cluster"] for row in found.messages if
                                                                row["cluster"] >= 0) + [-1, -1]  # fmt: skip


def test_distinctive_words_prefer_words_of_one_cluster() -> None:
    clusters = [["refund my order", "refund please order"], ["order a pizza", "pizza order now"]]
    words = distinctive_words(clusters, [t for c in clusters for t in c], top=2)
    assert words == [["refund", "order"], ["pizza", "order"]]  # "order" is everywhere, "please"/"now" stop words


def test_bad_settings_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="unknown clustering method 'kmeans'"):
        cluster_vectors(np.zeros((3, 2)), DiscoverSettings(method="kmeans"))
    with pytest.raises(ConfigError, match="minimum cluster size must be 2 or more"):
        DiscoverSettings(min_cluster_size=1).check()


def test_files_and_the_page_escape_messages(tmp_path: Path) -> None:
    hostile = "<script>alert(1)</script> crypto"
    predictor = planted()
    predictor.table[hostile] = predictor.table[CRYPTO[1]]
    found = find_intents(predictor, [*CRYPTO, hostile, *PETS], DiscoverSettings(0.6, min_cluster_size=3))
    paths = write_discovery(found, tmp_path / "out")
    page = paths["html"].read_text(encoding="utf-8")
    assert "&lt;script&gt;alert(1)&lt;/script&gt; crypto" in page and "<script>alert" not in page
    assert "Content-Security-Policy" in page
    with paths["clusters"].open(encoding="utf-8", newline="") as handle:
        clusters = list(csv.DictReader(handle))
    assert [row["cluster"] for row in clusters] == ["0", "1"]
    assert "crypto" in clusters[0]["top_words"].split()
    with paths["messages"].open(encoding="utf-8", newline="") as handle:
        messages = list(csv.DictReader(handle))
    assert len(messages) == len(CRYPTO) + 1 + len(PETS)
    assert list(messages[0]) == ["text", "count", "cluster", "cluster_name", "predicted_intent", "confidence",
                                 "similarity", "intent"]  # fmt: skip
    assert hostile in {row["text"] for row in messages}  # the CSV keeps the text as it came


def test_nothing_rejected_gives_empty_files(tmp_path: Path) -> None:
    found = find_intents(planted(), KNOWN, DiscoverSettings(max_confidence=0.5))
    assert (found.selected, found.clusters, found.messages) == (0, [], [])
    assert "nothing to discover" in found.to_text()
    paths = write_discovery(found, tmp_path)
    assert paths["clusters"].read_text(encoding="utf-8") == "cluster,size,unique,name,top_words,examples\n"
    assert "nothing to discover" in render_html(found)


@pytest.fixture(scope="module")
def model_dir(fitted_encoder, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fitted_encoder.save(tmp_path_factory.mktemp("discover") / "model")


def test_discover_command_end_to_end(model_dir: Path, tmp_path: Path) -> None:
    log = tmp_path / "messages.txt"
    log.write_text("\n".join([*CRYPTO, *PETS, *KNOWN]) + "\n", encoding="utf-8")
    out = tmp_path / "discover"
    args = ["discover", str(log), "--model", str(model_dir), "-o", str(out), "--min-cluster-size", "2"]
    result = runner.invoke(app, [*args, "--max-confidence", "1.0"])
    assert result.exit_code == 0, result.output
    assert "13 messages read, 13 distinct; 13 rejected or answered with confidence below 1" in result.output
    for name in ("clusters.csv", "messages.csv", "discover.html"):
        assert (out / name).is_file()
    with (out / "messages.csv").open(encoding="utf-8", newline="") as handle:
        assert sorted(row["text"] for row in csv.DictReader(handle)) == sorted([*CRYPTO, *PETS, *KNOWN])

    # The tiny model rejects nothing (no thresholds): with --max-confidence 0 there is nothing to discover.
    result = runner.invoke(app, [*args, "--max-confidence", "0"])
    assert result.exit_code == 0, result.output
    assert "nothing to discover" in result.output
    assert (out / "messages.csv").read_text(encoding="utf-8").count("\n") == 1


def test_discover_command_errors_are_one_line(model_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "log.txt").write_text("hello\n", encoding="utf-8")
    result = runner.invoke(app, ["discover", str(tmp_path / "log.txt"), "--model", str(model_dir), "--method", "x"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == ["error: unknown clustering method 'x'; choose one of hdbscan, "
                                                  "agglomerative"]  # fmt: skip
    result = runner.invoke(app, ["discover", str(tmp_path / "missing.jsonl"), "--model", str(model_dir)])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [f"error: {tmp_path / 'missing.jsonl'}: no prediction log there "
                                                  "(neither the file nor a rotated missing.jsonl.1)"]  # fmt: skip


def test_embed_gives_the_pooled_vectors_that_score_messages_uses(fitted_encoder) -> None:
    from intentune.messages import score_messages

    texts = ["can I pay with crypto", "where is my order"]
    vectors = fitted_encoder.embed(texts)
    assert vectors.shape == (2, 32)
    np.testing.assert_allclose(vectors, score_messages(fitted_encoder, texts).vectors, rtol=1e-5, atol=1e-6)
    assert not np.allclose(vectors[0], vectors[1])
