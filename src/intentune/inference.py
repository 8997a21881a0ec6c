"""Loading a trained model for prediction, whatever runtime runs it.

Everything that answers requests (``intentune predict``, batch prediction, the HTTP server) goes through
:func:`load_predictor`, so a model exported for a faster runtime is used the same way as the PyTorch one. A
predictor has ``classes_``, ``predict_proba(texts)``, ``predict_details(texts, top_k=...)`` (see
:meth:`intentune.model.IntentClassifier.predict_details`) and ``describe()`` (labels, backbone, runtime, training
summary, version).

Runtimes:

| runtime | what runs the network | needs |
|---|---|---|
| ``torch`` | PyTorch, CPU or CUDA | the model folder's weights |
| ``onnx`` | ONNX Runtime on the CPU, float32 | ``onnx/model.onnx`` (``intentune export MODEL --format onnx``) |
| ``onnx-int8`` | ONNX Runtime on the CPU, int8 weights | ``onnx/model.int8.onnx`` (``... --quantize int8``) |
| ``auto`` | on the CPU: ``onnx-int8`` if the folder has it, else ``onnx``, else ``torch``; on CUDA: ``torch`` | |
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Protocol

import numpy as np

from .config import Config
from .model import IntentClassifier
from .predictor import IntentPredictor

RUNTIMES = ("auto", "torch", "onnx", "onnx-int8")
ONNX_DIR = "onnx"
ONNX_FILES = {"onnx": "model.onnx", "onnx-int8": "model.int8.onnx"}


class Predictor(Protocol):
    """What serving and batch prediction need from a loaded model."""

    classes_: list[str]
    config: Config

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray: ...

    def predict_details(self, texts: Sequence[str], *, top_k: int = 1) -> list[dict[str, Any]]: ...

    def describe(self) -> dict[str, Any]: ...


def load_predictor(model_dir: str | Path, *, runtime: str = "auto", device: str = "cpu") -> Predictor:
    """Load a model folder (or the run folder holding it) for prediction.

    Args:
        model_dir: what ``intentune train`` wrote, or a folder written by ``intentune export -o``.
        runtime: ``auto``, ``torch``, ``onnx`` or ``onnx-int8`` (see the module docstring). ``auto`` picks, on the
            CPU, the int8 ONNX model if the folder has one, else the float32 ONNX model, else PyTorch.
        device: ``cpu`` or ``cuda``; ONNX runtimes run on the CPU only.

    Raises:
        ModelError: if the folder is not a loadable intentune model, or lacks the export the runtime needs.
        ConfigError: for an unknown runtime, or an ONNX runtime with ``device="cuda"``.
    """
    from .errors import ConfigError, ModelError
    from .folder import resolve_model_dir

    if runtime not in RUNTIMES:
        raise ConfigError(f"unknown runtime {runtime!r}; choose one of {', '.join(RUNTIMES)}")
    directory = resolve_model_dir(model_dir)
    if runtime == "auto":
        found = [r for r in ("onnx-int8", "onnx") if onnx_path(directory, r).is_file()]
        runtime = found[0] if found and device == "cpu" else "torch"
    if runtime == "torch":
        if not (directory / "head.safetensors").is_file() and onnx_path(directory, "onnx").is_file():
            raise ModelError(
                f"{directory} holds only an ONNX export (no PyTorch weights); use runtime onnx or onnx-int8"
            )
        return IntentClassifier.load(directory, device=device)
    if device != "cpu":
        raise ConfigError(f"runtime {runtime} runs on the CPU only; use device cpu, or runtime torch for {device}")
    return OnnxPredictor.load(directory, quantized=runtime == "onnx-int8")


def onnx_path(model_dir: Path, runtime: str) -> Path:
    """Where the ONNX file of ``runtime`` (``onnx`` or ``onnx-int8``) lives in a model folder."""
    return model_dir / ONNX_DIR / ONNX_FILES[runtime]


def cpu_threads() -> int:
    """The CPU cores this process may use (the affinity mask, which containers and ``taskset`` narrow)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


