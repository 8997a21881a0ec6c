"""intentune: fine-tune pretrained language models (GPT-style decoders and encoders) into intent classifiers.

The public API is flat; importing this package loads no model, configures no logging, and imports torch only
when a name that needs it is first used (so ``intentune --help`` starts fast).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "augment": ["augment_data"],
    "batch": ["predict_file", "predict_texts"],
    "config": ["Config", "DataConfig", "GenerateConfig", "ModelConfig", "OOSConfig", "ServeConfig", "TrainConfig"],
    "config_files": ["load_config", "render_config", "save_config"],
    "crossval": ["CrossValResult", "cross_validate"],
    "data": ["Examples", "load_examples", "split_examples", "write_examples"],
    "datafiles": ["convert_data", "doctor_data", "split_data", "validate_data"],
    "distill": ["Teacher", "load_teacher"],
    "doctor": ["DoctorReport", "diagnose_examples"],
    "errors": ["BackboneError", "ConfigError", "DataError", "IntentuneError", "ModelError"],
    "evaluate": ["EvalReport", "evaluate_classifier", "evaluate_predictions"],
    "export": ["ExportResult", "export_model"],
    "inference": ["OnnxPredictor", "load_predictor"],
    "learning_curves": ["LearningCurve", "learning_curve"],
    "model": ["IntentClassifier"],
    "pipeline": ["RunResult", "cross_validate_file", "evaluate_model", "learning_curve_file", "train_run"],
    "serve": ["create_app"],
}  # fmt: skip
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = [
    "BackboneError",
    "Config",
    "ConfigError",
    "CrossValResult",
    "DataConfig",
    "DataError",
    "DoctorReport",
    "EvalReport",
    "Examples",
    "ExportResult",
    "GenerateConfig",
    "IntentClassifier",
    "IntentuneError",
    "LearningCurve",
    "ModelConfig",
    "ModelError",
    "OOSConfig",
    "OnnxPredictor",
    "RunResult",
    "ServeConfig",
    "Teacher",
    "TrainConfig",
    "augment_data",
    "convert_data",
    "create_app",
    "cross_validate",
    "cross_validate_file",
    "diagnose_examples",
    "doctor_data",
    "evaluate_classifier",
    "evaluate_model",
    "evaluate_predictions",
    "export_model",
    "learning_curve",
    "learning_curve_file",
    "load_config",
    "load_examples",
    "load_predictor",
    "load_teacher",
    "predict_file",
    "predict_texts",
    "render_config",
    "save_config",
    "split_data",
    "split_examples",
    "train_run",
    "validate_data",
    "write_examples",
]


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'intentune' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return [*globals(), *__all__]


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from .augment import augment_data
    from .batch import predict_file, predict_texts
    from .config import (
        Config,
        DataConfig,
        GenerateConfig,
        ModelConfig,
        OOSConfig,
        ServeConfig,
        TrainConfig,
    )
    from .config_files import load_config, render_config, save_config
    from .crossval import CrossValResult, cross_validate
    from .data import Examples, load_examples, split_examples, write_examples
    from .datafiles import convert_data, doctor_data, split_data, validate_data
    from .distill import Teacher, load_teacher
    from .doctor import DoctorReport, diagnose_examples
    from .errors import BackboneError, ConfigError, DataError, IntentuneError, ModelError
    from .evaluate import EvalReport, evaluate_classifier, evaluate_predictions
    from .export import ExportResult, export_model
    from .inference import OnnxPredictor, load_predictor
    from .learning_curves import LearningCurve, learning_curve
    from .model import IntentClassifier
    from .pipeline import RunResult, cross_validate_file, evaluate_model, learning_curve_file, train_run
    from .serve import create_app
