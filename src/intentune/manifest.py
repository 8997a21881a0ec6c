"""The run manifest (``manifest.json`` in every run folder): what is needed to reproduce a run and to tell two runs
apart: seed, package versions, data file hashes, split membership, the resolved config, device and command line.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import platform
import sys
from collections import Counter
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from ._io import write_file_atomic
from .config import Config

PACKAGES = (
    "intentune", "torch", "transformers", "tokenizers", "accelerate", "peft", "safetensors", "numpy",
    "scikit-learn", "optuna", "onnxruntime",
)  # fmt: skip


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def row_id(text: str, label: str) -> str:
    """A short, stable id of one labelled row (12 hex digits of SHA-1 over text and label)."""
    return hashlib.sha1(f"{label}\t{text}".encode()).hexdigest()[:12]


def split_membership(texts: list[str], labels: list[str]) -> dict[str, Any]:
    """Rows, rows per intent, per-split hash (of the rows in order) and the id of every row (see :func:`row_id`)."""
    ids = [row_id(t, y) for t, y in zip(texts, labels)]
    return {
        "rows": len(ids),
        "intents": dict(sorted(Counter(labels).items())),
        "sha256": hashlib.sha256("\n".join(ids).encode()).hexdigest(),
        "row_ids": ids,
    }


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[name] = metadata.version(name)
    return versions


def device_info(train_device: str) -> dict[str, Any]:
    import torch

    cuda = torch.cuda.is_available() and train_device != "cpu"
    return {
        "device": "cuda" if cuda else "cpu",
        "name": torch.cuda.get_device_name(0) if cuda else (platform.processor() or platform.machine()),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "processes": int(os.environ.get("WORLD_SIZE", "1")),
        "platform": platform.platform(),
    }


def build_manifest(
    config: Config,
    files: Mapping[str, str | None],
    splits: Mapping[str, tuple[list[str], list[str]]],
    *,
    init_from: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The manifest of a run.

    Args:
        config: the resolved config the run used.
        files: data files by role (``train``, ``validation``, ``test``); None for roles without a file.
        splits: ``(texts, labels)`` actually used per split (after any validation split).
        init_from: the model the run started from (``intentune train --init-from``; see
            :meth:`intentune.extend.PreviousModel.record`): recorded as ``init_from``, and read back by ``--resume``.
    """
    manifest = {
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "seed": config.train.seed,
        "split_seed": config.data.split_seed,
        "command": sys.argv,
        "packages": package_versions(),
        "device": device_info(config.train.device),
        "data_files": {
            role: {"path": str(path), "sha256": file_sha256(path), "bytes": Path(path).stat().st_size}
            for role, path in files.items()
            if path
        },
        "splits": {name: split_membership(*rows) for name, rows in splits.items()},
        "config": config.to_dict(),
    }
    if init_from is not None:
        manifest["init_from"] = dict(init_from)
    return manifest


def write_manifest(path: str | Path, manifest: Mapping[str, Any]) -> None:
    """Write a manifest atomically (readers see the old one or the new one)."""
    write_file_atomic(path, json.dumps(manifest, indent=1) + "\n")


def record_resume(path: str | Path, from_step: int | None, config: Config) -> None:
    """Add a resumed training session to a run's manifest (``resumes``: when, from which step, with which command,
    packages and device), keeping what it recorded about the run's start; a run without a manifest gets none."""
    path = Path(path)
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return
    entry = {
        "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "from_step": from_step,
        "command": sys.argv,
        "packages": package_versions(),
        "device": device_info(config.train.device),
    }
    manifest["resumes"] = [*manifest.get("resumes", []), entry]
    write_manifest(path, manifest)


__all__ = ["build_manifest", "file_sha256", "record_resume", "row_id", "split_membership", "write_manifest"]
