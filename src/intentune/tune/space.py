"""Search spaces: the default one, reading one from TOML or ``--param``, checking it against the config, and
applying a trial's values to a copy of the config."""

from __future__ import annotations

import tomllib
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..config import Config
from ..config_files import read_toml
from ..errors import ConfigError

RANGE_KEYS = {"low", "high", "log", "step"}


def default_space(config: Config) -> dict[str, Any]:
    """The default search: learning rate log-uniform from a fifth to six times ``train.learning_rate`` (unset:
    5e-5, so 1e-5 to 3e-4), batch size 8/16/32, 2 to 6 epochs, the four optimizers, warmup 0 to 0.2, and LoRA
    rank 4/8/16 when the config trains LoRA adapters (``train.lora_rank > 0``)."""
    center = config.train.learning_rate or 5e-5
    space: dict[str, Any] = {
        "train.learning_rate": {"low": float(f"{center / 5:.3g}"), "high": float(f"{center * 6:.3g}"), "log": True},
        "train.batch_size": [8, 16, 32],
        "train.epochs": {"low": 2, "high": 6},
        "train.optimizer": ["adamw", "adam", "sgd", "adafactor"],
        "train.warmup_ratio": {"low": 0.0, "high": 0.2},
    }
    if config.train.lora_rank > 0:
        space["train.lora_rank"] = [4, 8, 16]
    return space


def load_space(path: str | Path) -> dict[str, Any]:
    """Read a search space from TOML sectioned like the config (``[train]`` ``batch_size = [16, 32]``).

    Raises:
        ConfigError: if the file is missing or not valid TOML, or a top-level key is not a section table.
    """
    path = Path(path)
    raw = read_toml(path, f"search space file {path} not found")
    space = {}
    for section, values in raw.items():
        if not isinstance(values, dict):
            raise ConfigError(f"{path}: {section!r} must be a section such as [train], found {values!r}")
        space.update({f"{section}.{key}": spec for key, spec in values.items()})
    return space


def parse_param(assignment: str) -> tuple[str, Any]:
    """``section.key=SPEC`` (SPEC in TOML: ``[8, 16]``, ``{low=1e-5, high=1e-3, log=true}`` or one value).

    Raises:
        ConfigError: if there is no ``=`` or no ``section.key``.
    """
    key, sep, text = assignment.partition("=")
    if not sep or "." not in key:
        raise ConfigError(f"--param {assignment!r}: expected section.key=SPEC, for example train.batch_size=[16,32]")
    try:
        return key.strip(), tomllib.loads(f"v = {text.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        return key.strip(), text.strip()  # a bare word: one fixed value, such as adamw


def check_space(config: Config, space: Mapping[str, Any]) -> dict[str, Any]:
    """Turn a space into Optuna distributions (fixed values stay plain), checking every key and every bound or
    choice against the config.

    Raises:
        ConfigError: naming the key, for an unknown key, a malformed range, or a value the config rejects.
    """
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    checked: dict[str, Any] = {}
    for key, spec in space.items():
        where = f"search space {key}"
        if isinstance(spec, list):
            if not spec or any(isinstance(v, (list, dict)) for v in spec):
                raise ConfigError(f"{where}: choices must be a non-empty list of plain values, found {spec!r}")
            values, dist = spec, CategoricalDistribution(spec)
        elif isinstance(spec, dict):
            if not {"low", "high"} <= set(spec) <= RANGE_KEYS:
                raise ConfigError(f"{where}: a range needs low and high (and may have log, step), found {spec!r}")
            kind = _numeric_kind(config, key)
            values = [spec["low"], spec["high"]]
            try:
                args = {"log": bool(spec.get("log", False)), "step": spec.get("step")}
                if kind is int:
                    dist = IntDistribution(int(spec["low"]), int(spec["high"]), **{**args, "step": args["step"] or 1})
                else:
                    dist = FloatDistribution(float(spec["low"]), float(spec["high"]), **args)
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"{where}: {exc}") from None
        else:
            values, dist = [spec], spec
        for value in values:
            apply_params(config, {key: value}, source=where)
        checked[key] = dist
    return checked


def apply_params(config: Config, params: Mapping[str, Any], *, source: str = "tune") -> Config:
    """A validated copy of ``config`` with ``section.key`` values replaced.

    Raises:
        ConfigError: for an unknown key or a value the config rejects.
    """
    raw = config.to_dict()
    for key, value in params.items():
        section, _, name = key.partition(".")
        raw.setdefault(section, {})[name] = value
    return Config.from_dict(raw, source=source)


def baseline_params(config: Config, checked: dict[str, Any]) -> dict[str, Any]:
    """The config's own values of the searched keys that lie in the space."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    params = {}
    for key, dist in checked.items():
        section, _, name = key.partition(".")
        value = getattr(getattr(config, section), name)
        if isinstance(dist, CategoricalDistribution):
            inside = value in dist.choices
        else:  # a range, or a fixed value (not searched)
            inside = isinstance(dist, (FloatDistribution, IntDistribution)) and _in_range(value, dist)
        if inside:
            params[key] = value
    return params


def _numeric_kind(config: Config, key: str) -> type:
    section_name, _, name = key.partition(".")
    section = getattr(config, section_name, None)
    hints = typing.get_type_hints(type(section)) if section is not None else {}
    options = (typing.get_args(hints[name]) or (hints[name],)) if name in hints else ()
    if float in options:
        return float
    if int in options:
        return int
    raise ConfigError(f"search space {key}: a range needs a numeric config key; give a list of choices instead")


def _in_range(value: Any, dist: Any) -> bool:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    return dist.low <= value <= dist.high and (dist.step is None or (value - dist.low) % dist.step == 0)
