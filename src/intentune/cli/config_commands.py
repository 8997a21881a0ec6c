"""``intentune config ...``: write a commented config file with every default (``init``), print a resolved one
(``show``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .common import Overrides, config_app, run


@config_app.command("init")
def config_init(
    path: Annotated[Path, typer.Argument(help="Where to write the config.")] = Path("intentune.toml"),
    force: Annotated[bool, typer.Option(help="Overwrite an existing file.")] = False,
) -> None:
    """Write a complete, commented config file with every default."""
    from ..config_files import render_config

    if path.exists() and not force:
        typer.secho(f"error: {path} exists; pass --force to overwrite", fg=typer.colors.RED, err=True)
        raise typer.Exit(1)
    path.write_text(render_config(), encoding="utf-8")
    typer.echo(f"wrote {path}")


@config_app.command("show")
def config_show(
    config: Annotated[Path | None, typer.Argument(help="A TOML config file; none: the defaults.")] = None,
    set_: Overrides = None,
) -> None:
    """Print the fully resolved config (file + overrides), checking it on the way."""
    from ..config_files import build_config, render_config

    cfg = run(lambda: build_config(config, set_))
    typer.echo(render_config(cfg))
