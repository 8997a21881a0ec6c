"""Config files and the config a command runs with: :func:`build_config` (file, environment, ``--set``, options),
TOML reading (:func:`load_config`, :func:`read_toml`) and writing (:func:`render_config`, a complete file with a
comment above every key, as ``intentune config init`` writes it; :func:`save_config`).
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ._io import write_file_atomic
from .config import Config
from .errors import ConfigError


def build_config(
    config_path: str | Path | None = None,
    overrides: Sequence[str] | None = None,
    options: Mapping[str, Any] | None = None,
    *,
    env: bool = False,
) -> Config:
    """Assemble the config a command runs with, the same way for every command.

    In order, each step overriding the ones before: the config file (or the defaults), the ``INTENTUNE_*``
    environment variables of the ``[serve]`` keys (with ``env``), the ``--set`` overrides, then the command's own
    options.

    Args:
        config_path: a TOML config file; None = the defaults.
        overrides: ``section.key=value`` strings, as given to ``--set``.
        options: ``section.key`` -> value of a command's options, for example ``{"data.test_fraction": 0.2}``;
            None values (an option not given) leave the key as it is.
        env: apply ``INTENTUNE_<KEY>`` environment variables to the ``[serve]`` section (``intentune serve``).

    Returns:
        The checked config.

    Raises:
        ConfigError: naming the file, variable, override or option and the key, on any unknown key or bad value.

    Example:
        >>> build_config(None, ["data.split_seed=7"], {"data.test_fraction": 0.2}).data.test_fraction
        0.2
    """
    config = load_config(config_path) if config_path else Config()
    if env:
        config.override_env()
    # Checked once at the end: a value may be valid only together with one set by a later step.
    config.override(overrides or [], validate=False).update(options or {}, validate=False)
    config.validate()
    return config


def load_config(path: str | Path) -> Config:
    """Read a TOML config file.

    Raises:
        ConfigError: if the file is missing, is not valid TOML, or has unknown keys or bad values.
    """
    path = Path(path)
    raw = read_toml(path, f"config file {path} not found; write one with `intentune config init {path}`")
    return Config.from_dict(raw, source=str(path))


def read_toml(path: str | Path, missing: str) -> dict[str, Any]:
    """Parse a TOML file.

    Raises:
        ConfigError: ``missing`` if the file does not exist; the parser's message if it is not valid TOML.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(missing)
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def render_config(config: Config | None = None) -> str:
    """The config as a complete TOML file with a comment above every key.

    Unset (None) values are written as commented-out lines, so the file still shows every key.
    """
    config = config or Config()
    lines = ["# intentune config. Every key is shown; override any with --set section.key=value.", ""]
    for section_field in dataclasses.fields(config):
        section = getattr(config, section_field.name)
        lines.append(f"[{section_field.name}]")
        for f in dataclasses.fields(section):
            help_text = f.metadata.get("help", "")
            choices = f.metadata.get("choices")
            lines.append(f"# {help_text}" + (f" One of: {', '.join(choices)}." if choices else ""))
            value = getattr(section, f.name)
            if value is None:
                lines.append(f"# {f.name} = {_toml_value(f.metadata['example'])}")
            else:
                lines.append(f"{f.name} = {_toml_value(value)}")
        lines.append("")
    return "\n".join(lines)


def save_config(config: Config, path: str | Path) -> None:
    """Write the fully resolved config as commented TOML (atomically: the old file or the new one, whole)."""
    write_file_atomic(path, render_config(config))


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{escaped}"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {value!r} as TOML")


def _toml_key(key: str) -> str:
    return key if key and all(c.isalnum() or c in "-_" for c in key) else _toml_value(key)


__all__ = ["build_config", "load_config", "read_toml", "render_config", "save_config"]
