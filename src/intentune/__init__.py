"""intentune: fine-tune pretrained language models (GPT-style decoders and encoders) into intent classifiers.

The public API is flat; importing this package loads no model and configures no logging.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .config import Config, DataConfig, ModelConfig, TrainConfig, load_config, render_config, save_config
from .data import Examples, load_examples, split_examples, write_examples
from .errors import BackboneError, ConfigError, DataError, IntentuneError, ModelError
from .evaluate import EvalReport, evaluate_classifier, evaluate_predictions
from .model import IntentClassifier
from .pipeline import RunResult, evaluate_model, predict_texts, split_data, train_run

__all__ = [
    "BackboneError",
    "Config",
    "ConfigError",
    "DataConfig",
    "DataError",
    "EvalReport",
    "Examples",
    "IntentClassifier",
    "IntentuneError",
    "ModelConfig",
    "ModelError",
    "RunResult",
    "TrainConfig",
    "evaluate_classifier",
    "evaluate_model",
    "evaluate_predictions",
    "load_config",
    "load_examples",
    "predict_texts",
    "render_config",
    "save_config",
    "split_data",
    "split_examples",
    "train_run",
    "write_examples",
]
