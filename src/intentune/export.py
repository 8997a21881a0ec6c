"""Export a trained model to ONNX (optionally with int8 weights) for fast CPU inference, and check its parity.

``intentune export MODEL --format onnx [--quantize int8] [--check FILE]`` adds to the model folder:

- ``onnx/model.onnx``: the whole network (backbone, pooling, dense head) as one ONNX graph: ``input_ids`` and
  ``attention_mask`` ``(batch, sequence)`` int64 in, ``logits`` ``(batch, intents)`` and ``pooled``
  ``(batch, hidden)`` (what the dense layer reads; the out-of-scope distance needs it) float32 out; batch and
  sequence sizes are dynamic;
- ``onnx/model.int8.onnx``: the same with int8 weights in its matrix products (ONNX Runtime quantization: dynamic
  for BERT-family encoders, weight-only for decoders and other encoders; see :func:`int8_method`);
- ``onnx/export.json``: format, opset, whether quantized, library versions, and the parity results of ``--check``.

The graph is :class:`intentune.model.IntentNet` itself, so decoders get the same position ids and last-token pooling
as in PyTorch. BERT-family encoders are traced by the TorchScript exporter with eager attention and then fused by
ONNX Runtime's transformer optimizer (one ``Attention`` node per layer, ``SkipLayerNormalization``, ``BiasGelu``,
``EmbedLayerNormalization``; see :func:`_export_fused_encoder`): the graph ``torch.export`` writes for them keeps
attention as a dozen small nodes that the optimizer cannot fuse. Everything else, and any encoder whose fused graph
does not reproduce PyTorch's logits, is captured by ``torch.export`` (the ``dynamo=True`` exporter). Tokenization,
calibration and out-of-scope rejection stay in Python and come from the model folder
(:class:`intentune.inference.OnnxPredictor`).
"""

from __future__ import annotations

import copy
import json
import logging
import shutil
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from ._io import atomic_folder, write_file_atomic
from .backbones import ENCODER
from .errors import ConfigError, ModelError
from .folder import DISTANCE_FILE, resolve_model_dir
from .inference import ONNX_DIR, ONNX_FILES, OnnxPredictor, Predictor
from .model import IntentClassifier
from .modelcard import run_card_options, write_model_card

logger = logging.getLogger(__name__)

OPSET = 20
EXPORT_FILE = "export.json"
FORMATS = ("onnx",)
QUANTIZATIONS = ("int8",)
# A batch of two texts of different lengths, so that no dimension of the traced example is 0 or 1 (which
# torch.export would specialise on) and the padding path is traced.
EXAMPLE_TEXTS = ("where is my order and when will it arrive", "hello there")
# More texts for the fused graph's check against PyTorch: one word, and one long enough to be truncated.
PARITY_TEXTS = ("refund", "i ordered two pairs of shoes last week and only one arrived, " * 8)
# Encoders whose graphs ONNX Runtime's "bert" optimizer knows (Optimum maps these model types to it as well).
FUSABLE_ENCODERS = ("bert", "roberta", "xlm-roberta", "camembert", "electra")
FUSED_OPSET = 17  # the TorchScript exporter's best-tested opset
WEIGHT_ONLY, DYNAMIC = "weight-only", "dynamic"
INT8_METHODS = {
    WEIGHT_ONLY: "weight-only MatMulNBits, 8 bits, symmetric, blocks of 32, accuracy level 4",
    DYNAMIC: "dynamic, QInt8 weights per output channel, reduce_range, MatMul, Gemm and fused Attention",
}
_WEIGHT_SUFFIXES = (".safetensors", ".safetensors.index.json", ".bin")
OUTPUTS = ["logits", "pooled"]


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
    graph = _export_graph(classifier, directory / ONNX_FILES["onnx"])
    if quantize == "int8":
        logger.info("quantizing the weights to int8")
        _quantize_int8(directory / ONNX_FILES["onnx"], directory / ONNX_FILES["onnx-int8"], int8_method(classifier))
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
def _export_graph(classifier: IntentClassifier, path: Path) -> dict[str, Any]:
    """Save ``classifier.net_`` as one ONNX file (weights inside): fused for BERT-family encoders when the fused
    graph matches PyTorch, else captured by ``torch.export``. Returns how (for ``export.json``)."""
    if classifier.kind_ == ENCODER:
        try:
            return _export_fused_encoder(classifier, path)
        except Exception as exc:  # noqa: BLE001 - any failure of the optional path falls back to torch.export
            logger.info("fused encoder graph not used (%s); exporting with torch.export", exc)
    _export_dynamo(classifier, path)
    return {"exporter": "torch.export (dynamo)", "opset": OPSET, "fused": {}}


