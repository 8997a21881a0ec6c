"""The model card (``README.md`` in every model folder): its YAML header parses, every section is there with or
without a manifest and metrics, and text from the data cannot break its tables or its header."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from intentune import IntentClassifier, evaluate_classifier
from intentune.manifest import build_manifest
from intentune.modelcard import CARD_FILE, base_model, render_model_card, write_model_card

from conftest import toy_data

LABELS = ["goodbye", "greet|ing", "order_status"]
SHA = "ab" * 32
NOT_TRANSFORMERS = "This folder is NOT a transformers `pipeline` / `AutoModelForSequenceClassification` checkpoint"


def _metadata(labels: list[str] = LABELS, **changes: Any) -> dict[str, Any]:
    """A dict shaped like ``intentune.json``."""
    meta = {
        "format_version": 1,
        "intentune_version": "0.1.0",
        "labels": labels,
        "backbone": "minilm-l6",
        "kind": "encoder",
        "pooling": "mean",
        "max_length": 64,
        "lowercase": False,
        "remove_special_chars": False,
        "temperature": 1.25,
        "oos_thresholds": {"label": "oos", "score": "confidence", "global": 0.41, "per_intent": {}, "fit": {}},
        "config": {
            "data": {"train_file": "data/train.csv", "test_file": "data/test.csv"},
            "model": {"backbone": "minilm-l6", "max_length": 64},
            "train": {"seed": 42, "epochs": 5, "batch_size": 16, "learning_rate": 3e-5, "optimizer": "adamw"},
            "oos": {"label": "oos", "reject": True},
        },
        "train_summary": {"steps": 40, "epochs": 4.0},
        "history": [],
    }
    return meta | changes


def _metrics(labels: list[str] = LABELS) -> dict[str, Any]:
    """A dict shaped like ``EvalReport.to_dict()``."""
    rows = {x: {"precision": 0.9, "recall": 0.8, "f1-score": 0.85, "support": 4} for x in labels}
    average = {"precision": 0.9, "recall": 0.8, "f1-score": 0.8123, "support": 4 * len(labels)}
    report = rows | {"accuracy": 0.875, "macro avg": average, "weighted avg": average}
    return {"accuracy": 0.875, "report": report, "labels": labels, "confusion_matrix": [], "num_errors": 1}


def _manifest() -> dict[str, Any]:
    """A dict shaped like ``build_manifest``'s, with the validation rows split off the training file."""
    return {
        "created": "2026-11-27T10:00:00+00:00",
        "seed": 42,
        "split_seed": 13,
        "data_files": {"train": {"path": "data/train.csv", "sha256": SHA, "bytes": 1234}},
        "splits": {"train": {"rows": 90, "sha256": "0" * 64, "row_ids": []}, "validation": {"rows": 10}},
    }


def _header(card: str) -> dict[str, Any]:
    assert card.startswith("---\n")
    return yaml.safe_load(card.split("\n---\n", 1)[0].removeprefix("---\n"))


def _tables(card: str) -> list[list[list[str]]]:
    """Every Markdown table of the card, as rows of cells split at unescaped ``|``."""
    tables = []
    for block in card.split("\n\n"):
        lines = [line for line in block.splitlines() if line.startswith("|")]
        if lines:
            tables.append([re.split(r"(?<!\\)\|", line)[1:-1] for line in lines])
    return tables


