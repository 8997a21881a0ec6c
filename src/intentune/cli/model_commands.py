"""The commands that train and use a model: ``train``, ``evaluate``, ``compare``, ``predict``, ``export``,
``inspect`` (a backbone) and ``serve``."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from .common import Backbone, ConfigFile, Overrides, app, echo_run_report, run, state


@app.command()
def train(
    data: Annotated[Path | None, typer.Argument(help="Training data (CSV or JSONL); or set data.train_file.")] = None,
    validation: Annotated[
        Path | None, typer.Option(help="Validation data; default: split off the training data.")
    ] = None,
    test: Annotated[Path | None, typer.Option(help="Test data, evaluated after training.")] = None,
    backbone: Backbone = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="Run folder to write.")] = Path("runs/latest"),
    config: ConfigFile = None,
    set_: Overrides = None,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
    resume: Annotated[
        bool,
        typer.Option(
            help="Continue an interrupted run from OUTPUT/checkpoint; without --config, OUTPUT/config.toml is used."
        ),
    ] = False,
    init_from: Annotated[
        Path | None,
        typer.Option(
            help="Start from a trained model (run or model folder): keep its backbone and intents, add the new "
            "data's intents, mix in a sample of its training rows; without --config, its config is used."
        ),
    ] = None,
    replay: Annotated[
        Path | None,
        typer.Option(help="With --init-from: the old training data to replay; default: the run's splits/train.csv."),
    ] = None,
) -> None:
    """Fine-tune a backbone on labelled utterances, save the model, and print the evaluation report.

    Runs data-parallel under `accelerate launch` or `torchrun` (only the main process writes and reports).
    """
    from ..config_files import build_config
    from ..extend import load_previous
    from ..pipeline import train_run
    from ..train import ProgressBar

    if replay is not None and init_from is None:
        raise typer.BadParameter("--replay needs --init-from", param_hint="--replay")

    def job() -> Any:
        saved = output / "config.toml"
        path = config or (saved if resume and saved.is_file() else None)
        options = {"data.train_file": data, "data.validation_file": validation, "data.test_file": test,
                   "model.backbone": backbone or None}  # fmt: skip
        start = load_previous(init_from, replay_file=replay) if init_from is not None else None
        cfg = start.config(set_, options) if start is not None and path is None else build_config(path, set_, options)
        # Callbacks such as the progress bar run on the main process only.
        bar = [] if quiet else [ProgressBar(file=sys.stderr)]
        return train_run(cfg, output, callbacks=bar, resume=resume, init_from=start)

    result = run(job)
    if result is None:  # a secondary process of a multi-process run: the main one reports
        return
    echo_run_report(result)
    if result.comparison is not None:
        drops = len(result.comparison.regressions)
        typer.echo(f"compared with the {result.comparison.a}: {result.output_dir / 'compare_with_previous.md'} "
                   f"({drops} intent(s) dropped more than {result.comparison.max_drop} F1)")  # fmt: skip


@app.command()
def evaluate(
    model: Annotated[Path, typer.Argument(help="A model folder (or the run folder holding it).")],
    data: Annotated[Path, typer.Argument(help="Labelled data (CSV or JSONL).")],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write report files here.")] = None,
    text_field: Annotated[str | None, typer.Option(help="Text field; default: the model's.")] = None,
    label_field: Annotated[str | None, typer.Option(help="Intent field; default: the model's.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print metrics as JSON.")] = False,
) -> None:
    """Evaluate a trained model on a labelled file: accuracy, per-intent metrics, confusion matrix."""
    from ..pipeline import evaluate_model

    report = run(lambda: evaluate_model(model, data, output_dir=output, text_field=text_field, label_field=label_field))
    typer.echo(report.to_json() if as_json else report.to_text())


@app.command()
def compare(
    run_a: Annotated[Path, typer.Argument(help="Baseline: a run folder, evaluation folder or metrics.json.")],
    run_b: Annotated[Path, typer.Argument(help="Candidate: a run folder, evaluation folder or metrics.json.")],
    max_drop: Annotated[
        float, typer.Option(min=0.0, help="Fail when an intent's F1 drops by more than this (0.05 = 5 points).")
    ] = 0.05,
    as_json: Annotated[bool, typer.Option("--json", help="Print the comparison as JSON.")] = False,
) -> None:
    """Compare two evaluations intent by intent; exit 1 when an intent's F1 drops more than --max-drop.

    Use it as a regression gate in CI: evaluate the new model on the same test file as the old one, then compare.
    """
    from ..evaluate.compare import compare_runs

    result = run(lambda: compare_runs(run_a, run_b, max_drop=max_drop))
    typer.echo(json.dumps(result.to_dict(), indent=2) if as_json else result.to_text())
    if result.regressions:
        raise typer.Exit(1)


@app.command()
def predict(
    model: Annotated[Path, typer.Argument(help="A model folder (or the run folder holding it).")],
    texts: Annotated[list[str] | None, typer.Argument(help="Texts; none: read --file or standard input.")] = None,
    file: Annotated[Path | None, typer.Option("--file", "-f", help="A text file, one utterance per line.")] = None,
    input_: Annotated[
        Path | None, typer.Option("--input", "-i", help="A CSV or JSONL file of any size to predict row by row.")
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="With --input: the CSV or JSONL file to write.")
    ] = None,
    text_field: Annotated[str | None, typer.Option(help="With --input: the text column; default: the model's.")] = None,
    runtime: Annotated[
        str,
        typer.Option(help="auto (int8 ONNX, else ONNX, else PyTorch: what the folder has), torch, onnx, onnx-int8."),
    ] = "auto",
    top_k: Annotated[int, typer.Option(min=1, help="Show this many intents per text.")] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """Predict the intent of texts, with the confidence of each; or of every row of a file (--input, --output).

    With --input, the output keeps every input column and adds intent, confidence, is_out_of_scope (and top, as
    JSON, with --top-k above 1); the file is read and written in chunks, so it may be of any size.
    """
    from ..batch import predict_file, predict_texts

    if input_ is not None:
        if output is None or texts or file is not None:
            raise typer.BadParameter("--input needs --output, and no texts or --file", param_hint="--input")
        rows = run(lambda: predict_file(model, input_, output, text_field=text_field, runtime=runtime, top_k=top_k,
                                         progress=True))  # fmt: skip
        typer.echo(f"{rows} predictions written to {output}", err=True)
        return
    lines = list(texts or [])
    if file is not None:
        lines += _read_lines(file)
    elif not lines and not sys.stdin.isatty():
        lines += [line.strip() for line in sys.stdin if line.strip()]
    results = run(lambda: predict_texts(model, lines, top_k=top_k, runtime=runtime))
    for result in results:
        if as_json:
            typer.echo(json.dumps(result, ensure_ascii=False))
        else:
            others = ", ".join(f"{t['intent']} {t['confidence']:.3f}" for t in result["top"][1:])
            suffix = f"  ({others})" if others else ""
            found = [i["intent"] for i in result.get("intents", [])]  # several from a multi-label model
            answer = "+".join(found) if len(found) > 1 else result["intent"]
            typer.echo(f"{answer}\t{result['confidence']:.3f}\t{result['text']}{suffix}")


@app.command()
def export(
    model: Annotated[Path, typer.Argument(help="A model folder (or the run folder holding it).")],
    fmt: Annotated[str, typer.Option("--format", help="Export format: onnx.")] = "onnx",
    quantize: Annotated[
        str | None, typer.Option(help="int8: also write int8 weights (model.int8.onnx), smaller and faster.")
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write an ONNX-only model folder here; default: MODEL/onnx/."),
    ] = None,
    check: Annotated[
        Path | None, typer.Option(help="A labelled file: compare accuracy and answers of each runtime with PyTorch.")
    ] = None,
    text_field: Annotated[str | None, typer.Option(help="Text field of --check; default: the model's.")] = None,
    label_field: Annotated[str | None, typer.Option(help="Intent field of --check; default: the model's.")] = None,
) -> None:
    """Export a model for fast CPU inference with ONNX Runtime (used by predict and serve: --runtime auto).

    Writes onnx/model.onnx, with --quantize int8 also onnx/model.int8.onnx, and onnx/export.json (versions and
    the --check results).
    """
    import torch  # noqa: F401  (imported first: importing it resets the level of its loggers, set below)

    from ..export import export_model

    logging.getLogger("torch.onnx").setLevel(logging.INFO if state["verbose"] else logging.ERROR)
    result = run(
        lambda: export_model(model, fmt=fmt, quantize=quantize, output_dir=output, check_file=check,
                             text_field=text_field, label_field=label_field)
    )  # fmt: skip
    typer.echo(result.to_text())


@app.command()
def inspect(
    backbone: Annotated[str, typer.Argument(help="smollm2-135m, minilm-l6, mpnet-base, a model folder or a hub id.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Show a backbone's architecture: kind, parameters, layers, sizes, tokenizer and module tree."""
    from ..describe import describe_backbone

    info = run(lambda: describe_backbone(backbone))
    typer.echo(json.dumps(info.to_dict(), indent=2) if as_json else info.to_text())


@app.command()
def serve(
    model: Annotated[
        Path | None, typer.Argument(help="A model folder (or the run folder holding it); default: serve.model_dir.")
    ] = None,
    host: Annotated[str | None, typer.Option(help="Address to listen on (serve.host; default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(min=0, max=65535, help="Port (serve.port; default 8000).")] = None,
    config: ConfigFile = None,
    set_: Overrides = None,
) -> None:
    """Serve a model over HTTP: POST /v1/predict, GET /v1/model, GET /health, a chat demo page at /, API docs at /docs.

    Settings come from the serve section of --config, then INTENTUNE_* environment variables (INTENTUNE_PORT=9000),
    then --set, --host and --port. When $INTENTUNE_API_KEY is set, /v1/ routes require that key.
    """
    from ..config_files import build_config
    from ..serve import serve as serve_model

    def job() -> None:
        cfg = build_config(config, set_, {"serve.host": host or None, "serve.port": port}, env=True)
        serve_model(model, cfg.serve)

    run(job)


def _read_lines(path: Path) -> list[str]:
    if not path.is_file():
        typer.secho(f"error: {path}: file not found", fg=typer.colors.RED, err=True)
        raise typer.Exit(1)
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
