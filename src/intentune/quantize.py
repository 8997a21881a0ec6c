"""int8 weights for an exported ONNX graph, by the method that keeps a backbone's answers.

BERT-family encoders get dynamic quantization (weights per output channel in a 7-bit range, activations quantized on
the fly, fused ``Attention`` nodes as ``QAttention``); decoders and other encoders (MPNet among them) get weight-only
quantization (``MatMulNBits``, 8 bits, a scale per block of 32 weights). How each choice was measured:
``docs/experiments.md``, section "CPU inference".
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from .backbones import ENCODER
from .onnx_graph import FUSABLE_ENCODERS

if TYPE_CHECKING:
    from .model import IntentClassifier

WEIGHT_ONLY, DYNAMIC = "weight-only", "dynamic"
INT8_METHODS = {
    WEIGHT_ONLY: "weight-only MatMulNBits, 8 bits, symmetric, blocks of 32, accuracy level 4",
    DYNAMIC: "dynamic, QInt8 weights per output channel, reduce_range, MatMul, Gemm and fused Attention",
}


class QuietQuantizer(logging.Filter):
    """Drops what onnxruntime's quantizer logs on the root logger: per-tensor notes at INFO, and its advice to run
    its shape pre-processing first (whose symbolic shape inference fails on BERT graphs from torch.export; dynamic
    quantization of MatMul weights does not need it)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if "pre-processing before quantization" in record.getMessage():
            return False
        return not (record.levelno < logging.WARNING and "onnxruntime" in record.pathname)


NBITS_MODULE = "onnxruntime.quantization.matmul_nbits_quantizer"


def import_nbits_quantizer() -> type:
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


def quantize_int8(source: Path, target: Path, method: str) -> None:
    """Write ``target``: ``source`` with int8 weights in its matrix products, by ``method`` (see
    :func:`int8_method`); products of two activations (attention scores) stay float32.

    BERT-family encoders: dynamic quantization, weights with one scale per output channel in a 7-bit range (CPUs
    without VNNI saturate in the 8-bit product of uint8 activations and int8 weights); in a fused graph the
    ``Attention`` nodes are quantized too (``QAttention``), as the attention projections sit inside them. Decoders and
    other encoders: weight-only quantization (``MatMulNBits``, 8 bits, a scale per block of 32 weights, activations
    quantized per block inside the product): dynamic quantization's one scale per activation tensor distorts them, and
    its shared scale would make an answer depend on the other texts of its batch.
    """
    root = logging.getLogger()
    hint, handlers, root_level = QuietQuantizer(), list(root.handlers), root.level
    root.addFilter(hint)
    try:
        if method == WEIGHT_ONLY:
            quantizer_class = import_nbits_quantizer()
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


__all__ = ["DYNAMIC", "INT8_METHODS", "WEIGHT_ONLY", "int8_method", "quantize_int8"]
