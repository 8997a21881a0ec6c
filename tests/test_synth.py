"""Synthetic data: templates, paraphrase generation mechanics (tiny decoder, fake and local endpoint), combining,
splitting, and the augmentation experiment."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

from intentune import Config, DataError, Examples, load_examples, split_examples
from intentune.augment import augment_data
from intentune.cli import app
from intentune.synth import (
    EndpointParaphraser,
    LocalParaphraser,
    clean_candidate,
    combine_examples,
    generate_paraphrases,
)
from intentune.templates import expand_templates, load_templates

from conftest import tiny_config, toy_data

SPEC = """\
max_per_intent: 4
slots:
  product: [TrailRunner 3, AeroBrew Mini, Nimbus hoodie]
intents:
  order_status:
    patterns: ["where is my order {order_id}", "has {order_id} shipped"]
    slots: {order_id: ["#1", "#2", "#3"]}
  product_info:
    patterns: ["price of the {product}"]
"""


def write_spec(tmp_path: Path, text: str = SPEC) -> Path:
    (tmp_path / "spec.yml").write_text(text)
    return tmp_path / "spec.yml"


def test_templates_expand_all_combinations_under_the_cap(tmp_path: Path) -> None:
    rows = expand_templates(load_templates(write_spec(tmp_path)), max_per_intent=10)
    assert rows.counts() == {"order_status": 6, "product_info": 3}
    assert "price of the AeroBrew Mini" in rows.texts and "has #3 shipped" in rows.texts
    assert set(rows.sources) == {"template"}


def test_templates_sample_distinct_rows_at_the_cap_reproducibly(tmp_path: Path) -> None:
    spec = load_templates(write_spec(tmp_path))
    first, again, other = (expand_templates(spec, seed=s) for s in (1, 1, 2))
    assert first.counts() == {"order_status": 4, "product_info": 3}
    assert len(set(first.texts)) == len(first.texts)
    assert first.texts == again.texts and first.texts != other.texts


def test_template_errors_name_intent_pattern_and_slot(tmp_path: Path) -> None:
    bad = write_spec(tmp_path, "intents:\n  a:\n    patterns: ['buy {thing}']\n")
    with pytest.raises(DataError, match=r"intent 'a', pattern 'buy \{thing\}': slot \{thing\} has no values"):
        load_templates(bad)
    with pytest.raises(DataError, match="needs a non-empty 'patterns' list"):
        load_templates(write_spec(tmp_path, "intents:\n  a: {}\n"))


def test_the_documented_template_example_is_valid_and_expands(tmp_path: Path) -> None:
    import yaml

    import intentune.templates

    doc = intentune.templates.__doc__ or ""
    example = doc.split("```yaml\n", 1)[1].split("```", 1)[0]
    assert yaml.safe_load(example)["intents"]["product_info"]["patterns"] == ["do you have the {product} in {colour}"]
    rows = expand_templates(load_templates(write_spec(tmp_path, example)))
    assert rows.counts() == {"order_status": 4, "product_info": 4}
    assert "where is my order #48213" in rows.texts and "do you have the AeroBrew Mini in blue" in rows.texts


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ('1. "Where is my parcel?"\nsecond line', "Where is my parcel?"),
        ("- hi there", "hi there"),
        ("\n\n  (2) ok then  ", "ok then"),
        ("“Curly quotes”", "Curly quotes"),
    ],
)
def test_clean_candidate(raw: str, clean: str) -> None:
    assert clean_candidate(raw) == clean


class FakeParaphraser:
    """Returns scripted candidates; can fail after a number of calls (to test resuming)."""

    def __init__(self, fail_after: int | None = None) -> None:
        self.calls = 0
        self.fail_after = fail_after

    def __call__(self, texts: list[str], n: int) -> list[list[str]]:
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise KeyboardInterrupt
        self.calls += 1
        return [
            [f"1. {t} please", t, f'"{t.upper()} PLEASE"', "Rewrite this message: x", f"well, {t} " + "x" * 300, ""]
            for t in texts
        ]


def test_generation_filters_copies_duplicates_leaks_and_long_lines(tmp_path: Path) -> None:
    seeds = Examples(["hello there", "track my parcel"], ["greeting", "order_status"])
    rows = generate_paraphrases(seeds, FakeParaphraser(), Config().generate, tmp_path / "gen.csv", batch_size=1)
    assert rows.texts == ["hello there please", "track my parcel please"]
    assert rows.labels == ["greeting", "order_status"] and set(rows.sources) == {"generated"}
    again = load_examples(tmp_path / "gen.csv")
    assert again.texts == rows.texts and again.sources == ["generated", "generated"]


def test_generation_resumes_after_an_interruption(tmp_path: Path) -> None:
    texts, labels = toy_data()
    seeds = Examples(texts, labels)
    with pytest.raises(KeyboardInterrupt):
        generate_paraphrases(seeds, FakeParaphraser(fail_after=2), Config().generate, tmp_path / "g.csv", batch_size=4)
    partial = load_examples(tmp_path / "g.csv")
    assert len(partial) == 8  # two batches of four seeds, one kept paraphrase each
    resumed = FakeParaphraser()
    rows = generate_paraphrases(seeds, resumed, Config().generate, tmp_path / "g.csv", batch_size=4)
    assert resumed.calls == 4  # only the 16 seeds not done yet, four per batch
    assert rows.texts[:8] == partial.texts and len(rows) == len(texts)


def test_generation_drops_what_a_classifier_puts_elsewhere(tmp_path: Path) -> None:
    import numpy as np

    class Judge:
        classes_ = ["goodbye", "greeting"]

        def predict_proba(self, texts: list[str]) -> np.ndarray:
            return np.array([[0.95, 0.05] if "hello" in t else [0.4, 0.6] for t in texts])

    seeds = Examples(["hello there", "hey friend"], ["greeting", "greeting"])
    rows = generate_paraphrases(seeds, FakeParaphraser(), Config().generate, tmp_path / "g.csv", classifier=Judge())
    assert rows.texts == ["hey friend please"]


class ScriptedParaphraser:
    """Returns the same candidates for every seed."""

    def __init__(self, candidates: list[str]) -> None:
        self.candidates = candidates

    def __call__(self, texts: list[str], n: int) -> list[list[str]]:
        return [list(self.candidates) for _ in texts]


JUNK = "What do you mean about? What is this message doing?"


def test_generation_drops_what_the_judge_calls_out_of_scope_at_any_confidence(tmp_path: Path) -> None:
    import numpy as np

    class Judge:
        classes_ = ["greeting", "oos", "order_status"]

        def predict_proba(self, texts: list[str]) -> np.ndarray:
            # The junk line: out of scope wins, but below filter_confidence (0.9).
            return np.array([[0.1, 0.6, 0.3] if "mean" in t else [0.05, 0.05, 0.9] for t in texts])

    seeds = Examples(["where is my order"], ["order_status"])
    paraphraser = ScriptedParaphraser([JUNK, "where is my parcel now"])
    rows = generate_paraphrases(seeds, paraphraser, Config().generate, tmp_path / "g.csv", classifier=Judge())
    assert rows.texts == ["where is my parcel now"]
    # Paraphrases of out-of-scope examples may well be judged out of scope: they stay.
    oos_seeds = Examples(["tell me a joke"], ["oos"])
    rows = generate_paraphrases(oos_seeds, paraphraser, Config().generate, tmp_path / "o.csv", classifier=Judge())
    assert rows.texts == [JUNK]


def test_generation_drops_what_a_classifier_rejects_by_its_threshold(tiny_encoder: Path, tmp_path: Path) -> None:
    from intentune import IntentClassifier

    texts, labels = toy_data()
    config = tiny_config(tiny_encoder, epochs=1)
    config.oos.threshold = 0.999  # a fixed threshold that rejects every answer of a barely trained model
    judge = IntentClassifier(config).fit(texts, labels)
    candidates = ["where is my parcel now", "has my order shipped"]
    assert all(d["is_out_of_scope"] for d in judge.predict_details(candidates))
    seeds = Examples(["where is my order"], ["order_status"])
    rows = generate_paraphrases(
        seeds, ScriptedParaphraser(candidates), Config().generate, tmp_path / "g.csv", classifier=judge
    )
    assert rows.texts == []


def test_generation_drops_copies_of_heldout_texts(tmp_path: Path) -> None:
    seeds = Examples(["where is my order"], ["order_status"])
    paraphraser = ScriptedParaphraser(["Track my parcel!", "where is my parcel now"])
    rows = generate_paraphrases(seeds, paraphraser, Config().generate, tmp_path / "g.csv", heldout=["track my parcel"])
    assert rows.texts == ["where is my parcel now"]


@pytest.fixture
def chat_decoder(tiny_decoder: Path, tmp_path: Path) -> Path:
    """The tiny decoder with a minimal chat template."""
    import shutil

    folder = tmp_path / "chat-decoder"
    shutil.copytree(tiny_decoder, folder)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config["chat_template"] = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}assistant:"
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    return folder


def test_local_paraphraser_samples_n_per_text_with_the_tiny_decoder(chat_decoder: Path) -> None:
    cfg = Config().generate
    cfg.backbone, cfg.max_new_tokens = str(chat_decoder), 6
    out = LocalParaphraser(cfg)(["hi", "where is my order please"], 3)
    assert [len(group) for group in out] == [3, 3]
    assert all(isinstance(text, str) for group in out for text in group)


def test_endpoint_paraphraser_speaks_the_openai_chat_api() -> None:
    seen: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append({"path": self.path, "auth": self.headers.get("Authorization"), **body})
            reply = {"choices": [{"message": {"content": f"variant {i}"}} for i in range(body["n"])]}
            data = json.dumps(reply).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        cfg = Config().generate
        cfg.endpoint_url = f"http://127.0.0.1:{server.server_port}/v1"
        cfg.api_key_env = "INTENTUNE_TEST_KEY"
        import os

        os.environ["INTENTUNE_TEST_KEY"] = "secret"
        out = EndpointParaphraser(cfg)(["hi"], 2)
    finally:
        server.shutdown()
        os.environ.pop("INTENTUNE_TEST_KEY", None)
    assert out == [["variant 0", "variant 1"]]
    assert seen[0]["path"] == "/v1/chat/completions" and seen[0]["auth"] == "Bearer secret"
    assert seen[0]["messages"][-1]["content"].endswith("hi") and seen[0]["model"] == cfg.endpoint_model


def test_endpoint_that_cannot_be_reached_gives_a_clear_error() -> None:
    cfg = Config().generate
    cfg.endpoint_url = "http://127.0.0.1:9/v1"
    with pytest.raises(
        DataError, match=r"generation endpoint http://127.0.0.1:9/v1/chat/completions cannot be reached"
    ):
        EndpointParaphraser(cfg)(["hi"], 1)


def test_combine_limits_by_ratio_and_cap_and_drops_copies_of_real_rows() -> None:
    real = Examples(["hi", "hello", "bye"], ["greet", "greet", "leave"])
    synthetic = Examples(
        ["Hi!", "hey", "yo", "howdy", "cya", "later"], ["greet"] * 4 + ["leave"] * 2, sources=["generated"] * 6
    )
    by_ratio = combine_examples(real, synthetic, ratio=1.0)
    assert by_ratio.counts() == {"greet": 4, "leave": 2}  # 2 synthetic greet (2 real), 1 synthetic leave
    assert "Hi!" not in by_ratio.texts  # a copy of a real text
    assert by_ratio.sources[:3] == ["real"] * 3 and set(by_ratio.sources[3:]) == {"generated"}
    capped = combine_examples(real, synthetic, cap_per_intent=1)
    assert capped.counts() == {"greet": 3, "leave": 2}


def test_combine_drops_copies_of_validation_and_test_texts_and_logs_the_counts(
    caplog: pytest.LogCaptureFixture,
) -> None:
    real = Examples(["hi", "bye"], ["greet", "leave"])
    synthetic = Examples(["Hi!", "hey", "Good morning.", "cya"], ["greet"] * 3 + ["leave"], sources=["template"] * 4)
    with caplog.at_level("INFO", logger="intentune.synth"):
        combined = combine_examples(real, synthetic, heldout=["good morning", "see you"])
    assert combined.texts == ["hi", "bye", "hey", "cya"]
    assert "dropped 1 synthetic rows that copy a real training text and 1 that copy a validation or test text" in (
        caplog.text
    )


def test_split_keeps_near_duplicates_together_and_synthetic_rows_in_training() -> None:
    texts = [f"hello number {i}" for i in range(10)] + ["Hello number 0!", "HELLO NUMBER 1"]
    texts += [f"bye number {i}" for i in range(10)]
    labels = ["greet"] * 12 + ["leave"] * 10
    data = Examples(texts + ["synthetic hi"], labels + ["greet"], sources=["real"] * 22 + ["generated"])
    for seed in range(5):
        parts = split_examples(data, {"train": 0.8, "validation": 0.1, "test": 0.1}, seed=seed)
        for group in (("hello number 0", "Hello number 0!"), ("hello number 1", "HELLO NUMBER 1")):
            homes = {name for name, part in parts.items() for t in group if t in part.texts}
            assert len(homes) == 1, (seed, group, homes)
        assert "synthetic hi" in parts["train"].texts


def test_augment_with_templates_and_evaluate(tiny_encoder: Path, toy_files: Path, tmp_path: Path) -> None:
    _, labels = toy_data()
    spec = write_spec(
        tmp_path, "intents:\n  order_status:\n    patterns: ['where is order {n}']\n    slots: {n: [1, 2, 3]}\n"
    )
    config = tiny_config(tiny_encoder, epochs=3)
    result = augment_data(toy_files / "train.csv", tmp_path / "aug", config=config, templates=spec, evaluate=True)
    assert result.combined.counts()["order_status"] == 5 + 3  # one real row per intent held out for validation
    comparison = json.loads((tmp_path / "aug" / "comparison.json").read_text())
    assert comparison["real_rows"] == 20 and comparison["synthetic_rows"] == 3
    assert set(comparison["validation"]["per_intent_f1"]) == set(labels)
    accuracy = comparison["validation"]["accuracy"]
    low, high = accuracy["interval"]
    assert low <= accuracy["difference"] <= high and accuracy["within_noise"] == (low <= 0 <= high)
    assert comparison["bootstrap"] == {"resamples": 1000, "confidence": 0.95, "seed": 13}
    assert all("within_noise" in m for m in comparison["validation"]["per_intent_f1"].values())
    markdown = (tmp_path / "aug" / "comparison.md").read_text()
    assert "| validation (4) | accuracy |" in markdown and "| 95% interval |" in markdown
    saved = load_examples(tmp_path / "aug" / "train_augmented.csv")
    assert saved.sources.count("template") == 3


def test_augment_drops_template_rows_that_repeat_validation_or_test_texts(toy_files: Path, tmp_path: Path) -> None:
    from intentune import write_examples

    write_examples(Examples(["where is order 1", "hello there"], ["order_status", "greeting"]), tmp_path / "val.csv")
    write_examples(Examples(["Where is order 2?", "bye now"], ["order_status", "goodbye"]), tmp_path / "test.csv")
    spec = write_spec(
        tmp_path, "intents:\n  order_status:\n    patterns: ['where is order {n}']\n    slots: {n: [1, 2, 3]}\n"
    )
    config = Config()
    config.data.validation_file, config.data.test_file = str(tmp_path / "val.csv"), str(tmp_path / "test.csv")
    result = augment_data(toy_files / "train.csv", tmp_path / "aug", config=config, templates=spec)
    assert [t for t, s in zip(result.combined.texts, result.combined.sources) if s == "template"] == [
        "where is order 3"
    ]
    # The same through the command's options.
    args = ["data", "augment", str(toy_files / "train.csv"), "-o", str(tmp_path / "cli"), "--templates", str(spec)]
    outcome = CliRunner().invoke(app, [*args, "--validation", str(tmp_path / "val.csv")])
    assert outcome.exit_code == 0, outcome.output
    saved = load_examples(tmp_path / "cli" / "train_augmented.csv")
    templated = [t for t, s in zip(saved.texts, saved.sources) if s == "template"]
    assert templated == ["where is order 2", "where is order 3"]


def test_comparison_markdown_shows_intervals_and_marks_noise() -> None:
    from intentune.augment import comparison_markdown

    def diff(a: float, b: float, low: float, high: float) -> dict:
        return {"real_only": a, "augmented": b, "difference": b - a, "interval": [low, high],
                "within_noise": low <= 0 <= high}  # fmt: skip

    comparison = {
        "real_rows": 100,
        "synthetic_rows": 50,
        "bootstrap": {"resamples": 1000, "confidence": 0.95, "seed": 13},
        "validation": {
            "rows": 40,
            "accuracy": diff(0.8, 0.9, 0.02, 0.18),
            "macro_f1": diff(0.7, 0.75, -0.05, 0.15),
            "per_intent_f1": {"refund": diff(0.4, 0.85, -0.1, 0.9)},
        },
    }
    markdown = comparison_markdown(comparison)
    assert "| validation (40) | accuracy | 0.8000 | 0.9000 | +0.1000 | [+0.0200, +0.1800] |" in markdown
    assert "| validation (40) | macro_f1 | 0.7000 | 0.7500 | +0.0500 | [-0.0500, +0.1500] within noise |" in markdown
    assert "| `refund` | 0.400 | 0.850 | +0.450 | [-0.100, +0.900] within noise |" in markdown
    assert "95% paired bootstrap over the evaluation rows (1000 resamples, seed 13)" in markdown


def test_augment_cli_needs_something_to_add(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["data", "augment", "x.csv", "-o", str(tmp_path)])
    assert result.exit_code == 1 and "nothing to add" in result.output


def test_expand_cli(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["data", "expand", str(write_spec(tmp_path)), "-o", str(tmp_path / "t.csv")])
    assert result.exit_code == 0, result.output
    assert "wrote 7 rows, 2 intents" in result.output
