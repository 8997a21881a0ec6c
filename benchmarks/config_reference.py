"""Write the configuration reference (``docs/configuration.md``) from the config's own help texts.

Every key of :class:`intentune.Config` carries its help, its choices and, when unset by default, an example (the
``option(...)`` fields of ``src/intentune/config_sections.py``); this renders them as one Markdown table per section,
so the reference cannot drift from the code (``tests/test_docs.py`` compares the committed page with this output).

    .venv/bin/python -m benchmarks.config_reference > docs/configuration.md
    .venv/bin/python -m benchmarks.config_reference --write
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import textwrap
import types
import typing
from pathlib import Path
from typing import Any

from intentune.config import Config

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "configuration.md"

HEADER = """\
# Configuration reference

Every config key with its type, default and meaning, one table per section, generated from the config's help texts.

Contents: {contents}

Do not edit this page by hand: it is written from `src/intentune/config_sections.py` by
`python -m benchmarks.config_reference --write`, and `tests/test_docs.py` fails when it differs from that output.

One TOML file holds the sections below; `intentune config init FILE` writes all of them with their defaults and these
texts as comments, `intentune config show FILE --set ...` prints the resolved result, and `--set section.key=value`
overrides a key. An unknown key or a value of the wrong type is an error that names the key. Every run folder holds
its fully resolved config as `config.toml`. How the most used keys behaved on real data:
[training.md](training.md#the-most-used-keys).
"""


def type_name(hint: Any) -> str:
    """A type hint as it reads in the docs: ``int``, ``float | unset``, ``list of str``, ``table of float``."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = typing.get_args(hint)
        names = [type_name(a) for a in args if a is not type(None)]
        return " or ".join(names) + (" or unset" if type(None) in args else "")
    origin = typing.get_origin(hint)
    if origin is list:
        return f"list of {type_name(typing.get_args(hint)[0])}"
    if origin is dict:
        return f"table of {type_name(typing.get_args(hint)[1])}"
    return getattr(hint, "__name__", str(hint))


def toml_value(value: Any) -> str:
    """A value as written in a TOML file."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    return repr(value)


def cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return " ".join(text.split()).replace("|", "\\|")


def section_table(name: str, section: Any) -> list[str]:
    """The heading, the section's docstring and one table row per key."""
    doc = inspect.cleandoc(type(section).__doc__ or "")
    hints = typing.get_type_hints(type(section))
    intro = textwrap.fill(" ".join(doc.split()).replace("``", "`"), 118, break_on_hyphens=False)
    lines = [f"## {name}", "", intro, ""]
    lines += ["| key | type | default | meaning |", "|---|---|---|---|"]
    for f in dataclasses.fields(section):
        value = getattr(section, f.name)
        if value is None:
            example = f.metadata.get("example")
            default = "unset" + (f" (example: `{toml_value(example)}`)" if example is not None else "")
        else:
            default = f"`{toml_value(value)}`"
        meaning = f.metadata.get("help", "")
        choices = f.metadata.get("choices")
        if choices:
            meaning += " One of: " + ", ".join(f"`{c}`" for c in choices) + "."
        lines.append(f"| `{name}.{f.name}` | {cell(type_name(hints[f.name]))} | {default} | {cell(meaning)} |")
    return lines + [""]


def render_reference(config: Config | None = None) -> str:
    """The whole page, for the default config (or ``config``)."""
    config = config or Config()
    names = [f.name for f in dataclasses.fields(config)]
    contents = " · ".join(f"[{n}](#{n})" for n in names)
    lines = [HEADER.format(contents=contents)]
    for name in names:
        lines += section_table(name, getattr(config, name))
    return "\n".join(lines).rstrip("\n") + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"write {PAGE.relative_to(ROOT)} instead of printing")
    args = parser.parse_args(argv)
    page = render_reference()
    if args.write:
        PAGE.write_text(page, encoding="utf-8")
    else:
        print(page, end="")


if __name__ == "__main__":
    main()
