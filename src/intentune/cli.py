"""The ``intentune`` command line. Each command parses its arguments and calls one library function.

Commands with settings take ``--config FILE`` and ``--set section.key=value``; :func:`intentune.config.build_config`
assembles them for every command: the file (or the defaults), then ``--set``, then the command's own options.

Errors print one red line and exit 1 (``--verbose`` shows the traceback); usage errors exit 2.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from .errors import IntentuneError

app = typer.Typer(
    name="intentune",
    help="Fine-tune pretrained language models into intent classifiers for chatbots.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(
    help="Work with data files: split, convert, validate, doctor, expand, generate, augment.", no_args_is_help=True
)
config_app = typer.Typer(help="Write and check config files.", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(config_app, name="config")

T = TypeVar("T")
_state = {"verbose": False}

Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="Show tracebacks and debug logs.")]
Backbone = Annotated[str | None, typer.Option(help="smollm2-135m, minilm-l6, mpnet-base, a model folder or a hub id.")]
ConfigFile = Annotated[Path | None, typer.Option("--config", "-c", help="A TOML config file.")]
Overrides = Annotated[list[str] | None, typer.Option("--set", help="Override: section.key=value (repeatable).")]
TextField = Annotated[str | None, typer.Option(help="Text field name (CSV/JSONL); default: data.text_field.")]
LabelField = Annotated[str | None, typer.Option(help="Intent field name (CSV/JSONL); default: data.label_field.")]


@app.callback()
def main(verbose: Verbose = False) -> None:
    """Fine-tune pretrained language models into intent classifiers for chatbots."""
    _state["verbose"] = verbose
    _setup_logging(verbose)


def _setup_logging(verbose: bool) -> None:
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


def _run(fn: Callable[[], T]) -> T:
    """Call library code; turn intentune errors into one red line and exit code 1."""
    try:
        return fn()
    except IntentuneError as exc:
        if _state["verbose"]:
            raise
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None


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
    from .config import build_config
    from .extend import load_previous
    from .pipeline import train_run
    from .train import ProgressBar

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

    result = _run(job)
    if result is None:  # a secondary process of a multi-process run: the main one reports
        return
    typer.echo(f"\nEvaluation on the {result.eval_split} data:\n")
    typer.echo(result.report.to_text())
    report = result.output_dir / "report.html"
    typer.echo(f"\nmodel: {result.model_dir}\nreport: {report} (also report.md, metrics.json)")
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
    from .pipeline import evaluate_model

    report = _run(
        lambda: evaluate_model(model, data, output_dir=output, text_field=text_field, label_field=label_field)
    )
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
    from .evaluate.compare import compare_runs

    result = _run(lambda: compare_runs(run_a, run_b, max_drop=max_drop))
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
    from .batch import predict_file, predict_texts

    if input_ is not None:
        if output is None or texts or file is not None:
            raise typer.BadParameter("--input needs --output, and no texts or --file", param_hint="--input")
        rows = _run(lambda: predict_file(model, input_, output, text_field=text_field, runtime=runtime, top_k=top_k,
                                         progress=True))  # fmt: skip
        typer.echo(f"{rows} predictions written to {output}", err=True)
        return
    lines = list(texts or [])
    if file is not None:
        lines += _read_lines(file)
    elif not lines and not sys.stdin.isatty():
        lines += [line.strip() for line in sys.stdin if line.strip()]
    results = _run(lambda: predict_texts(model, lines, top_k=top_k, runtime=runtime))
    for result in results:
        if as_json:
            typer.echo(json.dumps(result, ensure_ascii=False))
        else:
            others = ", ".join(f"{t['intent']} {t['confidence']:.3f}" for t in result["top"][1:])
            suffix = f"  ({others})" if others else ""
            found = [i["intent"] for i in result.get("intents", [])]  # several from a multi-label model
            answer = "+".join(found) if len(found) > 1 else result["intent"]
            typer.echo(f"{answer}\t{result['confidence']:.3f}\t{result['text']}{suffix}")


MessagesArg = Annotated[
    Path, typer.Argument(help="Messages: a prediction log (.jsonl), a .csv or .jsonl with a text field, or a .txt.")
]
ModelOption = Annotated[Path, typer.Option("--model", "-m", help="A model folder (or the run folder holding it).")]
RuntimeOption = Annotated[str, typer.Option(help="auto, torch, onnx or onnx-int8 (as for predict).")]


@app.command()
def review(
    messages: MessagesArg,
    model: ModelOption,
    n: Annotated[int, typer.Option("-n", min=1, help="How many messages to queue at most.")] = 200,
    output: Annotated[Path, typer.Option("--output", "-o", help="The CSV queue to write.")] = Path("queue.csv"),
    compare_model: Annotated[
        Path | None,
        typer.Option(help="A second model (or --model with another --compare-runtime); disagreements rank high."),
    ] = None,
    runtime: RuntimeOption = "auto",
    compare_runtime: RuntimeOption = "auto",
    exclude: Annotated[
        list[Path] | None, typer.Option(help="A file of texts already labelled, left out of the queue (repeatable).")
    ] = None,
    training_data: Annotated[
        bool, typer.Option(help="Leave out texts of the model's own data files (found through its run folder).")
    ] = True,
    max_similarity: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Pooled-vector cosine similarity that counts as a near-duplicate.")
    ] = 0.95,
    text_field: Annotated[str | None, typer.Option(help="The text field of MESSAGES; default: the model's.")] = None,
) -> None:
    """Rank unlabelled messages by what labelling them would teach the model; write them as a CSV to label.

    Uncertain answers (small margin between the two best intents), out-of-scope answers and disagreements with
    --compare-model rank high; near-duplicates and texts already labelled are left out, and the queue spreads over
    the model's embedding space. Fill in the intent column; the file is then training data (docs/production-loop.md).
    """
    from .review import review_messages

    result = _run(
        lambda: review_messages(messages, model, output, n=n, compare_model=compare_model, runtime=runtime,
                                compare_runtime=compare_runtime, exclude=exclude or [], text_field=text_field,
                                max_similarity=max_similarity, use_training_data=training_data)
    )  # fmt: skip
    typer.echo(result.to_text())
    typer.echo(f"written to {output}: fill in the intent column (remove the rows you leave empty)")


@app.command()
def discover(
    messages: MessagesArg,
    model: ModelOption,
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Folder for clusters.csv, messages.csv, discover.html.")
    ] = Path("discover"),
    max_confidence: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Also take answers below this confidence (0: rejected only).")
    ] = 0.5,
    method: Annotated[str, typer.Option(help="hdbscan, or agglomerative (cut at --distance-threshold).")] = "hdbscan",
    min_cluster_size: Annotated[int, typer.Option(min=2, help="The fewest distinct messages in a cluster.")] = 5,
    distance_threshold: Annotated[
        float, typer.Option(min=0.0, max=2.0, help="agglomerative: the cosine distance where merging stops.")
    ] = 0.5,
    examples: Annotated[int, typer.Option(min=1, help="Central messages listed per cluster in clusters.csv.")] = 5,
    runtime: RuntimeOption = "auto",
    text_field: Annotated[str | None, typer.Option(help="The text field of MESSAGES; default: the model's.")] = None,
) -> None:
    """Find new intents in what the model rejects: cluster rejected and low-confidence messages, name each cluster.

    A run that finds no rejected message writes empty files and exits 0.
    """
    from .discover import DiscoverSettings, discover_intents

    settings = DiscoverSettings(max_confidence, method, min_cluster_size, distance_threshold, examples)
    result = _run(lambda: discover_intents(messages, model, output, settings, runtime=runtime, text_field=text_field))
    typer.echo(result.to_text())
    typer.echo(f"written to {output} (clusters.csv, messages.csv, discover.html)")


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

    from .export import export_model

    logging.getLogger("torch.onnx").setLevel(logging.INFO if _state["verbose"] else logging.ERROR)
    result = _run(
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
    from .backbones import describe_backbone

    info = _run(lambda: describe_backbone(backbone))
    typer.echo(json.dumps(info.to_dict(), indent=2) if as_json else info.to_text())


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
    from .config import build_config
    from .datafiles import split_data

    def job() -> Any:
        options = {"data.validation_fraction": validation_share, "data.test_fraction": test_share,
                   "data.split_seed": seed, "data.text_field": text_field, "data.label_field": label_field}  # fmt: skip
        cfg = build_config(config, set_, options)
        return split_data(data, output_dir, fractions=None if train_share is None else {"train": train_share},
                          config=cfg)  # fmt: skip

    parts = _run(job)
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
    from .config import build_config
    from .datafiles import convert_data

    def job() -> Any:
        cfg = build_config(config, set_, {"data.text_field": text_field, "data.label_field": label_field})
        return convert_data(source, target, source_format=source_format, target_format=target_format,
                            text_field=cfg.data.text_field, label_field=cfg.data.label_field, split=split)  # fmt: skip

    data = _run(job)
    typer.echo(f"wrote {len(data)} rows, {len(data.counts())} intents to {target}")


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
    from .config import build_config
    from .datafiles import validate_data

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

    report = _run(job)
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
    from .data import write_examples
    from .synth import expand_templates, load_templates

    rows = _run(lambda: expand_templates(load_templates(spec), seed=seed, max_per_intent=max_per_intent))
    _run(lambda: write_examples(rows, output))
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

    from .config import build_config
    from .data import load_examples
    from .model import IntentClassifier
    from .synth import generate_paraphrases, make_paraphraser

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

    rows = _run(job)
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

    from .augment import augment_data
    from .config import build_config
    from .train import ProgressBar

    def job() -> Any:
        cfg = build_config(config, set_, {"data.validation_file": validation, "data.test_file": test})
        with tqdm(desc="generating", unit="seed", file=sys.stderr, disable=quiet or not generate) as bar:
            return augment_data(
                data, output, config=cfg, templates=templates, generate=generate, synthetic_files=synthetic or [],
                ratio=ratio, cap_per_intent=cap_per_intent, evaluate=evaluate, filter_model=filter_model,
                callbacks=[] if quiet else [ProgressBar(file=sys.stderr)], progress=bar.update,
            )  # fmt: skip

    result = _run(job)
    real = sum(source == "real" for source in result.combined.sources)
    typer.echo(f"{len(result.combined)} training rows ({real} real) in {output / 'train_augmented.csv'}")
    if result.comparison is not None:
        from .augment import comparison_markdown

        typer.echo(comparison_markdown(result.comparison))


def _parse_fractions(text: str) -> list[float]:
    try:
        return [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        message = f"expected numbers separated by commas, such as 0.1,0.25,0.5,1; found {text!r}"
        raise typer.BadParameter(message, param_hint="'--fractions'") from None


def _check_method(value: str) -> str:
    if value not in ("embeddings", "finetune"):
        raise typer.BadParameter(f"expected embeddings or finetune, found {value!r}")
    return value


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
    from .config import build_config
    from .pipeline import cross_validate_file
    from .train import ProgressBar

    def report_fold(fold: int, accuracy: float) -> None:
        typer.echo(f"fold {fold}/{folds}: accuracy {accuracy:.4f}", err=True)

    def job() -> Any:
        cfg = build_config(config, set_, {"model.backbone": backbone or None})
        callbacks = [] if quiet else [ProgressBar(file=sys.stderr)]
        return cross_validate_file(data, output, cfg, folds=folds, callbacks=callbacks, on_fold=report_fold)

    result = _run(job)
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
    from .config import build_config
    from .pipeline import learning_curve_file
    from .train import ProgressBar

    shares = _parse_fractions(fractions)

    def job() -> Any:
        cfg = build_config(config, set_, {"model.backbone": backbone or None, "data.validation_file": validation})
        callbacks = [] if quiet else [ProgressBar(file=sys.stderr)]
        return learning_curve_file(data, eval_file, output, cfg, fractions=shares, callbacks=callbacks)

    curve = _run(job)
    typer.echo(curve.to_text())
    typer.echo(f"\nwritten to {output / 'learning_curve.json'} and {output / 'learning_curve.png'}")


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

    from .config import build_config
    from .datafiles import doctor_data
    from .train import ProgressBar

    def job() -> Any:
        cfg = build_config(config, set_)
        callbacks = [] if quiet else [ProgressBar(file=sys.stderr)]
        with tqdm(desc="embedding", unit=" texts", file=sys.stderr, disable=quiet or method != "embeddings") as bar:
            return doctor_data(
                data, output, config=cfg, method=method, backbone=backbone, folds=folds, top=top,
                callbacks=callbacks, progress=bar.update,
            )  # fmt: skip

    report = _run(job)
    typer.echo(report.to_text(top=top))
    typer.echo(f"\nwritten to {output} (suspects.csv, overlaps.csv, doctor.md, doctor.json)")


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

    from .config import build_config
    from .train import ProgressBar
    from .tune import default_space, load_space, parse_param, tune

    optuna.logging.set_verbosity(optuna.logging.INFO if _state["verbose"] else optuna.logging.ERROR)

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

    result = _run(job)
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


@config_app.command("init")
def config_init(
    path: Annotated[Path, typer.Argument(help="Where to write the config.")] = Path("intentune.toml"),
    force: Annotated[bool, typer.Option(help="Overwrite an existing file.")] = False,
) -> None:
    """Write a complete, commented config file with every default."""
    from .config import render_config

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
    from .config import build_config, render_config

    cfg = _run(lambda: build_config(config, set_))
    typer.echo(render_config(cfg))


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
    from .config import build_config
    from .serve import serve as serve_model

    def job() -> None:
        cfg = build_config(config, set_, {"serve.host": host or None, "serve.port": port}, env=True)
        serve_model(model, cfg.serve)

    _run(job)


def _read_lines(path: Path) -> list[str]:
    if not path.is_file():
        typer.secho(f"error: {path}: file not found", fg=typer.colors.RED, err=True)
        raise typer.Exit(1)
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


if __name__ == "__main__":  # pragma: no cover
    app()
