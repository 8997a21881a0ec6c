"""What the commands share: the Typer app and its sub-apps, the ``--verbose`` callback and logging set-up, the option
types, and :func:`run`, which turns intentune errors into one red line and exit code 1."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from ..errors import IntentuneError

app = typer.Typer(
    name="intentune",
    help="Fine-tune pretrained language models into intent classifiers for chatbots.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(
    help="Work with data files: split, convert, join, validate, doctor, expand, generate, augment.",
    no_args_is_help=True,
)
config_app = typer.Typer(help="Write and check config files.", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(config_app, name="config")

T = TypeVar("T")
state = {"verbose": False}

Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="Show tracebacks and debug logs.")]
Backbone = Annotated[str | None, typer.Option(help="smollm2-135m, minilm-l6, mpnet-base, a model folder or a hub id.")]
ConfigFile = Annotated[Path | None, typer.Option("--config", "-c", help="A TOML config file.")]
Overrides = Annotated[list[str] | None, typer.Option("--set", help="Override: section.key=value (repeatable).")]
TextField = Annotated[str | None, typer.Option(help="Text field name (CSV/JSONL); default: data.text_field.")]
LabelField = Annotated[str | None, typer.Option(help="Intent field name (CSV/JSONL); default: data.label_field.")]


@app.callback()
def main(verbose: Verbose = False) -> None:
    """Fine-tune pretrained language models into intent classifiers for chatbots."""
    state["verbose"] = verbose
    setup_logging(verbose)


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(message)s", stream=sys.stderr)
    for noisy in ("transformers", "accelerate", "huggingface_hub", "urllib3", "filelock", "matplotlib", "httpx",
                  "onnxscript", "onnx_ir", "onnxruntime"):  # fmt: skip
        logging.getLogger(noisy).setLevel(logging.INFO if verbose else logging.ERROR)
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_info() if verbose else hf_logging.set_verbosity_error()
        if not verbose:
            hf_logging.disable_progress_bar()
    except ImportError:  # pragma: no cover - transformers is a dependency
        pass


def run(fn: Callable[[], T]) -> T:
    """Call library code; turn intentune errors into one red line and exit code 1."""
    try:
        return fn()
    except IntentuneError as exc:
        if state["verbose"]:
            raise
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None


def echo_run_report(result: Any, whose: str = "") -> None:
    """Print a finished training run's evaluation report and where its model and report files are."""
    typer.echo(f"\nEvaluation{whose} on the {result.eval_split} data:\n")
    typer.echo(result.report.to_text())
    report = result.output_dir / "report.html"
    typer.echo(f"\nmodel: {result.model_dir}\nreport: {report} (also report.md, metrics.json)")
