"""The model card: ``README.md`` in Hugging Face's model-card layout, so a model folder explains itself wherever it
goes. :func:`render_model_card` is a pure function of ``intentune.json``, the run manifest and the evaluation; each
section falls back to a plain sentence when its input is missing. Data text is escaped for Markdown tables and the
YAML header comes from ``yaml.safe_dump``, so neither breaks on any intent or file name.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from ._io import write_file_atomic

CARD_FILE = "README.md"
# Where the bundled backbones come from on the Hugging Face Hub (``base_model`` wants a hub id).
RUNTIMES = {
    "torch": "PyTorch",
    "onnx": "ONNX Runtime (an ONNX-only folder: no PyTorch weights)",
    "torch+onnx": "PyTorch, or ONNX Runtime with the `onnx/` export",
}
NOT_EVALUATED = "Not evaluated yet. `intentune evaluate path/to/this/folder test.csv` scores it on a labelled file."


def render_model_card(
    metadata: Mapping[str, Any],
    *,
    manifest: Mapping[str, Any] | None = None,
    metrics: Mapping[str, Any] | None = None,
    eval_name: str | None = None,
    runtime: str = "torch",
    intent_counts: Mapping[str, int] | None = None,
    license: str | None = None,
) -> str:
    """The model card of a model folder, as Markdown with a YAML metadata header.

    Args:
        metadata: the model's ``intentune.json`` (what ``IntentClassifier.metadata()`` returns).
        manifest: the run's ``manifest.json`` (:func:`intentune.manifest.build_manifest`): data file hashes and
            rows per split; None leaves them out.
        metrics: the evaluation (:meth:`EvalReport.to_dict`, or ``metrics.json``); None: "not evaluated yet".
        eval_name: the evaluated file or split; default: the name of ``metrics["eval_file"]`` if there is one.
        runtime: what runs the folder: ``torch``, ``onnx`` (an ONNX-only folder) or ``torch+onnx``.
        intent_counts: training rows per intent, when known.
        license: the model's license id (``apache-2.0``); None leaves the field out.

    Returns:
        The whole ``README.md`` text.

    Raises:
        ValueError: for an unknown ``runtime``.
    """
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown runtime {runtime!r}; choose {', '.join(RUNTIMES)}")
    if metrics is not None and eval_name is None:
        eval_name = Path(str(metrics.get("eval_file") or metrics.get("evaluated_on") or "evaluation data")).name
    header = _header(metadata, metrics, eval_name, runtime, license)
    sections = [
        _summary(metadata, runtime),
        _usage(runtime),
        _intents(metadata, intent_counts, metrics),
        _training_data(metadata, manifest),
        _evaluation(metrics, eval_name),
        _confidence(metadata),
        _settings(metadata),
        _limits(metadata),
    ]
    return f"---\n{yaml.safe_dump(header, sort_keys=False, allow_unicode=True)}---\n\n" + "\n\n".join(sections) + "\n"


def write_model_card(model_dir: str | Path, metadata: Mapping[str, Any], **options: Any) -> Path:
    """Write :func:`render_model_card`'s card as ``README.md`` into a model folder, replacing any.

    Args:
        model_dir: the model folder (written atomically: readers see the old card or the new one).
        metadata: the model's ``intentune.json``.
        **options: the keyword arguments of :func:`render_model_card`.

    Returns:
        The card's path.
    """
    path = Path(model_dir) / CARD_FILE
    write_file_atomic(path, render_model_card(metadata, **options))
    return path


def run_card_options(model_dir: str | Path) -> dict[str, Any]:
    """The card's ``manifest``, ``metrics`` and ``intent_counts`` from the run folder holding ``model_dir`` (a
    ``model/`` folder written by ``intentune train``); empty for a model folder outside a run."""
    model_dir = Path(model_dir)
    if model_dir.name != "model":
        return {}
    options: dict[str, Any] = {}
    for key, name in (("manifest", "manifest.json"), ("metrics", "metrics.json")):
        try:
            options[key] = json.loads((model_dir.parent / name).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
    counts = options.get("manifest", {}).get("splits", {}).get("train", {}).get("intents")
    if isinstance(counts, dict):
        options["intent_counts"] = counts
    return options


def base_model(backbone: str) -> str:
    """The hub id of a backbone: bundled names map to their source, hub ids stay, local folders give their name."""
    from .backbones import BUNDLED

    if backbone in BUNDLED:
        return BUNDLED[backbone].hub_id
    if re.fullmatch(r"[\w-][\w.-]*/[\w.-]+", backbone):
        return backbone
    return Path(backbone).name or backbone


def _header(
    meta: Mapping[str, Any], metrics: Any, eval_name: str | None, runtime: str, lic: str | None
) -> dict[str, Any]:
    header: dict[str, Any] = {"library_name": "intentune", "pipeline_tag": "text-classification"}
    tags = ["intent-classification", str(meta.get("kind", "unknown"))]
    header["tags"] = tags + ["onnx"] if "onnx" in runtime else tags
    header["base_model"] = base_model(str(meta.get("backbone", "")))
    if lic:
        header["license"] = lic
    if metrics is not None:
        values = {"accuracy": metrics.get("accuracy"), "f1": _macro_f1(metrics)}
        names = {"accuracy": {"name": "Accuracy"}, "f1": {"name": "Macro F1", "args": {"average": "macro"}}}
        scores = [{"type": t, **names[t], "value": round(float(v), 4)} for t, v in values.items() if v is not None]
        result = {
            "task": {"type": "text-classification", "name": "Intent classification"},
            "dataset": {"name": eval_name, "type": eval_name},
            "metrics": scores,
        }
        header["model-index"] = [{"name": f"intentune-{header['base_model'].split('/')[-1]}", "results": [result]}]
    return header


def _summary(meta: Mapping[str, Any], runtime: str) -> str:
    n, backbone = len(meta.get("labels", [])), _code(meta.get("backbone", "?"))
    return (
        f"# Intent classifier on {backbone}\n\nAn intentune intent classifier: the {meta.get('kind', '?')} backbone "
        f"{backbone} with a dense layer of one unit per intent and a softmax on its {meta.get('pooling', '?')}-pooled "
        f"hidden state, fine-tuned to tell {n} intents apart. Runtime: {RUNTIMES[runtime]}. Written by intentune "
        f"{meta.get('intentune_version', '?')} (model format {meta.get('format_version', '?')})."
    )


def _usage(runtime: str) -> str:
    name, load = ("IntentClassifier", "IntentClassifier.load") if runtime != "onnx" else ("load_predictor",) * 2
    where = "`head.safetensors`" if runtime != "onnx" else "`onnx/model.onnx` (there are no PyTorch weights)"
    return (
        f"## How to use\n\nWith intentune installed, in Python:\n\n```python\nfrom intentune import {name}\n\n"
        f'model = {load}("path/to/this/folder")\nmodel.predict(["where is my parcel?"])          # intents\n'
        'model.predict_details(["where is my parcel?"])  # intent, confidence, is_out_of_scope\n```\n\n'
        '`intentune.load_predictor(folder, runtime="auto")` loads the fastest runtime the folder has. From the shell:'
        '\n\n```bash\nintentune predict path/to/this/folder "where is my parcel?" --top-k 2\n'
        "intentune serve path/to/this/folder   # HTTP API and chat page on http://127.0.0.1:8000\n```\n\n"
        "This folder is NOT a transformers `pipeline` / `AutoModelForSequenceClassification` checkpoint: the "
        f"classifier is in {where}, which transformers does not read, and `config.json` names intentune as its "
        "model type so that transformers refuses the folder rather than answer with a randomly initialised "
        "classification head. Loading it with intentune runs no code from the folder (no pickles; "
        "`trust_remote_code` stays off)."
    )


def _intents(meta: Mapping[str, Any], counts: Mapping[str, int] | None, metrics: Any) -> str:
    labels, report = list(meta.get("labels", [])), (metrics or {}).get("report", {})
    columns = ["intent", *(["training rows"] if counts else []), *(["evaluation rows"] if report else [])]
    rows = [[_code(x)] for x in labels]
    for row, x in zip(rows, labels):
        row += [str(counts.get(x, "–"))] if counts else []
        row += [str((report.get(x) or {}).get("support", "–"))] if report else []
    return f"## Intents\n\n{len(labels)} intents, in the model's output order:\n\n" + _table(columns, rows)


def _training_data(meta: Mapping[str, Any], manifest: Mapping[str, Any] | None) -> str:
    if manifest is None:
        data = meta.get("config", {}).get("data", {})
        roles = {"training": "train_file", "validation": "validation_file", "test": "test_file"}
        files = [f"{role} {_code(Path(str(data[key])).name)}" for role, key in roles.items() if data.get(key)]
        named = f"Data files (from the config): {', '.join(files)}. " if files else ""
        return f"## Training data\n\n{named}Their hashes and row counts are in the run's `manifest.json`."
    files, splits = manifest.get("data_files", {}), manifest.get("splits", {})
    rows = []
    for role in dict.fromkeys([*splits, *files]):  # the splits' order, then files without a split
        entry = files.get(role) or {}
        name = _code(Path(str(entry["path"])).name) if entry.get("path") else "split off the training file"
        sha = _code(entry["sha256"]) if entry.get("sha256") else "–"
        rows.append([role, name, sha, str((splits.get(role) or {}).get("rows", "–"))])
    seeds = f"seed {manifest.get('seed', '?')}, split seed {manifest.get('split_seed', '?')}"
    table = _table(["split", "file", "sha256", "rows used"], rows)
    return f"## Training data\n\n{table}\n\nRun of {manifest.get('created', '?')}, {seeds}."


def _evaluation(metrics: Mapping[str, Any] | None, eval_name: str | None) -> str:
    if metrics is None:
        return f"## Evaluation\n\n{NOT_EVALUATED}"
    report = metrics.get("report", {})
    labels = metrics.get("labels") or [k for k, v in report.items() if isinstance(v, dict) and not k.endswith(" avg")]
    support = (report.get("macro avg") or {}).get("support", "?")
    if metrics.get("multi_label"):
        support = sum((metrics.get("rows") or {}).values())  # the macro average counts intents, not rows
    scores = f"accuracy {_num(metrics.get('accuracy'))}, macro F1 {_num(_macro_f1(metrics))}"
    if metrics.get("multi_label"):
        scores = (f"subset accuracy (every intent of a row right) {_num(metrics.get('subset_accuracy'))}, micro F1 "
                  f"{_num((metrics.get('micro') or {}).get('f1'))}, macro F1 {_num(_macro_f1(metrics))}")  # fmt: skip
    lines = [
        f"## Evaluation\n\nOn {_code(eval_name or 'evaluation data')} ({support} examples): {scores}.",
        _table(
            ["intent", "precision", "recall", "F1", "support"], [[_code(x), *_scores(report.get(x))] for x in labels]
        ),
    ]
    if (cal := metrics.get("calibration")) and "ece" in cal:
        cells = cal.get("cells", "?")
        lines.append(f"Expected calibration error over {cells} (row, intent) cells: {_num(cal['ece'])}.")
    elif cal:
        lines.append(
            f"Expected calibration error: {_num(cal.get('ece_before'))} raw, {_num(cal.get('ece_after'))} calibrated."
        )
    if oos := metrics.get("oos"):
        keys = ("in_scope_accuracy", "oos_precision", "oos_recall", "oos_f1")
        rows = [[name, *(_num((r or {}).get(k)) for k in keys)] for name, r in
                (("with rejection", oos), ("without rejection", oos.get("without_rejection")))]  # fmt: skip
        lines.append(
            f"Out of scope ({_code(oos.get('label', 'oos'))}; {oos.get('in_scope_support', '?')} in-scope and "
            f"{oos.get('oos_support', '?')} out-of-scope examples):\n\n"
            + _table(["", "in-scope accuracy", "OOS precision", "OOS recall", "OOS F1"], rows)
        )
    return "\n\n".join(lines)


def _confidence(meta: Mapping[str, Any]) -> str:
    label, thresholds = _code(meta.get("config", {}).get("oos", {}).get("label", "oos")), meta.get("oos_thresholds")
    text = (
        f"## Calibration and out-of-scope\n\nTemperature {_num(meta.get('temperature', 1.0))}: probabilities are the "
        "softmax of the logits divided by it (1: not calibrated). "
    )
    if not thresholds:
        return text + f"Rejection is off: every message gets an intent ({label} only if it is one of them)."
    glob, own = thresholds.get("global"), len(thresholds.get("per_intent") or {})
    if thresholds.get("score") == "distance":
        rule = f"its distance from the nearest intent (`oos_distance.safetensors`) is above {_num(glob)}"
    else:
        rule = f"its calibrated confidence is below {_num(glob)}"
    per_intent = f" Per-intent thresholds replace it for {own} of the intents." if own else ""
    return (
        text
        + f"A prediction is rejected, and answered {_code(thresholds.get('label', 'oos'))}, when {rule}.{per_intent}"
    )


def _settings(meta: Mapping[str, Any]) -> str:
    train, summary = meta.get("config", {}).get("train", {}), meta.get("train_summary", {})
    rows = [
        ["backbone", _code(meta.get("backbone", "?"))], ["kind", meta.get("kind", "?")],
        ["pooling", meta.get("pooling", "?")], ["max length (tokens)", meta.get("max_length", "?")],
        ["epochs (most; trained)", f"{train.get('epochs', '?')}; {summary.get('epochs', '?')}"],
        ["learning rate", train.get("learning_rate", "the backbone's default")],
        ["batch size", train.get("batch_size", "?")], ["optimizer", train.get("optimizer", "?")],
        ["seed", train.get("seed", "?")],
    ]  # fmt: skip
    table = _table(["setting", "value"], [[k, str(v)] for k, v in rows])
    return f"## Training settings\n\n{table}\n\nThe full config is in `intentune.json`."


def _limits(meta: Mapping[str, Any]) -> str:
    outside = (
        "Messages outside them are answered out of scope only through the rejection above, which misses some."
        if meta.get("oos_thresholds")
        else "Rejection is off, so a message outside them still gets one of them, often confidently."
    )
    return (
        f"## Intended use and limits\n\n- Trained for these {len(meta.get('labels', []))} intents only. {outside}\n"
        "- It knows the language, domain and style of its training data; other languages, topics or longer texts "
        f"(cut at {meta.get('max_length', '?')} tokens) are likely to be answered worse.\n"
        "- Confidences are estimates (calibrated on validation data when the temperature is not 1), not guarantees: "
        "route low-confidence answers to a human, and do not let it decide alone about people.\n"
        f"- It inherits the biases and license terms of its base model {_code(meta.get('backbone', '?'))} and of "
        "its training data."
    )


def _macro_f1(metrics: Mapping[str, Any]) -> float | None:
    return (metrics.get("report", {}).get("macro avg") or {}).get("f1-score")


def _scores(row: Mapping[str, Any] | None) -> list[str]:
    """Precision, recall, F1 and support of one row of a ``classification_report`` dict."""
    row = row or {}
    return [*(_num(row.get(k)) for k in ("precision", "recall", "f1-score")), str(row.get("support", "–"))]


def _num(value: Any) -> str:
    return "–" if value is None else f"{float(value):.4f}"


def _code(text: Any) -> str:
    """``text`` as a one-line inline code span, its fence longer than any backtick run inside."""
    text = re.sub(r"\s+", " ", str(text))
    fence = "`" * (max((len(r) for r in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _table(columns: list[str], rows: list[list[str]]) -> str:
    """A Markdown table; a ``|`` inside a cell (code spans included) is escaped, so it never starts a column."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    return "\n".join(lines + ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows])


__all__ = ["CARD_FILE", "base_model", "render_model_card", "write_model_card"]
