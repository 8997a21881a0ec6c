"""``intentune data ...``: split, convert, validate and doctor data files; join single-intent rows into two-intent
ones; expand templates, generate paraphrases and augment real data with synthetic rows."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from .common import ConfigFile, LabelField, Overrides, TextField, data_app, run


@data_app.command("split")
def data_split(
    data: Annotated[Path, typer.Argument(help="Labelled data (CSV or JSONL).")],
    output_dir: Annotated[Path, typer.Option("--output-dir", "-o", help="Folder for train/validation/test files.")],
    train_share: Annotated[
        float | None, typer.Option("--train", help="Training share, 0.6-0.8; default: what validation and test leave.")
    ] = None,
    validation_share: Annotated[
        float | None, typer.Option("--validation", help="Validation share, 0.1-0.2; default: data.validation_fraction.")
    ] = None,
    test_share: Annotated[
        float | None, typer.Option("--test", help="Test share, 0.1-0.2; default: data.test_fraction.")
    ] = None,
    seed: Annotated[
        int | None, typer.Option(help="Shuffle seed; the same seed gives the same split. Default: data.split_seed.")
    ] = None,
    text_field: TextField = None,
    label_field: LabelField = None,
    config: ConfigFile = None,
    set_: Overrides = None,
) -> None:
    """Split a labelled file into stratified train/validation/test files (80/10/10 and seed 13 by default).

    Shares and seed come from data.validation_fraction, data.test_fraction and data.split_seed (--config, --set).

    --validation, --test and --seed override them; --train, unless given, is what validation and test leave.
    """
    from ..config_files import build_config
    from ..datafiles import split_data

    def job() -> Any:
        options = {"data.validation_fraction": validation_share, "data.test_fraction": test_share,
                   "data.split_seed": seed, "data.text_field": text_field, "data.label_field": label_field}  # fmt: skip
        cfg = build_config(config, set_, options)
        return split_data(data, output_dir, fractions=None if train_share is None else {"train": train_share},
                          config=cfg)  # fmt: skip

    parts = run(job)
    for name, part in parts.items():
        typer.echo(f"{name}: {len(part)} rows, {len(part.counts())} intents")
    typer.echo(f"written to {output_dir}")


@data_app.command("convert")
def data_convert(
    source: Annotated[Path, typer.Argument(help="Input file: .csv, .jsonl, .yml (Rasa NLU), .json (CLINC150).")],
    target: Annotated[Path, typer.Argument(help="Output file: .csv, .jsonl or .yml.")],
    source_format: Annotated[
        str | None, typer.Option("--from", help="Input format, if not from the extension.")
    ] = None,
    target_format: Annotated[
        str | None, typer.Option("--to", help="Output format: csv, jsonl, rasa, openai (OpenAI chat JSONL).")
    ] = None,
    text_field: TextField = None,
    label_field: LabelField = None,
    split: Annotated[str, typer.Option(help="CLINC150 JSON: which split to read.")] = "train",
    config: ConfigFile = None,
    set_: Overrides = None,
) -> None:
    """Convert labelled utterances between CSV, JSONL, Rasa NLU YAML and OpenAI chat JSONL."""
    from ..config_files import build_config
    from ..datafiles import convert_data

    def job() -> Any:
        cfg = build_config(config, set_, {"data.text_field": text_field, "data.label_field": label_field})
        return convert_data(source, target, source_format=source_format, target_format=target_format,
                            text_field=cfg.data.text_field, label_field=cfg.data.label_field, split=split)  # fmt: skip

    data = run(job)
    typer.echo(f"wrote {len(data)} rows, {len(data.counts())} intents to {target}")


@data_app.command("join")
def data_join(
    data: Annotated[Path, typer.Argument(help="Labelled data with single-intent rows.")],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Where to write the rows (.csv, .jsonl, .yml); may be DATA.")
    ],
    count: Annotated[int, typer.Option(min=1, help="How many two-intent rows to add.")],
    groups: Annotated[
        Path | None,
        typer.Option(help="JSON or YAML file mapping each group to its intents; intents of one group are not joined."),
    ] = None,
    connector: Annotated[
        list[str] | None,
        typer.Option(
            help="What joins the two messages, spaces included; repeat for several, one drawn per row. "
            "Default: ', and ', ' and ', '. Also, '."
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Sampling seed; the same seed gives the same rows.")] = 0,
    only_joined: Annotated[bool, typer.Option(help="Write the joined rows alone, not DATA's rows with them.")] = False,
    text_field: TextField = None,
    label_field: LabelField = None,
    config: ConfigFile = None,
    set_: Overrides = None,
) -> None:
    """Add two-intent rows to labelled data: two single-intent messages of different intents joined into one and
    labelled with both (greet+ask_status), so that a multi-label model learns to answer two intents.

    Join each split from its own rows (training from training, validation from validation), so that no message
    is on both sides. Joined rows carry source=joined and, like other synthetic rows, only ever train when a
    file is split.
    """
    from ..config_files import build_config
    from ..datafiles import join_data

    def job() -> Any:
        cfg = build_config(config, set_, {"data.text_field": text_field, "data.label_field": label_field})
        return join_data(data, output, count=count, groups_file=groups, connectors=connector, seed=seed,
                         only_joined=only_joined, config=cfg)  # fmt: skip

    written, joined = run(job)
    combinations = len(set(joined.labels))
    typer.echo(f"wrote {len(written)} rows ({len(joined)} joined, {combinations} combinations of intents) to {output}")


@data_app.command("validate")
def data_validate(
    train_file: Annotated[Path, typer.Argument(help="Training data.")],
    validation: Annotated[
        Path | None,
        typer.Option(help="Validation data, checked and compared for leakage; default: data.validation_file."),
    ] = None,
    test: Annotated[
        Path | None, typer.Option(help="Test data, checked and compared for leakage; default: data.test_file.")
    ] = None,
    min_examples: Annotated[int, typer.Option(help="Warn about intents with fewer training examples.")] = 5,
    backbone: Annotated[
        str | None,
        typer.Option(help="Count token lengths with this backbone's tokenizer (none: skip); default: model.backbone."),
    ] = None,
    max_length: Annotated[
        int | None, typer.Option(help="The model's max_length in tokens; default: model.max_length.")
    ] = None,
    text_field: TextField = None,
    label_field: LabelField = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    config: ConfigFile = None,
    set_: Overrides = None,
) -> None:
    """Find data problems before training: empty texts, duplicates, conflicts, leakage, small intents, length.

    Exits 1 when there are errors (conflicting labels, empty texts, too few examples), 0 with only warnings.
    """
    from ..config_files import build_config
    from ..datafiles import validate_data

    skip_lengths = backbone is not None and backbone.strip().lower() in ("", "none")

    def job() -> Any:
        options = {"data.validation_file": validation, "data.test_file": test, "data.text_field": text_field,
                   "data.label_field": label_field, "model.max_length": max_length,
                   "model.backbone": None if skip_lengths else backbone}  # fmt: skip
        cfg = build_config(config, set_, options)
        return validate_data(
            train_file, validation_file=cfg.data.validation_file, test_file=cfg.data.test_file,
            text_field=cfg.data.text_field, label_field=cfg.data.label_field, min_per_intent=min_examples,
            backbone=None if skip_lengths else cfg.model.backbone, max_length=cfg.model.max_length,
            separator=cfg.data.multi_label_separator,
        )  # fmt: skip

    report = run(job)
    typer.echo(report.to_json() if as_json else report.to_text())
    if report.errors:
        raise typer.Exit(1)


@data_app.command("expand")
def data_expand(
    spec: Annotated[Path, typer.Argument(help="Template spec (YAML): intents with patterns and slot values.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the rows (.csv, .jsonl, .yml).")],
    max_per_intent: Annotated[int | None, typer.Option(help="Cap per intent (default: the spec's, or 100).")] = None,
    seed: Annotated[int, typer.Option(help="Sampling seed when combinations exceed the cap.")] = 13,
) -> None:
    """Expand templates into synthetic utterances (source: template)."""
    from ..data import write_examples
    from ..templates import expand_templates, load_templates

    rows = run(lambda: expand_templates(load_templates(spec), seed=seed, max_per_intent=max_per_intent))
    run(lambda: write_examples(rows, output))
    typer.echo(f"wrote {len(rows)} rows, {len(rows.counts())} intents to {output}")


@data_app.command("generate")
def data_generate(
    data: Annotated[Path, typer.Argument(help="Real labelled utterances to paraphrase.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="CSV of generated rows (resumed if it exists).")],
    filter_model: Annotated[
        Path | None, typer.Option(help="A trained model: drop paraphrases it confidently assigns to another intent.")
    ] = None,
    config: ConfigFile = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override, e.g. generate.per_example=5.")] = None,
) -> None:
    """Paraphrase real utterances with a language model (the bundled decoder or an OpenAI-compatible endpoint).

    Paraphrases that repeat a text of data.validation_file or data.test_file (from --config or --set) are dropped.
    """
    from tqdm.auto import tqdm

    from ..config_files import build_config
    from ..data import load_examples
    from ..model import IntentClassifier
    from ..synth import generate_paraphrases, make_paraphraser

    def job() -> Any:
        cfg = build_config(config, set_)
        seeds = load_examples(data, text_field=cfg.data.text_field, label_field=cfg.data.label_field)
        judge = IntentClassifier.load(filter_model) if filter_model else None
        heldout = [  # paraphrases that repeat an evaluation text are dropped
            text
            for path in (cfg.data.validation_file, cfg.data.test_file)
            if path
            for text in load_examples(path, text_field=cfg.data.text_field, label_field=cfg.data.label_field).texts
        ]
        with tqdm(total=len(seeds), desc="generating", unit="seed", file=sys.stderr) as bar:
            return generate_paraphrases(
                seeds,
                make_paraphraser(cfg.generate),
                cfg.generate,
                output,
                classifier=judge,
                heldout=heldout,
                progress=bar.update,
            )

    rows = run(job)
    typer.echo(f"{len(rows)} generated rows in {output}")


@data_app.command("augment")
def data_augment(
    data: Annotated[Path, typer.Argument(help="Real training data.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for the augmented data and comparison.")],
    templates: Annotated[Path | None, typer.Option(help="Template spec to expand.")] = None,
    generate: Annotated[bool, typer.Option(help="Paraphrase the real rows with a language model.")] = False,
    synthetic: Annotated[list[Path] | None, typer.Option(help="Files of synthetic rows to add.")] = None,
    ratio: Annotated[
        float | None, typer.Option(help="At most this many synthetic rows per real row, per intent.")
    ] = None,
    cap_per_intent: Annotated[int | None, typer.Option(help="At most this many synthetic rows per intent.")] = None,
    evaluate: Annotated[bool, typer.Option(help="Train with and without the synthetic rows and compare.")] = False,
    validation: Annotated[Path | None, typer.Option(help="Real validation data (default: split off DATA).")] = None,
    test: Annotated[Path | None, typer.Option(help="Real test data, for the comparison.")] = None,
    filter_model: Annotated[Path | None, typer.Option(help="Model that filters generated paraphrases.")] = None,
    config: ConfigFile = None,
    set_: Overrides = None,
    quiet: Annotated[bool, typer.Option(help="No progress bars.")] = False,
) -> None:
    """Add synthetic rows (templates, generated paraphrases, files) to real data; --evaluate proves the effect.

    Synthetic rows only ever go into training; validation and test stay real, and synthetic rows that repeat a
    training, validation or test text are dropped (the counts are logged).
    """
    from tqdm.auto import tqdm

    from ..augment import augment_data
    from ..config_files import build_config
    from ..train import ProgressBar

    def job() -> Any:
        cfg = build_config(config, set_, {"data.validation_file": validation, "data.test_file": test})
        with tqdm(desc="generating", unit="seed", file=sys.stderr, disable=quiet or not generate) as bar:
            return augment_data(
                data, output, config=cfg, templates=templates, generate=generate, synthetic_files=synthetic or [],
                ratio=ratio, cap_per_intent=cap_per_intent, evaluate=evaluate, filter_model=filter_model,
                callbacks=[] if quiet else [ProgressBar(file=sys.stderr)], progress=bar.update,
            )  # fmt: skip

    result = run(job)
    real = sum(source == "real" for source in result.combined.sources)
    typer.echo(f"{len(result.combined)} training rows ({real} real) in {output / 'train_augmented.csv'}")
    if result.comparison is not None:
        from ..augment import comparison_markdown

        typer.echo(comparison_markdown(result.comparison))


def _check_method(value: str) -> str:
    if value not in ("embeddings", "finetune"):
        raise typer.BadParameter(f"expected embeddings or finetune, found {value!r}")
    return value


@data_app.command("doctor")
def data_doctor(
    data: Annotated[Path, typer.Argument(help="Labelled data to check.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for suspects.csv, overlaps.csv, doctor.*")],
    method: Annotated[
        str,
        typer.Option(
            callback=_check_method, help="embeddings (frozen backbone + logistic regression, fast) or finetune."
        ),
    ] = "embeddings",
    backbone: Annotated[
        str | None, typer.Option(help="Backbone; default minilm-l6 (embeddings) or the config's (finetune).")
    ] = None,
    folds: Annotated[int, typer.Option(min=2, help="Number of stratified folds.")] = 5,
    top: Annotated[int, typer.Option(min=1, help="Show this many suspects and overlapping pairs.")] = 50,
    config: ConfigFile = None,
    set_: Overrides = None,
    quiet: Annotated[bool, typer.Option(help="No progress bars.")] = False,
) -> None:
    """Find rows whose label is probably wrong and intents that overlap, from out-of-fold predictions."""
    from tqdm.auto import tqdm

    from ..config_files import build_config
    from ..datafiles import doctor_data
    from ..train import ProgressBar

    def job() -> Any:
        cfg = build_config(config, set_)
        callbacks = [] if quiet else [ProgressBar(file=sys.stderr)]
        with tqdm(desc="embedding", unit=" texts", file=sys.stderr, disable=quiet or method != "embeddings") as bar:
            return doctor_data(
                data, output, config=cfg, method=method, backbone=backbone, folds=folds, top=top,
                callbacks=callbacks, progress=bar.update,
            )  # fmt: skip

    report = run(job)
    typer.echo(report.to_text(top=top))
    typer.echo(f"\nwritten to {output} (suspects.csv, overlaps.csv, doctor.md, doctor.json)")