def test_header_parses_and_holds_the_hub_fields() -> None:
    card = render_model_card(_metadata(), metrics=_metrics(), eval_name="test.csv", license="apache-2.0")
    header = _header(card)
    assert header["library_name"] == "intentune"
    assert header["pipeline_tag"] == "text-classification"
    assert header["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert header["tags"] == ["intent-classification", "encoder"]
    assert header["license"] == "apache-2.0"
    result = header["model-index"][0]["results"][0]
    assert result["task"]["type"] == "text-classification"
    assert result["dataset"]["name"] == "test.csv"
    assert {m["type"]: m["value"] for m in result["metrics"]} == {"accuracy": 0.875, "f1": 0.8123}


def test_every_intent_and_section_appears() -> None:
    card = render_model_card(_metadata(), metrics=_metrics(), intent_counts={"goodbye": 7})
    for label in LABELS:
        assert label.replace("|", "\\|") in card
    for title in ("How to use", "Intents", "Training data", "Evaluation", "Calibration and out-of-scope",
                  "Training settings", "Intended use and limits"):  # fmt: skip
        assert f"\n## {title}\n" in card
    assert "| `goodbye` | 7 | 4 |" in card
    assert "IntentClassifier.load(" in card and "intentune predict" in card and "intentune serve" in card
    assert "confidence is below 0.4100" in card and "Temperature 1.2500" in card
    assert "| learning rate | 3e-05 |" in card and "| seed | 42 |" in card


def test_training_files_come_with_their_sha256() -> None:
    card = render_model_card(_metadata(), manifest=_manifest())
    assert f"| train | `train.csv` | `{SHA}` | 90 |" in card
    assert "| validation | split off the training file | – | 10 |" in card


def test_a_pipe_in_an_intent_name_adds_no_column() -> None:
    card = render_model_card(_metadata(), manifest=_manifest(), metrics=_metrics(), intent_counts={"greet|ing": 3})
    tables = _tables(card)
    assert len(tables) >= 4
    for table in tables:
        assert len({len(row) for row in table}) == 1, table
    assert "| `greet\\|ing` | 3 | 4 |" in card


def test_without_metrics_or_manifest_the_card_says_so() -> None:
    card = render_model_card(_metadata(oos_thresholds=None))
    assert "Not evaluated yet" in card
    assert "model-index" not in _header(card) and "license" not in _header(card)
    assert "Data files (from the config): training `train.csv`, test `test.csv`" in card
    assert "Rejection is off" in card


def test_a_multi_label_evaluation_names_its_own_scores() -> None:
    metrics = _metrics() | {"multi_label": True, "subset_accuracy": 0.75, "micro": {"f1": 0.8642},
                            "rows": {"single_intent": 7, "multi_intent": 3, "out_of_scope": 2},
                            "calibration": {"bins": 10, "cells": 36, "ece": 0.0412}}  # fmt: skip
    card = render_model_card(_metadata(), metrics=metrics, eval_name="test.csv")
    assert "(12 examples): subset accuracy (every intent of a row right) 0.7500, micro F1 0.8642" in card
    assert "Expected calibration error over 36 (row, intent) cells: 0.0412." in card


def test_the_not_a_transformers_checkpoint_sentence_is_there() -> None:
    for runtime in ("torch", "onnx", "torch+onnx"):
        card = render_model_card(_metadata(), runtime=runtime)
        assert NOT_TRANSFORMERS in card and "runs no code from the folder" in card
    assert "load_predictor(" in card and "onnx" in _header(card)["tags"]
    with pytest.raises(ValueError, match="unknown runtime 'tflite'"):
        render_model_card(_metadata(), runtime="tflite")


def test_odd_text_keeps_the_header_parsing() -> None:
    name = "null: yes # |\n---\n'quoted'"
    card = render_model_card(_metadata(backbone="org/model"), metrics=_metrics(), eval_name=name)
    header = _header(card)
    assert header["base_model"] == "org/model"
    assert header["model-index"][0]["results"][0]["dataset"]["name"] == name
    assert base_model("/home/someone/backbones/tiny") == "tiny" and base_model("./local/x") == "x"


def test_a_real_classifier_gets_a_card_and_still_loads(
    fitted_encoder: IntentClassifier, toy_files: Path, tmp_path: Path
) -> None:
    texts, labels = toy_data()
    train_file = toy_files / "train.csv"
    manifest = build_manifest(fitted_encoder.config, {"train": str(train_file)}, {"train": (texts, labels)})
    metrics = json.loads(json.dumps(evaluate_classifier(fitted_encoder, texts, labels).to_dict()))
    folder = fitted_encoder.save(tmp_path / "model")
    meta = json.loads((folder / "intentune.json").read_text(encoding="utf-8"))
    path = write_model_card(folder, meta, manifest=manifest, metrics=metrics, eval_name=train_file.name)
    card = path.read_text(encoding="utf-8")
    assert path == folder / CARD_FILE
    assert _header(card)["model-index"][0]["results"][0]["metrics"][0]["value"] == round(metrics["accuracy"], 4)
    assert manifest["data_files"]["train"]["sha256"] in card
    assert all(f"`{label}`" in card for label in fitted_encoder.classes_)
    assert IntentClassifier.load(folder).predict(texts[:2]) == fitted_encoder.predict(texts[:2])
