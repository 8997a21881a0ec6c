"""Loading a trained model for prediction, whatever runtime runs it.

Everything that answers requests (``intentune predict``, the HTTP server) goes through :func:`load_predictor`, so
a model exported for a faster runtime is used the same way as the PyTorch one. A predictor has ``classes_``,
``predict_details(texts, top_k=...)`` (see :meth:`intentune.model.IntentClassifier.predict_details`) and
``describe()`` (labels, backbone, runtime, training summary, version).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

RUNTIMES = ("auto", "torch")


class Predictor(Protocol):
    """What serving and batch prediction need from a loaded model."""

    classes_: list[str]

    def predict_details(self, texts: list[str], *, top_k: int = 1) -> list[dict[str, Any]]: ...

    def describe(self) -> dict[str, Any]: ...


def load_predictor(model_dir: str | Path, *, runtime: str = "auto", device: str = "cpu") -> Predictor:
    """Load a model folder (or the run folder holding it) for prediction.

    Args:
        model_dir: what ``intentune train`` wrote.
        runtime: ``torch``, or ``auto`` (the fastest runtime the folder has; today PyTorch).
        device: ``cpu`` or ``cuda`` for the PyTorch runtime.

    Raises:
        ModelError: if the folder is not a loadable intentune model.
        ConfigError: for an unknown runtime.
    """
    from .errors import ConfigError
    from .model import IntentClassifier

    if runtime not in RUNTIMES:
        raise ConfigError(f"unknown runtime {runtime!r}; choose one of {', '.join(RUNTIMES)}")
    return IntentClassifier.load(model_dir, device=device)
