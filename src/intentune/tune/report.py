"""What a study leaves in the run folder: ``trials.csv``, ``tune_report.md``, ``study.json``, ``best_config.toml``."""

from __future__ import annotations

import csv
import io
import json
import math
from typing import TYPE_CHECKING, Any

from .._io import write_file_atomic
from ..config_files import save_config
from .storage import mask_password

if TYPE_CHECKING:
    import optuna

    from .search import TuneResult


def trial_row(trial: optuna.trial.FrozenTrial, searched: list[str]) -> dict[str, Any]:
    """One row of ``trials.csv``: number, state, each searched value, val_accuracy, val_loss, seconds, note."""
    attrs = trial.user_attrs
    note = attrs.get("error") or (f"pruned at epoch {attrs['pruned_at_epoch']}" if "pruned_at_epoch" in attrs else "")
    return {
        "number": trial.number,
        "state": trial.state.name,
        **{key: trial.params.get(key) for key in searched},
        "val_accuracy": attrs.get("val_accuracy"),
        "val_loss": attrs.get("val_loss"),
        "seconds": round(trial.duration.total_seconds(), 2) if trial.duration else None,
        "note": note,
    }


def rank_key(row: dict[str, Any]) -> tuple[int, float, float]:
    """Sort key: complete trials first, then pruned, then failed, then running or waiting (another worker's);
    higher accuracy, then lower loss, first."""
    order = {"COMPLETE": 0, "PRUNED": 1, "FAIL": 2}.get(row["state"], 3)
    acc, loss = row["val_accuracy"], row["val_loss"]
    return order, -(acc if acc is not None and not math.isnan(acc) else -1.0), loss if loss is not None else math.inf


def write_outputs(
    result: TuneResult, space: dict[str, Any], searched: list[str], validation_rows: int, storage: str | None = None
) -> None:
    """Write ``trials.csv``, ``tune_report.md``, ``best_config.toml`` and ``study.json`` to the output folder, each
    atomically (workers of one study that share the folder replace each other's files whole)."""
    out = result.output_dir
    out.mkdir(parents=True, exist_ok=True)
    table = io.StringIO()
    writer = csv.DictWriter(table, fieldnames=list(result.rows[0]), lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(result.rows)
    write_file_atomic(out / "trials.csv", table.getvalue())
    write_file_atomic(out / "tune_report.md", report_markdown(result, searched, validation_rows, storage))
    save_config(result.best_config, out / "best_config.toml")
    from ..pipeline import environment

    study = {
        "study_name": result.study.study_name,
        "storage": mask_password(storage) if storage else None,
        "best_trial": result.best_trial,
        "best_params": result.best_params,
        "best_val_accuracy": result.best_row["val_accuracy"],
        "best_val_loss": result.best_row["val_loss"],
        "space": space,
        "sampler": type(result.study.sampler).__name__,
        "pruner": type(result.study.pruner).__name__,
        "trials": [
            {**row, "intermediate_val_accuracy": t.intermediate_values}
            for row, t in zip(result.rows, result.study.trials)
        ],
        "environment": environment(),
    }
    write_file_atomic(out / "study.json", json.dumps(study, indent=2, default=str))


def report_markdown(result: TuneResult, searched: list[str], validation_rows: int, storage: str | None = None) -> str:
    """The trials ranked (complete by validation accuracy, then pruned, then failed, then those still running in
    other workers) and the best values; with ``storage``, the study's name and storage (password masked)."""
    counts: dict[str, int] = {}
    for row in result.rows:
        counts[_state(row)] = counts.get(_state(row), 0) + 1
    best = result.best_row
    headers = [f"`{key}`" for key in searched]
    where = f"Study `{result.study.study_name}` in `{mask_password(storage)}`" if storage else ""
    shared = ["", f"{where}: every worker's trials, as they stood when this worker finished."] if storage else []
    lines = [
        "# Hyperparameter search",
        "",
        f"{len(result.rows)} trials ({', '.join(f'{n} {s}' for s, n in counts.items())}), scored by accuracy on "
        f"{validation_rows} validation rows (ties: lower validation loss).",
        *shared,
        "",
        f"## Best: trial {result.best_trial}, val_accuracy {best['val_accuracy']:.4f}, val_loss {best['val_loss']:.4f}",
        "",
        "| key | value |",
        "|---|---|",
        *(f"| `{key}` | {_fmt(value)} |" for key, value in result.best_params.items()),
        "",
        "Train it: `intentune train --config best_config.toml` (the full config, data files included).",
        "",
        "## Trials",
        "",
        "| " + " | ".join(["rank", "trial", "state", "val_accuracy", "val_loss", *headers, "seconds", "note"]) + " |",
        "|---:|---:|---|---:|---:|" + "---|" * len(searched) + "---:|---|",
    ]
    for rank, row in enumerate(sorted(result.rows, key=rank_key), start=1):
        cells = [rank, row["number"], _state(row), row["val_accuracy"], row["val_loss"]]
        cells += [row[key] for key in searched] + [row["seconds"], row["note"].replace("|", "\\|")]
        lines.append("| " + " | ".join(_fmt(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def _state(row: dict[str, Any]) -> str:
    return {"FAIL": "failed"}.get(row["state"], row["state"].lower())


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