class OnnxRunner:
    """The network in ONNX Runtime on the CPU; inputs are padded in NumPy.

    The int8 graph runs one text per call: a dynamically quantized graph computes one activation scale per tensor
    over every row of a batch, so in batches a text's answer would depend on the texts it shares a batch with.
    """

    def __init__(self, session: Any, name: str) -> None:
        self.session = session
        self.name = name  # onnx or onnx-int8

    def run(self, ids: list[list[int]], pad_id: int, side: str, pooled: bool) -> tuple[np.ndarray, np.ndarray | None]:
        from .preprocess import pad_arrays

        if self.name == "onnx-int8" and len(ids) > 1:
            parts = [self.run([row], pad_id, side, pooled) for row in ids]
            vectors = [part[1] for part in parts if part[1] is not None]
            return np.concatenate([part[0] for part in parts]), (np.concatenate(vectors) if pooled else None)
        feeds = pad_arrays(ids, pad_id, side=side)
        got = self.session.run(["logits", "pooled"] if pooled else ["logits"], feeds)
        return got[0], (got[1] if pooled else None)


class OnnxPredictor(IntentPredictor):
    """A trained intent classifier whose network runs in ONNX Runtime (an :class:`OnnxRunner`); it predicts only.

    Tokenization, preprocessing, truncation, batching (sorted by length, padded per batch), calibration and
    out-of-scope rejection are :class:`~intentune.predictor.IntentPredictor`'s, shared with the PyTorch classifier,
    so ``predict_proba`` and ``predict_details`` give the same answers (the probabilities to about 1e-6 in float32;
    int8 weights move them slightly).

    Example:
        >>> predictor = OnnxPredictor.load("runs/shop/model", quantized=True)
        >>> predictor.predict_details(["where is my parcel"])[0]["intent"]
        'order_status'
    """

    @property
    def runtime_(self) -> str:
        """``onnx`` or ``onnx-int8``."""
        return self.runner_.name

    @classmethod
    def load(cls, directory: str | Path, *, quantized: bool = False, threads: int | None = None) -> OnnxPredictor:
        """Load a model folder that ``intentune export`` has added an ONNX model to.

        Args:
            directory: the model folder (or the run folder holding it).
            quantized: load ``onnx/model.int8.onnx`` instead of ``onnx/model.onnx``.
            threads: intra-op threads; default: the CPU cores this process may use.

        Raises:
            ModelError: if the folder is not an intentune model, or lacks the ONNX file.
        """
        from transformers import AutoTokenizer

        from .backbones import from_pretrained, load_error, prepare_tokenizer
        from .errors import ModelError
        from .folder import META_FILE, backbone_config, read_metadata, resolve_model_dir

        directory = resolve_model_dir(directory)
        runtime = "onnx-int8" if quantized else "onnx"
        path = onnx_path(directory, runtime)
        if not path.is_file():
            flag = " --quantize int8" if quantized else ""
            raise ModelError(f"{directory} has no {path.relative_to(directory)}; run `intentune export {directory} "
                             f"--format onnx{flag}` first")  # fmt: skip
        meta = read_metadata(directory)
        self = cls(Config.from_dict(meta["config"], source=str(directory / META_FILE)))
        self.restore(directory, meta)
        try:
            self.tokenizer_ = from_pretrained(AutoTokenizer, directory, config=backbone_config(directory, meta))
        except (OSError, ValueError) as exc:
            raise ModelError(f"model folder {directory} has no usable tokenizer files: {load_error(exc)}") from None
        prepare_tokenizer(self.tokenizer_, SimpleNamespace(config=SimpleNamespace()), self.kind_)
        session = _session(path, threads or cpu_threads())
        if self.distance_ is not None and "pooled" not in {o.name for o in session.get_outputs()}:
            flag = " --quantize int8" if quantized else ""
            raise ModelError(
                f"{path} has no 'pooled' output, which this model's out-of-scope distance needs; export it again "
                f"with this version: `intentune export {directory} --format onnx{flag}`"
            )
        self.runner_ = OnnxRunner(session, runtime)
        return self


def _session(path: Path, threads: int) -> Any:
    """An ONNX Runtime CPU session: all graph optimizations, ``threads`` intra-op threads, one inter-op thread
    (one request's matrix products use every core; concurrent requests queue rather than oversubscribe)."""
    import onnxruntime as ort
    from onnxruntime.capi import onnxruntime_pybind11_state as ort_errors

    from .errors import ModelError

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except (ort_errors.Fail, ort_errors.InvalidProtobuf, ort_errors.InvalidGraph, ort_errors.NoSuchFile) as exc:
        raise ModelError(f"{path}: ONNX Runtime cannot load it ({exc}); export it again") from None
