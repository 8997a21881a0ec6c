"""The model folder's format: its files, the checked reading of ``intentune.json``, the backbone config built without
running anything from the folder, and the out-of-scope distance model. Written by
:meth:`intentune.model.IntentClassifier.save`, read by every runtime (PyTorch and ONNX).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from safetensors import SafetensorError

from ._io import recover_folder
from .backbones import first_line
from .errors import ModelError

FORMAT_VERSION = 3  # the newest format this intentune reads (and writes for multi-label models)
# 2: config.json's model_type names intentune, the backbone's type is in intentune.json; single-label models are
# still written as 2, so an intentune that reads 2 loads them. 3: multi-label models (a sigmoid per intent, its
# calibration and thresholds in intentune.json), which an intentune reading only 2 must refuse, not misread.
SINGLE_LABEL_FORMAT = 2
META_FILE = "intentune.json"
HEAD_FILE = "head.safetensors"
DISTANCE_FILE = "oos_distance.safetensors"  # the out-of-scope distance model, when its threshold is used
BACKBONE_CONFIG = "config.json"
# The model_type written into config.json: transformers' Auto classes (and so ``pipeline``) refuse the folder with
# this text in their message, instead of loading the backbone under a random classification layer.
NOT_A_TRANSFORMERS_MODEL = "intentune (not a transformers model: load this folder with intentune.IntentClassifier.load)"


def resolve_model_dir(directory: str | Path) -> Path:
    """Accept a model folder, or a run folder that holds one in ``model/``.

    Raises:
        ModelError: if neither holds an ``intentune.json``.
    """
    directory = Path(directory)
    recover_folder(directory)  # a save killed midway on a platform without an atomic folder swap
    if (directory / META_FILE).is_file():
        return directory
    if (directory / "model" / META_FILE).is_file():
        return directory / "model"
    if not directory.exists():
        raise ModelError(f"model folder {directory} does not exist; train one with `intentune train`")
    raise ModelError(
        f"{directory} is not an intentune model folder (no {META_FILE}); "
        "pass the folder that `intentune train` wrote, or its model/ sub-folder"
    )


def backbone_config(directory: Path, meta: dict[str, Any]) -> Any:
    """The backbone's transformers config from a model folder, built from a class transformers includes.

    The type comes from ``intentune.json`` (``config.json`` names intentune instead, from format 2 on); an
    ``auto_map`` (code of the folder's own) is dropped, so no code from the folder is ever imported.

    Raises:
        ModelError: if ``config.json`` is missing or damaged, or the type is not one transformers includes.
    """
    from transformers import CONFIG_MAPPING

    path = directory / BACKBONE_CONFIG
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"model folder {directory}: {BACKBONE_CONFIG} is missing or damaged ({first_line(exc)}); "
                         "copy the whole model folder, or retrain") from None  # fmt: skip
    model_type = meta.get("backbone_model_type") or (raw.get("model_type") if isinstance(raw, dict) else None)
    if not isinstance(model_type, str) or model_type not in CONFIG_MAPPING:
        raise ModelError(
            f"model folder {directory}: backbone type {model_type!r} is not one that transformers includes, and "
            "intentune never runs code from a model folder; retrain on a backbone transformers supports"
        )
    raw = {k: v for k, v in raw.items() if k not in ("model_type", "auto_map")}
    try:
        return CONFIG_MAPPING[model_type].from_dict(raw)
    except (TypeError, ValueError) as exc:
        raise ModelError(f"model folder {directory}: {BACKBONE_CONFIG} is damaged ({first_line(exc)})") from None


def mark_not_transformers(path: Path) -> None:
    """Write :data:`NOT_A_TRANSFORMERS_MODEL` as the model type of a saved backbone's ``config.json``."""
    raw = json.loads(path.read_text(encoding="utf-8"))
    raw["model_type"] = NOT_A_TRANSFORMERS_MODEL
    path.write_text(json.dumps(raw, indent=2) + "\n", encoding="utf-8")


def load_distance(directory: Path, thresholds: Any) -> Any:
    """The out-of-scope distance model of a model folder when its thresholds are on the distance score, else None.

    Raises:
        ModelError: if the thresholds need it and the folder lacks a readable one.
    """
    if thresholds is None or thresholds.score != "distance":
        return None
    from safetensors.numpy import load_file

    from .evaluate.oos import DistanceModel

    try:
        return DistanceModel.from_arrays(load_file(str(directory / DISTANCE_FILE)))
    except (OSError, KeyError, ValueError, SafetensorError) as exc:
        raise ModelError(
            f"model folder {directory} rejects out-of-scope messages by distance but {DISTANCE_FILE} is missing "
            f"or damaged ({first_line(exc)}); copy the whole model folder, or retrain"
        ) from None


def read_metadata(directory: Path) -> dict[str, Any]:
    """The checked contents of a model folder's ``intentune.json``.

    Raises:
        ModelError: if it is not valid JSON, lacks its format version or a required key, is of a newer format, or
            its pooling and prompt template do not fit together.
    """
    path = directory / META_FILE
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ModelError(f"{path}: not valid JSON ({exc.msg}); the model folder is damaged") from None
    version = meta.get("format_version") if isinstance(meta, dict) else None
    if not isinstance(version, int):
        raise ModelError(f"{path}: no format_version; the model folder is damaged")
    if version > FORMAT_VERSION:
        raise ModelError(
            f"{path}: model format {version} is newer than this intentune reads ({FORMAT_VERSION}); upgrade"
        )
    missing = [k for k in ("labels", "kind", "pooling", "config") if k not in meta]
    if missing:
        raise ModelError(f"{path}: missing {', '.join(missing)}; the model folder is damaged")
    # Texts are wrapped in prompt_template exactly when pooling is prompt; folders written before it lack the key.
    template = meta.get("prompt_template")
    wrapped = isinstance(template, str) and template.count("{text}") == 1
    if (meta["pooling"] == "prompt") != wrapped or (template is not None and not wrapped):
        raise ModelError(
            f"{path}: pooling {meta['pooling']!r} does not fit prompt_template {template!r} (pooling prompt needs "
            "a template with {text}, any other pooling none); the model folder is damaged"
        )
    if meta.get("multi_label") and not (isinstance(meta.get("intent_thresholds"), dict) and version >= 3):
        raise ModelError(f"{path}: a multi-label model without its per-intent thresholds; the model folder is damaged")
    return meta
