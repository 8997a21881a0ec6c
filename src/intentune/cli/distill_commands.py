"""``intentune distill``: a smaller student model trained on a trained teacher's probabilities (docs/training.md)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from .common import ConfigFile, Overrides, app, echo_run_report, run


@app.command()
def distill(
    teacher: Annotated[Path, typer.Argument(help="The teacher: a run folder or a model folder.")],
    student: Annotated[
        str | None,
        typer.Option(
            help="The student's backbone: minilm-l6 (the default), smollm2-135m, mpnet-base, a folder or a hub id."
        ),
    ] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="Run folder to write.")] = Path("runs/distilled"),
    unlabeled: Annotated[
        list[Path] | None,
        typer.Option(
            help="Texts without intents (a prediction log, .txt, .csv or .jsonl) that the student learns from the "
            "teacher alone; repeatable."
        ),
    ] = None,
    data: Annotated[Path | None, typer.Option(help="Training data; default: the teacher's training file.")] = None,
    validation: Annotated[Path | None, typer.Option(help="Validation data; default: the teacher's.")] = None,
    test: Annotated[Path | None, typer.Option(help="Test data; default: the teacher's.")] = None,
    config: ConfigFile = None,
    set_: Overrides = None,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
    resume: Annotated[
        bool,
        typer.Option(
            help="Continue an interrupted run from OUTPUT/checkpoint (same teacher and --unlabeled files); without "
            "--config, OUTPUT/config.toml is used."
        ),
    ] = False,
) -> None:
    """Distil a trained model into a smaller student: train it on the teacher's calibrated probabilities and the
    true intents, fit its own calibration and out-of-scope thresholds, and set the two side by side.

    Without --config the student takes the teacher's config (its data files, preprocessing and out-of-scope
    settings), with the backbone's own settings at their defaults.
    """
    from ..config_files import build_config
    from ..distill import load_teacher
    from ..messages import read_messages
    from ..pipeline import train_run
    from ..train import ProgressBar

    def job() -> Any:
        source = load_teacher(teacher)
        options = {"data.train_file": data, "data.validation_file": validation, "data.test_file": test,
                   "model.backbone": student}  # fmt: skip
        saved = output / "config.toml"
        path = config or (saved if resume and saved.is_file() else None)
        if path is None:
            options["model.backbone"] = student or "minilm-l6"
        cfg = build_config(path, set_, options) if path else source.student_config(None, set_ or [], options)
        texts = [t for file in unlabeled or [] for t in read_messages(file, text_field=cfg.data.text_field)]
        bar = [] if quiet else [ProgressBar(file=sys.stderr)]
        return train_run(cfg, output, callbacks=bar, resume=resume, teacher=source, unlabeled=texts)

    result = run(job)
    if result is None:  # a secondary process of a multi-process run: the main one reports
        return
    echo_run_report(result, " of the student")
    typer.echo(f"teacher and student side by side: {result.output_dir / 'distill.md'}")