def _export_fused_encoder(classifier: IntentClassifier, path: Path) -> dict[str, Any]:
    """Trace a BERT-family encoder with the TorchScript exporter (eager attention, so attention is the plain
    MatMul-Softmax-MatMul pattern) and let ONNX Runtime's transformer optimizer fuse it; keep the result only if
    its logits match PyTorch's on texts of different lengths (padding included) within 1e-4.

    Raises:
        ValueError: for a backbone the optimizer does not know, or a fused graph that does not match.
    """
    import onnxruntime as ort
    import torch
    from onnxruntime.transformers.optimizer import optimize_model

    from .preprocess import pad_batch
    from .train.runtime import set_attention

    net = copy.deepcopy(classifier.net_).cpu().eval()
    config = getattr(net.backbone, "config", None)
    model_type = getattr(config, "model_type", None)
    if model_type not in FUSABLE_ENCODERS:
        raise ValueError(f"no fusion patterns for model type {model_type!r}")
    if set_attention(net, "eager") is None:
        raise ValueError(f"cannot switch {model_type!r} to the plain attention")
    net.backbone = _zero_segments(net.backbone)  # a copy: the classifier's own network is untouched
    net = _with_pooled(net)
    ids = classifier.token_ids(list(EXAMPLE_TEXTS) + list(PARITY_TEXTS))
    example = pad_batch(ids[: len(EXAMPLE_TEXTS)], classifier.pad_id(), side=classifier.tokenizer_.padding_side)
    with tempfile.TemporaryDirectory() as tmp:
        traced = Path(tmp) / "traced.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes
            torch.onnx.export(
                net, (example["input_ids"], example["attention_mask"]), str(traced), dynamo=False,
                opset_version=FUSED_OPSET, input_names=["input_ids", "attention_mask"], output_names=OUTPUTS,
                dynamic_axes={name: {0: "batch", 1: "sequence"} for name in ("input_ids", "attention_mask")},
            )  # fmt: skip
        previous = logging.root.manager.disable
        logging.disable(logging.INFO)  # the optimizer's modules log each fusion and the saved path at INFO
        try:
            optimized = optimize_model(
                str(traced), model_type="bert", num_heads=config.num_attention_heads,
                hidden_size=config.hidden_size,
                opt_level=0,  # the optimizer's fusions only; ONNX Runtime adds its own when a session starts
            )  # fmt: skip
            fused = {name: count for name, count in optimized.get_fused_operator_statistics().items() if count}
            optimized.save_model_to_file(str(path))
        finally:
            logging.disable(previous)
    batch = pad_batch(ids, classifier.pad_id(), side=classifier.tokenizer_.padding_side)
    reference = classifier.net_
    if next(reference.parameters()).device.type != "cpu":  # compare on a CPU copy; the classifier keeps its device
        reference = copy.deepcopy(reference).cpu()
    with torch.no_grad():
        expected = [t.numpy() for t in reference(batch["input_ids"], batch["attention_mask"], return_pooled=True)]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {name: batch[name].numpy() for name in ("input_ids", "attention_mask")}
    got = session.run(OUTPUTS, feeds)
    difference = max(float(np.abs(g - e).max()) for g, e in zip(got, expected))
    if not difference <= 1e-4:
        raise ValueError(f"the fused graph's outputs differ from PyTorch's by {difference:.2e}")
    return {"exporter": "TorchScript + ONNX Runtime transformer fusion", "opset": FUSED_OPSET, "fused": fused}


