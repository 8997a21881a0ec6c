"""Export a trained model to ONNX (optionally with int8 weights) for fast CPU inference, and check its parity.

``intentune export MODEL --format onnx [--quantize int8] [--check FILE]`` adds to the model folder:

- ``onnx/model.onnx``: the whole network (backbone, pooling, dense head) as one ONNX graph: ``input_ids`` and
  ``attention_mask`` ``(batch, sequence)`` int64 in, ``logits`` ``(batch, intents)`` and ``pooled``
  ``(batch, hidden)`` (what the dense layer reads; the out-of-scope distance needs it) float32 out; batch and
  sequence sizes are dynamic;
- ``onnx/model.int8.onnx``: the same with int8 weights in its matrix products (ONNX Runtime quantization: dynamic
  for BERT-family encoders, weight-only for decoders and other encoders);
- ``onnx/export.json``: format, opset, whether quantized, library versions, and the parity results of ``--check``.

The graph comes from :mod:`intentune.onnx_graph`, the int8 weights from :mod:`intentune.quantize` (see
:func:`intentune.quantize.int8_method`). Tokenization, calibration and out-of-scope rejection stay in Python and
come from the model folder (:class:`intentune.inference.OnnxPredictor`).
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from ._io import atomic_folder, write_file_atomic
from .errors import ConfigError
from .folder import DISTANCE_FILE, resolve_model_dir
from .inference import ONNX_DIR, ONNX_FILES, OnnxPredictor, Predictor
from .model import IntentClassifier
from .modelcard import run_card_options, write_model_card
from .onnx_graph import OPSET, OUTPUTS, export_graph
from .quantize import INT8_METHODS, int8_method, quantize_int8

logger = logging.getLogger(__name__)

EXPORT_FILE = "export.json"
FORMATS = ("onnx",)
QUANTIZATIONS = ("int8",)
_WEIGHT_SUFFIXES = (".safetensors", ".safetensors.index.json", ".bin")


@dataclass
class ExportResult:
    """What :func:`export_model` wrote.

    Attributes:
        model_dir: the model folder that holds ``onnx/`` (the source model's, or the ``-o`` folder).
        files: the ONNX file of each runtime (``onnx``, ``onnx-int8``).
        info: the contents of ``onnx/export.json``.
    """

    model_dir: Path
    files: dict[str, Path]
    info: dict[str, Any] = field(default_factory=dict)

    def to_text(self) -> str:
        """Files with their sizes, then the parity table when a check ran."""
        lines = [f"{path} ({path.stat().st_size / 2**20:.1f} MiB)" for path in self.files.values()]
        parity = self.info.get("parity")
        if parity:
            lines += ["", f"parity with PyTorch on {parity['source']} ({parity['rows']} texts):", ""]
            lines += _parity_table(parity)
        return "\n".join(lines)


def export_model(
    model_dir: str | Path,
    *,
    fmt: str = "onnx",
    quantize: str | None = None,
    output_dir: str | Path | None = None,
    check_file: str | Path | None = None,
    text_field: str | None = None,
    label_field: str | None = None,
) -> ExportResult:
    """Export a model folder to ONNX (``intentune export``), optionally quantized and checked against PyTorch.

    Args:
        model_dir: the model folder (or the run folder holding it).
        fmt: ``onnx``.
        quantize: ``int8`` to write ``model.int8.onnx`` as well; None for float32 only.
        output_dir: write a model folder for ONNX-only deployment here (the model's ``intentune.json``, config
            and tokenizer files plus ``onnx/``; no PyTorch weights) instead of adding ``onnx/`` to ``model_dir``.
        check_file: a labelled CSV/JSONL file to compare the runtimes on (see :func:`check_parity`); the results
            go into ``export.json``.
        text_field, label_field: the fields of ``check_file``; default: the model's.

    Returns:
        The :class:`ExportResult`.

    Raises:
        ConfigError: for an unknown format or quantization.
        ModelError: if ``model_dir`` is not a loadable model, or the exporter cannot capture its network.
        DataError: if ``check_file`` cannot be read.
    """
    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format {fmt!r}; formats: {', '.join(FORMATS)}")
    if quantize is not None and quantize not in QUANTIZATIONS:
        raise ConfigError(f"unknown quantization {quantize!r}; choose {', '.join(QUANTIZATIONS)} or none")
    source = resolve_model_dir(model_dir)
    target = Path(output_dir) if output_dir is not None else source
    if target.resolve() != source.resolve() and target.exists() and not _replaceable(target):
        raise ConfigError(f"{target} exists and is not a model folder; give a new or empty folder to -o")
    classifier = IntentClassifier.load(source)
    check = None
    if check_file is not None:  # read before the (slow) export, so that a bad file fails fast
        from .data import load_examples

        dcfg = classifier.config.data
        check = load_examples(
            check_file, text_field=text_field or dcfg.text_field, label_field=label_field or dcfg.label_field
        )
    card = run_card_options(source)
    if target.resolve() == source.resolve():
        target = source
        _write_atomic_folder(source / ONNX_DIR, lambda tmp: export_onnx(classifier, tmp, quantize=quantize))
        write_model_card(source, classifier.metadata(), runtime="torch+onnx", **card)
    else:

        def fill(tmp: Path) -> None:
            _write_deployable(source, classifier, tmp, quantize)
            write_model_card(tmp, classifier.metadata(), runtime="onnx", **card)

        _write_atomic_folder(target, fill)
    files = {r: target / ONNX_DIR / name for r, name in ONNX_FILES.items() if (target / ONNX_DIR / name).is_file()}
    result = ExportResult(target, files, _read_info(target))
    if check is not None:
        predictors = {r: OnnxPredictor.load(target, quantized=r == "onnx-int8") for r in files}
        logger.info("checking %s against PyTorch on %d texts", ", ".join(predictors), len(check.texts))
        parity = check_parity(classifier, predictors, check.texts, check.labels)
        result.info["parity"] = {"source": str(check_file), **parity}
        _write_json_atomic(target / ONNX_DIR / EXPORT_FILE, result.info)
    return result


def export_onnx(classifier: IntentClassifier, directory: str | Path, *, quantize: str | None = None) -> dict[str, Any]:
    """Write ``model.onnx`` (and with ``quantize="int8"``, ``model.int8.onnx``) and ``export.json`` into a folder.

    The caller makes the write atomic (:func:`export_model` writes into a temporary folder and renames it).

    Returns:
        What ``export.json`` holds.

    Raises:
        ModelError: if the exporter cannot capture the network.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    logger.info("exporting %s to ONNX (a minute or more for large backbones)", classifier.kind_)
    graph = export_graph(classifier, directory / ONNX_FILES["onnx"])
    if quantize == "int8":
        logger.info("quantizing the weights to int8")
        quantize_int8(directory / ONNX_FILES["onnx"], directory / ONNX_FILES["onnx-int8"], int8_method(classifier))
    info = _export_info(classifier, quantize) | {"opset": graph.pop("opset"), "graph": graph}
    _write_json_atomic(directory / EXPORT_FILE, info)
    return info


def check_parity(
    reference: Predictor,
    candidates: dict[str, Predictor],
    texts: Sequence[str],
    labels: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Compare runtimes on the same texts: how often they answer the same intent, how far apart their
    probabilities are, and (with labels) the accuracy of each and what a candidate loses against the reference.

    Args:
        reference: the PyTorch classifier.
        candidates: the predictors to compare with it, by runtime name.
        texts: the texts.
        labels: their true intents, for accuracies; rows with the out-of-scope label count as usual.

    Returns:
        ``{"rows": n, "torch": {"accuracy"}, "<runtime>": {"agreement", "max_abs_prob_diff", "accuracy",
        "accuracy_loss"}}``; accuracies (shares, not points) only with labels. ``agreement`` compares the answered
        intents (after out-of-scope rejection).
    """
    texts = list(texts)
    ref_probs = reference.predict_proba(texts)
    ref_answers = [d["intent"] for d in reference.predict_details(texts)]
    result: dict[str, Any] = {"rows": len(texts), "torch": {}}
    if labels is not None:
        result["torch"]["accuracy"] = _accuracy(ref_answers, labels)
    for name, predictor in candidates.items():
        probs = predictor.predict_proba(texts)
        answers = [d["intent"] for d in predictor.predict_details(texts)]
        entry = {
            "agreement": _accuracy(answers, ref_answers),
            "max_abs_prob_diff": float(np.abs(probs - ref_probs).max()) if len(texts) else 0.0,
        }
        if labels is not None:
            entry["accuracy"] = _accuracy(answers, labels)
            entry["accuracy_loss"] = round(result["torch"]["accuracy"] - entry["accuracy"], 6)
        result[name] = entry
    return result


# ------------------------------------------------------------------------------------------------ internals
def _export_info(classifier: IntentClassifier, quantize: str | None) -> dict[str, Any]:
    import onnx
    import onnxruntime
    import torch

    return {
        "format": "onnx",
        "opset": OPSET,
        "quantized": quantize,
        "int8_method": INT8_METHODS[int8_method(classifier)] if quantize else None,
        "files": {r: name for r, name in ONNX_FILES.items() if r == "onnx" or quantize},
        "inputs": ["input_ids", "attention_mask"],
        "outputs": list(OUTPUTS),
        "backbone": classifier.config.model.backbone,
        "kind": classifier.kind_,
        "versions": {
            "intentune": __version__,
            "torch": torch.__version__.split("+")[0],
            "onnx": onnx.__version__,
            "onnxruntime": onnxruntime.__version__,
        },
        "parity": None,
    }


def _write_deployable(source: Path, classifier: IntentClassifier, folder: Path, quantize: str | None) -> None:
    """A model folder without PyTorch weights: metadata, config and tokenizer files, the out-of-scope distance
    model if any, and ``onnx/``."""
    for item in source.iterdir():
        if item.is_file() and (item.name == DISTANCE_FILE or not item.name.endswith(_WEIGHT_SUFFIXES)):
            shutil.copy2(item, folder / item.name)
    export_onnx(classifier, folder / ONNX_DIR, quantize=quantize)


def _replaceable(folder: Path) -> bool:
    """An ``-o`` folder may be replaced when it is an empty folder or an intentune model folder."""
    from .folder import META_FILE

    return folder.is_dir() and (not any(folder.iterdir()) or (folder / META_FILE).is_file())


def _write_atomic_folder(target: Path, fill: Any) -> None:
    """Fill a temporary sibling folder, then swap it in for ``target`` (never a half-written folder)."""
    with atomic_folder(target) as tmp:
        fill(tmp)


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    write_file_atomic(path, json.dumps(data, indent=2) + "\n")


def _read_info(model_dir: Path) -> dict[str, Any]:
    path = model_dir / ONNX_DIR / EXPORT_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _accuracy(answers: Sequence[str], truth: Sequence[str]) -> float:
    if not truth:
        return 0.0
    return round(sum(a == t for a, t in zip(answers, truth)) / len(truth), 6)


def _parity_table(parity: dict[str, Any]) -> list[str]:
    runtimes = [r for r in ONNX_FILES if r in parity]
    rows = [
        "| runtime | accuracy | accuracy loss | agreement with torch | max prob. difference |",
        "|---|---:|---:|---:|---:|",
    ]
    torch_acc = parity["torch"].get("accuracy")
    rows.append(f"| torch | {_fmt(torch_acc)} | | | |")
    for r in runtimes:
        e = parity[r]
        rows.append(
            f"| {r} | {_fmt(e.get('accuracy'))} | {_fmt(e.get('accuracy_loss'))} | {e['agreement']:.4f} "
            f"| {e['max_abs_prob_diff']:.2e} |"
        )
    return rows


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"
