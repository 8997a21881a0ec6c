"""One typed, sectioned config (``data`` / ``model`` / ``train`` / ``generate`` / ``oos`` / ``serve``), saved with
every model and run.

Every key is a typed field with its help text, declared section by section in :mod:`intentune.config_sections`
(whose classes this module also exports). Unknown keys are an error that names the key path; values are
type-checked as they are set (from a file, ``--set section.key=value``, an environment variable or a command's
option), and :meth:`Config.validate` checks the ranges and combinations types cannot. Reading and writing config
files, and assembling the config a command runs with, is :mod:`intentune.config_files`.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from .config_sections import DataConfig, GenerateConfig, ModelConfig, OOSConfig, ServeConfig, TrainConfig
from .errors import ConfigError

__all__ = [
    "ENV_PREFIX",
    "Config",
    "DataConfig",
    "GenerateConfig",
    "ModelConfig",
    "OOSConfig",
    "ServeConfig",
    "TrainConfig",
]

ENV_PREFIX = "INTENTUNE_"  # INTENTUNE_<KEY> environment variables override [serve] keys


@dataclass
class Config:
    """The whole config. ``Config()`` gives the defaults."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    generate: GenerateConfig = field(default_factory=GenerateConfig)
    oos: OOSConfig = field(default_factory=OOSConfig)
    serve: ServeConfig = field(default_factory=ServeConfig)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """The config as nested plain dicts (None values kept)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], *, source: str = "config") -> Config:
        """Build and validate a config from nested dicts; missing keys keep their defaults.

        Raises:
            ConfigError: on an unknown section or key, or a value of the wrong type.
        """
        config = cls()
        for section_name, values in raw.items():
            section = _section(config, section_name, source)
            if not isinstance(values, dict):
                raise ConfigError(f"{source}: [{section_name}] must be a table of keys, found {values!r}")
            for key, value in values.items():
                _set_field(section, section_name, key, value, source)
        config.validate()
        return config

    def override(self, assignments: Sequence[str], *, validate: bool = True) -> Config:
        """Apply ``section.key=value`` strings (values parsed as TOML, else taken as text) in place; with
        ``validate=False`` each value is checked alone and the whole is left for :meth:`validate` (a value may be
        valid only together with one set later).

        Raises:
            ConfigError: on a malformed assignment, an unknown key or a bad value.
        """
        _apply_overrides(self, assignments)
        if validate:
            self.validate()
        return self

    def update(self, values: Mapping[str, Any], *, source: str = "option", validate: bool = True) -> Config:
        """Set ``section.key`` paths to values (type-checked like ``--set``) in place; None values are skipped.

        This is how a command's own options (``--test 0.2`` -> ``data.test_fraction``) enter the config.

        Raises:
            ConfigError: naming ``source`` and the key, on an unknown key or a bad value.
        """
        _apply_values(self, values, source)
        if validate:
            self.validate()
        return self

    def override_env(self, environ: Mapping[str, str] | None = None) -> Config:
        """Apply deployment overrides of the ``[serve]`` keys from ``INTENTUNE_<KEY>`` environment variables
        (``INTENTUNE_PORT=9000``, ``INTENTUNE_MAX_TEXTS_PER_REQUEST=16``), in place.

        Args:
            environ: the variables to read; default ``os.environ``.

        Raises:
            ConfigError: naming the variable, on a bad value.
        """
        environ = os.environ if environ is None else environ
        hints = typing.get_type_hints(ServeConfig)
        for f in dataclasses.fields(self.serve):
            name = f"{ENV_PREFIX}{f.name.upper()}"
            if name in environ:
                text = environ[name].strip()
                # Text keys take the value as it is (a host or a path is not TOML).
                value = text if str in typing.get_args(hints[f.name]) or hints[f.name] is str else _parse_value(text)
                _set_field(self.serve, "serve", f.name, value, f"environment variable {name}")
        self.validate()
        return self

    def validate(self) -> None:
        """Check value ranges that types alone do not catch.

        Raises:
            ConfigError: naming the key and the allowed range.
        """
        checks = [
            ("data.validation_fraction", 0.0 < self.data.validation_fraction < 0.5, "between 0 and 0.5"),
            ("data.test_fraction", 0.0 <= self.data.test_fraction < 0.5, "between 0 and 0.5"),
            ("model.max_length", self.model.max_length >= 2, "at least 2"),
            ("model.dropout", 0.0 <= self.model.dropout < 1.0, "in [0, 1)"),
            ("model.num_layers", (self.model.num_layers or 1) >= 1, "at least 1"),
            ("train.epochs", self.train.epochs >= 1, "at least 1"),
            ("train.batch_size", self.train.batch_size >= 1, "at least 1"),
            ("train.eval_batch_size", self.train.eval_batch_size >= 1, "at least 1"),
            ("train.warmup_ratio", 0.0 <= self.train.warmup_ratio < 1.0, "in [0, 1)"),
            ("train.head_learning_rate", self.train.head_learning_rate > 0, "positive"),
            ("train.layer_lr_decay", 0.0 < self.train.layer_lr_decay <= 1.0, "in (0, 1]"),
            ("train.learning_rate", (self.train.learning_rate or 1.0) > 0, "positive"),
            ("train.early_stopping_patience", self.train.early_stopping_patience >= 0, "0 or more"),
            ("train.eval_every_steps", (self.train.eval_every_steps or 1) >= 1, "at least 1"),
            ("train.max_steps", (self.train.max_steps or 1) >= 1, "at least 1"),
            ("train.gradient_accumulation_steps", self.train.gradient_accumulation_steps >= 1, "at least 1"),
            ("train.momentum", 0.0 <= self.train.momentum < 1.0, "in [0, 1)"),
            ("train.label_smoothing", 0.0 <= self.train.label_smoothing < 1.0, "in [0, 1)"),
            ("train.ema_epochs", self.train.ema_epochs >= 0, "0 (off) or more"),
            ("train.freeze_layers", self.train.freeze_layers >= 0, "0 or more"),
            ("train.lora_rank", self.train.lora_rank >= 0, "0 or more"),
            ("train.lora_alpha", self.train.lora_alpha > 0, "positive"),
            ("train.lora_dropout", 0.0 <= self.train.lora_dropout < 1.0, "in [0, 1)"),
            ("train.checkpoint_every_steps", (self.train.checkpoint_every_steps or 0) >= 0, "0 or more"),
            ("train.few_shot_max_per_intent", self.train.few_shot_max_per_intent >= 1, "at least 1"),
            ("train.few_shot_epochs", self.train.few_shot_epochs >= 0, "0 or more"),
            ("train.few_shot_learning_rate", (self.train.few_shot_learning_rate or 1.0) > 0, "positive"),
            ("train.few_shot_temperature", self.train.few_shot_temperature > 0, "positive"),
            ("train.few_shot_batch_intents", self.train.few_shot_batch_intents >= 2, "at least 2"),
            ("train.few_shot_examples_per_intent", self.train.few_shot_examples_per_intent >= 2, "at least 2"),
            ("train.replay_per_intent", self.train.replay_per_intent >= 0, "0 or more"),
            ("train.replay_distill", 0.0 <= self.train.replay_distill < 1.0, "in [0, 1)"),
            ("train.distill_temperature", self.train.distill_temperature > 0, "positive"),
            ("train.distill_alpha", 0.0 <= self.train.distill_alpha <= 1.0, "between 0 and 1"),
            ("oos.label", bool(self.oos.label.strip()), "a non-empty intent name"),
            ("oos.threshold", 0.0 <= (self.oos.threshold or 0.0) <= 1.0, "between 0 and 1"),
            ("oos.max_accuracy_drop", 0.0 <= self.oos.max_accuracy_drop < 1.0, "in [0, 1)"),
            ("oos.budget_confidence", 0.0 <= self.oos.budget_confidence < 1.0, "in [0, 1)"),
            ("oos.multi_label_floor", 0.0 < self.oos.multi_label_floor < 1.0, "in (0, 1)"),
            ("serve.port", 0 <= self.serve.port <= 65535, "between 0 and 65535"),
            ("serve.max_texts_per_request", self.serve.max_texts_per_request >= 1, "at least 1"),
            ("serve.max_chars_per_text", self.serve.max_chars_per_text >= 1, "at least 1"),
            ("serve.max_body_bytes", self.serve.max_body_bytes >= 1024, "at least 1024"),
            ("serve.max_batch_size", self.serve.max_batch_size >= 1, "at least 1"),
            ("serve.batch_wait_ms", 0.0 <= self.serve.batch_wait_ms <= 1000.0, "between 0 and 1000"),
            ("serve.log_max_bytes", self.serve.log_max_bytes >= 1024, "at least 1024"),
            ("serve.log_backups", self.serve.log_backups >= 1, "at least 1"),
        ]
        for name, ok, allowed in checks:
            if not ok:
                raise ConfigError(f"{name} must be {allowed}")
        weight = self.train.class_weight
        if isinstance(weight, str) and weight not in ("none", "balanced"):
            raise ConfigError(
                f"train.class_weight must be none, balanced or a table of weights such as {{ refund = 2.0 }}, "
                f"found {weight!r}"
            )
        if isinstance(weight, dict) and any(not (w > 0) for w in weight.values()):
            raise ConfigError("train.class_weight: every explicit weight must be positive")
        if isinstance(self.model.multi_label, str) and self.model.multi_label != "auto":
            raise ConfigError(f"model.multi_label must be auto, true or false, found {self.model.multi_label!r}")
        if self.data.multi_label_separator.strip() != self.data.multi_label_separator:
            raise ConfigError("data.multi_label_separator must not start or end with spaces")
        if self.model.prompt_template.count("{text}") != 1:
            raise ConfigError(
                "model.prompt_template must contain {text} exactly once (where the message goes), found "
                f"{self.model.prompt_template!r}"
            )
        if self.train.lora_rank and self.train.freeze_layers:
            raise ConfigError("train.lora_rank and train.freeze_layers exclude each other (LoRA freezes the backbone)")
        if self.data.validation_fraction + self.data.test_fraction > 0.4:
            raise ConfigError(
                "data.validation_fraction + data.test_fraction must leave at least 60% for training "
                f"(found {self.data.validation_fraction} + {self.data.test_fraction})"
            )


def _apply_overrides(config: Config, assignments: Sequence[str]) -> None:
    """Set ``section.key=value`` strings, each checked alone (the caller validates the whole config)."""
    for assignment in assignments:
        path, sep, text = assignment.partition("=")
        section_name, dot, key = path.strip().partition(".")
        if not sep or not dot or not key:
            raise ConfigError(f"--set {assignment!r}: expected section.key=value, for example train.learning_rate=3e-5")
        _set_field(_section(config, section_name, "--set"), section_name, key, _parse_value(text.strip()), "--set")


def _apply_values(config: Config, values: Mapping[str, Any], source: str) -> None:
    """Set ``section.key`` -> value pairs, skipping None, each checked alone (the caller validates the whole)."""
    for path, value in values.items():
        if value is not None:
            section_name, _, key = path.partition(".")
            value = os.fspath(value) if isinstance(value, os.PathLike) else value
            _set_field(_section(config, section_name, source), section_name, key, value, source)


def _section(config: Config, name: str, source: str) -> Any:
    names = [f.name for f in dataclasses.fields(config)]
    if name not in names:
        raise ConfigError(f"{source}: unknown config section {name!r}; sections are {', '.join(names)}")
    return getattr(config, name)


def _set_field(section: Any, section_name: str, key: str, value: Any, source: str) -> None:
    fields = {f.name: f for f in dataclasses.fields(section)}
    if key not in fields:
        raise ConfigError(
            f"{source}: unknown key {section_name}.{key}; keys of [{section_name}] are {', '.join(fields)}"
        )
    hint = typing.get_type_hints(type(section))[key]
    checked = _coerce(value, hint, f"{section_name}.{key}", source)
    choices = fields[key].metadata.get("choices")
    if choices and checked not in choices:
        raise ConfigError(f"{source}: {section_name}.{key} must be one of {', '.join(choices)}, found {checked!r}")
    setattr(section, key, checked)


def _coerce(value: Any, hint: Any, name: str, source: str) -> Any:
    """Check ``value`` against a field's type hint; ints are accepted for floats."""
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    if value is None or (isinstance(value, str) and value.lower() in ("none", "null") and type(None) in options):
        if type(None) in options:
            return None
        raise ConfigError(f"{source}: {name} cannot be unset")
    for option in options:
        if option is bool and isinstance(value, bool):
            return value
        if option is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if option is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if option is str and isinstance(value, str):
            return value
        if typing.get_origin(option) is Literal and value in typing.get_args(option):
            return value
        numbers = isinstance(value, dict) and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in value.values()
        )
        if typing.get_origin(option) is dict and numbers:
            return {str(k): float(v) for k, v in value.items()}
        if typing.get_origin(option) is list and isinstance(value, list) and all(isinstance(v, str) for v in value):
            return list(value)
    names = {dict: "a table of numbers", list: "a list of strings"}
    expected = " or ".join(
        names.get(typing.get_origin(o), getattr(o, "__name__", str(o))) for o in options if o is not type(None)
    )
    raise ConfigError(f"{source}: {name} must be {expected}, found {value!r}")


def _parse_value(text: str) -> Any:
    """Parse an override value as TOML (numbers, booleans, quoted strings, lists), else keep the text."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text