def _zero_segments(backbone: Any) -> Any:
    """``backbone`` given segment (token type) ids as zeros of the input's shape: what a BERT-family encoder uses
    when it gets none, but traced as two nodes instead of the ~20 shape nodes that slice and expand its buffered
    zeros (about 0.1-0.2 ms of a 3 ms single query; the logits are unchanged)."""
    import torch
    from torch import nn

    class ZeroSegments(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = backbone
            self.config = backbone.config

        def forward(self, input_ids: torch.Tensor, **kwargs: Any) -> Any:
            return self.inner(input_ids=input_ids, token_type_ids=torch.zeros_like(input_ids), **kwargs)

    return ZeroSegments()


def _with_pooled(net: Any) -> Any:
    """``net`` answering ``(logits, pooled)``: the graph outputs of :data:`OUTPUTS`."""
    from torch import nn

    class WithPooled(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            return self.net(input_ids, attention_mask, return_pooled=True)

    return WithPooled()


def _export_dynamo(classifier: IntentClassifier, path: Path) -> None:
    """Capture ``classifier.net_`` with ``torch.export`` and save it as one ONNX file (weights inside)."""
    import torch

    from .preprocess import pad_batch

    ids = classifier.token_ids(list(EXAMPLE_TEXTS))
    example = pad_batch(ids, classifier.pad_id(), side=classifier.tokenizer_.padding_side)
    batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence")
    net = classifier.net_
    if next(net.parameters()).device.type != "cpu":  # export a CPU copy; the classifier keeps its device
        net = copy.deepcopy(net).cpu()
    net.eval()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's notes on axis names and deprecated internals
            program = torch.onnx.export(
                _with_pooled(net), (example["input_ids"], example["attention_mask"]), dynamo=True,
                opset_version=OPSET, input_names=["input_ids", "attention_mask"], output_names=OUTPUTS, verbose=False,
                dynamic_shapes={"input_ids": {0: batch, 1: sequence}, "attention_mask": {0: batch, 1: sequence}},
            )  # fmt: skip
    except torch.onnx.errors.OnnxExporterError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(
            f"cannot export backbone {classifier.config.model.backbone!r} to ONNX: {first}; "
            "use the torch runtime for this model"
        ) from None
    program.save(str(path), external_data=False)


class _QuietQuantizer(logging.Filter):
    """Drops what onnxruntime's quantizer logs on the root logger: per-tensor notes at INFO, and its advice to run
    its shape pre-processing first (whose symbolic shape inference fails on BERT graphs from torch.export; dynamic
    quantization of MatMul weights does not need it)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if "pre-processing before quantization" in record.getMessage():
            return False
        return not (record.levelno < logging.WARNING and "onnxruntime" in record.pathname)


NBITS_MODULE = "onnxruntime.quantization.matmul_nbits_quantizer"


def _import_nbits_quantizer() -> type:
    """``MatMulNBitsQuantizer``, imported without its module's side effect: ``logging.basicConfig(level=INFO)`` at
    import, which gives the root logger a stderr handler and the INFO level for the rest of the process."""
    import importlib

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    module = importlib.import_module(NBITS_MODULE)
    for handler in [h for h in root.handlers if h not in handlers]:
        root.removeHandler(handler)
    root.setLevel(level)
    return module.MatMulNBitsQuantizer


def int8_method(classifier: IntentClassifier) -> str:
    """How a model's weights become int8 (a key of :data:`INT8_METHODS`): ``dynamic`` for BERT-family encoders
    (:data:`FUSABLE_ENCODERS`), ``weight-only`` for decoders and every other encoder. MPNet is one of the others:
    dynamic quantization's one activation scale per tensor distorts its pooled vectors, weight-only keeps them."""
    model_type = getattr(getattr(classifier.net_.backbone, "config", None), "model_type", None)
    return DYNAMIC if classifier.kind_ == ENCODER and model_type in FUSABLE_ENCODERS else WEIGHT_ONLY


def _quantize_int8(source: Path, target: Path, method: str) -> None:
    """Write ``target``: ``source`` with int8 weights in its matrix products, by ``method`` (see
    :func:`int8_method`); products of two activations (attention scores) stay float32.

    BERT-family encoders: dynamic quantization (activations quantized on the fly, per tensor), weights with one scale
    per output channel in a 7-bit range. On BANKING77 (minilm-l6, 3,080 test texts, an AVX2 CPU) per-tensor 8-bit
    weights lost 0.75 accuracy points against float32, per-channel 0.29, per-channel 7-bit none (CPUs without VNNI
    saturate in the 8-bit product of uint8 activations and int8 weights). In a fused graph the attention projections sit
    inside the ``Attention`` nodes, which become ``QAttention``: quantizing only the remaining MatMuls made the fused
    graph slower than the unfused int8 one and cost 0.26 points; with ``QAttention`` it lost nothing against the unfused
    int8 graph (0.8442) and ran 10% faster (single-query p50 4.53 ms against 5.00 ms, batches 183 against 160 texts/s).

    Decoders and other encoders: weight-only quantization (``MatMulNBits``, 8 bits, a scale per block of 32 weights;
    activations quantized per block inside the product). Dynamic quantization cost smollm2-135m 8.4 points on 500
    BANKING77 test texts (one scale per activation tensor, probably stretched by outlier channels), this 0.2. Dynamic
    with the MLP down projections in float32 was a fifth faster on a 2-core AVX2 CPU and lost 0.2 points one text at a
    time, but 1.2 in batches of 64: all rows of a batch share the activation scale, so answers depend on batch-mates.
    """
    root = logging.getLogger()
    hint, handlers, root_level = _QuietQuantizer(), list(root.handlers), root.level
    root.addFilter(hint)
    try:
        if method == WEIGHT_ONLY:
            quantizer_class = _import_nbits_quantizer()
            quantizer = quantizer_class(str(source), bits=8, block_size=32, is_symmetric=True, accuracy_level=4)
            nbits_logger = logging.getLogger(NBITS_MODULE)
            level = nbits_logger.level
            nbits_logger.setLevel(logging.WARNING)  # one INFO line per node it skips (550 for an 8-layer decoder)
            try:
                quantizer.process()
            finally:
                nbits_logger.setLevel(level)
            quantizer.model.save_model_to_file(str(target), use_external_data_format=False)
        else:
            import onnx
            from onnxruntime.quantization import QuantType, quantize_dynamic

            quantize_dynamic(
                source, target, weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul", "Gemm", "Attention"],
                per_channel=True, reduce_range=True,
                # DefaultTensorType: shape inference does not type the outputs of fused (contrib) nodes.
                extra_options={"MatMulConstBOnly": True, "DefaultTensorType": onnx.TensorProto.FLOAT},
            )  # fmt: skip
    finally:
        root.removeFilter(hint)
        # The dynamic quantizer logs through logging.info(), which gives a root logger without handlers a stderr one.
        for handler in [h for h in root.handlers if h not in handlers]:
            root.removeHandler(handler)
        root.setLevel(root_level)


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
