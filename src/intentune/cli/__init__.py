"""The ``intentune`` command line. Each command parses its arguments and calls one library function.

Commands with settings take ``--config FILE`` and ``--set section.key=value``;
:func:`intentune.config_files.build_config` assembles them for every command: the file (or the defaults), then
``--set``, then the command's own options.

Errors print one red line and exit 1 (``--verbose`` shows the traceback); usage errors exit 2.

``common.py`` holds the app, its sub-apps and what the commands share; importing a command module registers its
commands on them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import (  # noqa: F401
    config_commands,
    data_commands,
    distill_commands,
    experiment_commands,
    loop_commands,
    model_commands,
)
from .common import app

if TYPE_CHECKING:
    from typer.models import CommandInfo

__all__ = ["app"]

# `intentune --help` lists the commands in this order (the one they had when they were all in one module), whatever
# order the command modules are imported in; a command missing here goes last.
HELP_ORDER = ("train", "evaluate", "compare", "predict", "review", "discover", "distill", "export", "inspect", "cv",
              "learning-curve", "tune", "serve")  # fmt: skip


def _help_position(command: CommandInfo) -> int:
    name = command.name or getattr(command.callback, "__name__", "").replace("_", "-")
    return HELP_ORDER.index(name) if name in HELP_ORDER else len(HELP_ORDER)


app.registered_commands.sort(key=_help_position)
