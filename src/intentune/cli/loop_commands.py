"""The production loop's commands, on unlabelled messages and a trained model: ``review`` (the labelling queue) and
``discover`` (new intents in what the model rejects); docs/production-loop.md."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .common import app, run

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
    from ..review import review_messages

    result = run(
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
    from ..discover import DiscoverSettings, discover_intents

    settings = DiscoverSettings(max_confidence, method, min_cluster_size, distance_threshold, examples)
    result = run(lambda: discover_intents(messages, model, output, settings, runtime=runtime, text_field=text_field))
    typer.echo(result.to_text())
    typer.echo(f"written to {output} (clusters.csv, messages.csv, discover.html)")
