"""The ONNX graph of a trained network: :class:`intentune.net.IntentNet` (backbone, pooling, dense head) as one file.

BERT-family encoders are traced by the TorchScript exporter with eager attention and then fused by ONNX Runtime's
transformer optimizer (one ``Attention`` node per layer, ``SkipLayerNormalization``, ``BiasGelu``,
``EmbedLayerNormalization``; see :func:`export_fused_encoder`): the graph ``torch.export`` writes for them keeps
attention as a dozen small nodes that the optimizer cannot fuse. Everything else, and any encoder whose fused graph
does not reproduce PyTorch's outputs, is captured by ``torch.export`` (the ``dynamo=True`` exporter). Decoders get
the same position ids and last-token pooling as in PyTorch, because the graph is the network itself.
"""

from __future__ import annotations

import copy
import logging
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .backbones import ENCODER
from .errors import ModelError

if TYPE_CHECKING:
    from .model import IntentClassifier

logger = logging.getLogger(__name__)

OPSET = 20
# A batch of two texts of different lengths, so that no dimension of the traced example is 0 or 1 (which
# torch.export would specialise on) and the padding path is traced.
EXAMPLE_TEXTS = ("where is my order and when will it arrive", "hello there")
# More texts for the fused graph's check against PyTorch: one word, and one long enough to be truncated.
PARITY_TEXTS = ("refund", "i ordered two pairs of shoes last week and only one arrived, " * 8)
# Encoders whose graphs ONNX Runtime's "bert" optimizer knows (Optimum maps these model types to it as well).
FUSABLE_ENCODERS = ("bert", "roberta", "xlm-roberta", "camembert", "electra")
FUSED_OPSET = 17  # the TorchScript exporter's best-tested opset
OUTPUTS = ["logits", "pooled"]


def export_graph(classifier: IntentClassifier, path: Path) -> dict[str, Any]:
    """Save ``classifier.net_`` as one ONNX file (weights inside): fused for BERT-family encoders when the fused
    graph matches PyTorch, else captured by ``torch.export``. Returns how (for ``export.json``)."""
    if classifier.kind_ == ENCODER:
        try:
            return export_fused_encoder(classifier, path)
        except Exception as exc:  # noqa: BLE001 - any failure of the optional path falls back to torch.export
            logger.info("fused encoder graph not used (%s); exporting with torch.export", exc)
    export_dynamo(classifier, path)
    return {"exporter": "torch.export (dynamo)", "opset": OPSET, "fused": {}}


def export_fused_encoder(classifier: IntentClassifier, path: Path) -> dict[str, Any]:
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
    net.backbone = zero_segments(net.backbone)  # a copy: the classifier's own network is untouched
    net = with_pooled(net)
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


def zero_segments(backbone: Any) -> Any:
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


def with_pooled(net: Any) -> Any:
    """``net`` answering ``(logits, pooled)``: the graph outputs of :data:`OUTPUTS`."""
    from torch import nn

    class WithPooled(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            return self.net(input_ids, attention_mask, return_pooled=True)

    return WithPooled()


def export_dynamo(classifier: IntentClassifier, path: Path) -> None:
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
                with_pooled(net), (example["input_ids"], example["attention_mask"]), dynamo=True,
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


__all__ = ["EXAMPLE_TEXTS", "FUSABLE_ENCODERS", "FUSED_OPSET", "OPSET", "OUTPUTS", "PARITY_TEXTS", "export_graph"]
