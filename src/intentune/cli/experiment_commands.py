"""The commands that fine-tune many times to answer a question: ``cv`` (cross-validation), ``learning-curve`` (would
more data help?) and ``tune`` (a hyperparameter search)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from .common import Backbone, ConfigFile, Overrides, app, run, state


def _parse_fractions(text: str) -> list[float]:
    try:
        return [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        message = f"expected numbers separated by commas, such as 0.1,0.25,0.5,1; found {text!r}"
        raise typer.BadParameter(message, param_hint="'--fractions'") from None


@app.command("cv")
def cross_validate(
    data: Annotated[Path, typer.Argument(help="Labelled data (CSV, JSONL, Rasa YAML, ...).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for the report files.")],
    folds: Annotated[int, typer.Option(min=2, help="Number of stratified folds (one fine-tune each).")] = 5,
    backbone: Backbone = None,
    config: ConfigFile = None,
    set_: Overrides = None,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
) -> None:
    """Cross-validate: fine-tune on k-1 folds, predict the held-out fold, k times; report every row out of fold."""
    from ..config_files import build_config
    from ..pipeline import cross_validate_file
    from ..train import ProgressBar

    def report_fold(fold: int, accuracy: float) -> None:
        typer.echo(f"fold {fold}/{folds}: accuracy {accuracy:.4f}", err=True)

    def job() -> Any:
        cfg = build_config(config, set_, {"model.backbone": backbone or None})
        callbacks = [] if quiet else [ProgressBar(file=sys.stderr)]
        return cross_validate_file(data, output, cfg, folds=folds, callbacks=callbacks, on_fold=report_fold)

    result = run(job)
    typer.echo(result.to_text())
    typer.echo(f"\nreport: {output / 'report.md'}\nout-of-fold predictions: {output / 'oof_predictions.csv'}")


@app.command("learning-curve")
def learning_curve(
    data: Annotated[Path, typer.Argument(help="Training data.")],
    eval_file: Annotated[Path, typer.Option("--eval", help="Held-out data every model is scored on.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for learning_curve.json and .png.")],
    fractions: Annotated[
        str, typer.Option(help="Shares of the training data, comma-separated, each in (0, 1].")
    ] = "0.1,0.25,0.5,1",
    validation: Annotated[
        Path | None, typer.Option(help="Validation data for early stopping; default: split off each subset.")
    ] = None,
    backbone: Backbone = None,
    config: ConfigFile = None,
    set_: Overrides = None,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
) -> None:
    """Fine-tune on growing shares of the training data and score each: would more data help?"""
    from ..config_files import build_config
    from ..pipeline import learning_curve_file
    from ..train import ProgressBar

    shares = _parse_fractions(fractions)

    def job() -> Any:
        cfg = build_config(config, set_, {"model.backbone": backbone or None, "data.validation_file": validation})
        callbacks = [] if quiet else [ProgressBar(file=sys.stderr)]
        return learning_curve_file(data, eval_file, output, cfg, fractions=shares, callbacks=callbacks)

    curve = run(job)
    typer.echo(curve.to_text())
    typer.echo(f"\nwritten to {output / 'learning_curve.json'} and {output / 'learning_curve.png'}")


@app.command("tune")
def tune_command(
    data: Annotated[Path | None, typer.Argument(help="Training data (CSV or JSONL); or set data.train_file.")] = None,
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Folder for trials.csv, tune_report.md, best_config.toml.")
    ] = Path("runs/tune"),
    trials: Annotated[
        int, typer.Option(min=1, help="How many trials (one fine-tune each); with --storage, this worker's share.")
    ] = 20,
    timeout: Annotated[float | None, typer.Option(min=0, help="Start no new trial after this many seconds.")] = None,
    validation: Annotated[
        Path | None, typer.Option(help="Validation data; default: split off the training data.")
    ] = None,
    storage: Annotated[
        str | None,
        typer.Option(
            help="Share the study between worker processes: sqlite:///PATH.db, a database URL "
            "(postgresql://USER:PASSWORD@HOST/DB) or journal:PATH (a log file on a shared file system).",
        ),
    ] = None,
    study_name: Annotated[
        str | None,
        typer.Option(help="The study to create or join; default: a hash of the config, search space and data."),
    ] = None,
    space: Annotated[
        Path | None, typer.Option(help="A TOML file of search ranges, sectioned like the config, over the defaults.")
    ] = None,
    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param",
            help="section.key=SPEC: a list of choices, a range {low=1e-5, high=1e-3, log=true}, or one fixed value.",
        ),
    ] = None,
    train_best: Annotated[bool, typer.Option(help="Afterwards, train the best config into OUTPUT/best/.")] = False,
    backbone: Backbone = None,
    config: ConfigFile = None,
    set_: Overrides = None,
    quiet: Annotated[bool, typer.Option(help="No progress bars.")] = False,
) -> None:
    """Search hyperparameters with Optuna: learning rate, batch size, epochs, optimizer, warmup (LoRA rank with LoRA).

    Trials that fall behind are pruned on their validation accuracy. Writes trials.csv, tune_report.md, study.json
    and best_config.toml, which `intentune train --config OUTPUT/best_config.toml` trains. With --storage, every
    worker started with the same command adds its trials to one study and writes these files from all of them.
    """
    import optuna

    from ..config_files import build_config
    from ..train import ProgressBar
    from ..tune import default_space, load_space, parse_param, tune

    optuna.logging.set_verbosity(optuna.logging.INFO if state["verbose"] else optuna.logging.ERROR)

    def report_trial(row: dict[str, Any]) -> None:
        score = "" if row["val_accuracy"] is None else f", val_accuracy {row['val_accuracy']:.4f}"
        note = f": {row['note']}" if row["note"] else ""
        typer.echo(f"trial {row['number']}: {row['state'].lower()}{score} ({row['seconds']} s){note}", err=True)

    def job() -> Any:
        options = {"data.train_file": data, "data.validation_file": validation, "model.backbone": backbone or None}
        cfg = build_config(config, set_, options)
        ranges = {**default_space(cfg), **(load_space(space) if space else {})}
        ranges.update(parse_param(assignment) for assignment in param or [])
        bars = [] if quiet else [ProgressBar(file=sys.stderr, leave=False)]
        return tune(cfg, output, trials=trials, timeout_s=timeout, space=ranges, callbacks=bars,
                    train_best=train_best, on_trial=report_trial, storage=storage, study_name=study_name)  # fmt: skip

    result = run(job)
    if storage is not None:
        typer.echo(f"study {result.study.study_name}: {len(result.rows)} trials from every worker so far")
    best = result.best_row
    typer.echo(f"best: trial {result.best_trial}, val_accuracy {best['val_accuracy']:.4f}, "
               f"val_loss {best['val_loss']:.4f}")  # fmt: skip
    for key, value in result.best_params.items():
        typer.echo(f"  {key} = {value}")
    typer.echo(f"table: {output / 'tune_report.md'} (also trials.csv, study.json)")
    typer.echo(f"best config: {output / 'best_config.toml'} (intentune train --config {output / 'best_config.toml'})")
    if result.best_run is not None:
        typer.echo(f"best model: {result.best_run.model_dir}")
