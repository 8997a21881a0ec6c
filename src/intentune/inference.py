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
    from .model import resolve_model_dir

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


class OnnxPredictor(IntentClassifier):
    """A trained intent classifier whose network runs in ONNX Runtime: predicts only (no ``fit``, no ``save``).

    Tokenization, preprocessing, truncation, batching (sorted by length, padded per batch), calibration and
    out-of-scope rejection are the PyTorch classifier's own, so ``predict_proba`` and ``predict_details`` give
    the same answers (the probabilities to about 1e-6 in float32; int8 weights move them slightly). The int8 graph
    runs one text per call, so its answers do not depend on which texts are predicted together (see
    :meth:`_run_batch`).

    Example:
        >>> predictor = OnnxPredictor.load("runs/shop/model", quantized=True)
        >>> predictor.predict_details(["where is my parcel"])[0]["intent"]
        'order_status'
    """

    @classmethod
    def load(cls, directory: str | Path, *, quantized: bool = False, threads: int | None = None) -> OnnxPredictor:  # type: ignore[override]
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
        from .config import Config
        from .errors import ModelError
        from .evaluate.oos import Thresholds
        from .model import META_FILE, _read_metadata, backbone_config, load_distance, resolve_model_dir

        directory = resolve_model_dir(directory)
        runtime = "onnx-int8" if quantized else "onnx"
        path = onnx_path(directory, runtime)
        if not path.is_file():
            flag = " --quantize int8" if quantized else ""
            raise ModelError(f"{directory} has no {path.relative_to(directory)}; run `intentune export {directory} "
                             f"--format onnx{flag}` first")  # fmt: skip
        meta = _read_metadata(directory)
        self = cls(Config.from_dict(meta["config"], source=str(directory / META_FILE)))
        self.runtime_ = runtime
        self.classes_, self.kind_ = list(meta["labels"]), meta["kind"]
        self.history_, self.train_summary_ = meta.get("history", []), meta.get("train_summary", {})
        self.temperature_ = float(meta.get("temperature", 1.0))
        self.thresholds_ = Thresholds.from_dict(meta["oos_thresholds"]) if meta.get("oos_thresholds") else None
        self.distance_ = load_distance(directory, self.thresholds_)
        try:
            self.tokenizer_ = from_pretrained(AutoTokenizer, directory, config=backbone_config(directory, meta))
        except (OSError, ValueError) as exc:
            raise ModelError(f"model folder {directory} has no usable tokenizer files: {load_error(exc)}") from None
        prepare_tokenizer(self.tokenizer_, SimpleNamespace(config=SimpleNamespace()), self.kind_)
        self.session_ = _session(path, threads or cpu_threads())
        if self.distance_ is not None and "pooled" not in {o.name for o in self.session_.get_outputs()}:
            flag = " --quantize int8" if quantized else ""
            raise ModelError(
                f"{path} has no 'pooled' output, which this model's out-of-scope distance needs; export it again "
                f"with this version: `intentune export {directory} --format onnx{flag}`"
            )
        return self

    def _run_batch(self, ids: list[list[int]], pooled: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """The network on one batch of token ids, in ONNX Runtime (inputs padded in NumPy).

        The int8 graph runs one text per call. Dynamically quantized graphs (encoders) compute one activation scale
        per tensor, over every row of a batch, so a text's answer would depend on the texts it shares a batch with:
        on the BANKING77 test set (minilm-l6) 72 of 3,080 answers differed between one-at-a-time and batches of 64,
        and accuracy moved from 0.8455 to 0.8403 with shuffled batches. One text per call was also faster there
        (2-core CPU: 222-279 texts/s against 161-165 in batches of 64, two runs each).
        """
        from .preprocess import pad_arrays

        if self.runtime_ == "onnx-int8" and len(ids) > 1:
            parts = [self._run_batch([row], pooled) for row in ids]
            vectors = [part[1] for part in parts if part[1] is not None]
            return np.concatenate([part[0] for part in parts]), (np.concatenate(vectors) if pooled else None)
        feeds = pad_arrays(ids, self._pad_id(), side=self.tokenizer_.padding_side)
        got = self.session_.run(["logits", "pooled"] if pooled else ["logits"], feeds)
        return got[0], (got[1] if pooled else None)

    def describe(self) -> dict[str, Any]:
        """As :meth:`IntentClassifier.describe`, with ``runtime`` ``onnx`` or ``onnx-int8``."""
        return {**super().describe(), "runtime": self.runtime_}

    def fit(self, *args: Any, **kwargs: Any) -> OnnxPredictor:
        from .errors import ModelError

        raise ModelError("an OnnxPredictor only predicts; fit an IntentClassifier and export it")

    def save(self, directory: str | Path) -> Path:
        from .errors import ModelError

        raise ModelError("an OnnxPredictor only predicts; save the IntentClassifier it was exported from")

    def _check_fitted(self) -> None:
        if not hasattr(self, "session_"):
            from .errors import ModelError

            raise ModelError("this OnnxPredictor is not loaded; use OnnxPredictor.load(dir) or load_predictor(dir)")


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
