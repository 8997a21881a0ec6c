"""Text clean-up, label encoding, tokenization (with the optional prompt wrap) and dynamic padding."""

from __future__ import annotations

import copy
import re
import unicodedata
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import BackboneError, ConfigError

if TYPE_CHECKING:
    import torch

_SPECIAL = re.compile(r"[^\w\s']|_", re.UNICODE)
_SPACES = re.compile(r"\s+")


def clean_text(text: str, *, lowercase: bool = False, remove_special_chars: bool = False) -> str:
    """Apply the optional preprocessing switches of ``data.lowercase`` and ``data.remove_special_chars``.

    >>> clean_text("Where's my order #123?!", lowercase=True, remove_special_chars=True)
    "where's my order 123"
    """
    if lowercase:
        text = text.lower()
    if remove_special_chars:
        text = _SPACES.sub(" ", _SPECIAL.sub(" ", text)).strip()
    return text


_PUNCT = re.compile(r"[^\w\s]|_")


def normalize_for_matching(text: str) -> str:
    """Lower-case, drop accents and punctuation, fold white space: ``"Hi,  there!"`` -> ``"hi there"``."""
    text = unicodedata.normalize("NFKD", text.lower())
    text = "".join(c for c in text if not unicodedata.combining(c))
    return " ".join(_PUNCT.sub(" ", text).split())


def encode_labels(labels: list[str], classes: list[str]) -> list[int]:
    """Map intent names to ids in ``classes`` order (the model's sorted label list)."""
    index = {label: i for i, label in enumerate(classes)}
    return [index[label] for label in labels]


# Fast tokenizers' Rust backends, copied and set to truncate at a max length (see ``tokenize``).
_BACKENDS: weakref.WeakKeyDictionary[Any, tuple[tuple[int, str], Any]] = weakref.WeakKeyDictionary()


def encode_texts(
    tokenizer: Any, texts: list[str], max_length: int, prompt_template: str | None = None
) -> list[list[int]]:
    """The token ids the network reads for each (already cleaned) text: the one function every runtime, training,
    few-shot prototypes and the data doctor tokenize through, so they all see the same ids.

    Without ``prompt_template`` these are :func:`tokenize`'s ids. With it, each text is wrapped: the tokenizer's
    leading special tokens, the template's text before ``{text}``, the text's own ids (truncated to what the
    template leaves of ``max_length``, on the tokenizer's truncation side), the template's text after ``{text}``,
    and the tokenizer's trailing special tokens (see :class:`PromptWrap`). Truncation shortens the text, never the
    template, so the last token is always the template's last.

    Raises:
        ConfigError: if the template leaves no room for the text within ``max_length``.
    """
    if prompt_template is None:
        return tokenize(tokenizer, texts, max_length)
    wrap = prompt_wrap(tokenizer, prompt_template, max_length)
    before, after = wrap.head + wrap.prefix, wrap.suffix + wrap.tail
    return [before + ids + after for ids in tokenize(tokenizer, texts, wrap.budget, add_special_tokens=False)]


@dataclass(frozen=True)
class PromptWrap:
    """The fixed token ids around every text of a prompt template, and the room left for the text.

    Attributes:
        head: special tokens the tokenizer puts before a text (a BOS or CLS token; often none for decoders).
        prefix: the template's text before ``{text}``, tokenized alone.
        suffix: the template's text after ``{text}``, tokenized alone.
        tail: special tokens the tokenizer puts after a text (an EOS or SEP token; often none for decoders).
        budget: tokens left for the text itself.
    """

    head: list[int]
    prefix: list[int]
    suffix: list[int]
    tail: list[int]
    budget: int


# Wraps per tokenizer, keyed by (template, max_length): the server tokenizes every request through them.
_WRAPS: weakref.WeakKeyDictionary[Any, dict[tuple[str, int], PromptWrap]] = weakref.WeakKeyDictionary()


def prompt_wrap(tokenizer: Any, template: str, max_length: int) -> PromptWrap:
    """The :class:`PromptWrap` of ``template`` (``{text}`` marks the text) for ``tokenizer`` and ``max_length``.

    Raises:
        ConfigError: if ``template`` lacks ``{text}`` or has it twice, or leaves no room for a text.
        BackboneError: if the tokenizer's special tokens cannot be told apart from a text's own tokens.
    """
    try:
        cached = _WRAPS.setdefault(tokenizer, {})
    except TypeError:  # not weak-referenceable
        cached = {}
    wrap = cached.get((template, max_length))
    if wrap is None:
        wrap = cached[(template, max_length)] = _build_wrap(tokenizer, template, max_length)
    return wrap


def _build_wrap(tokenizer: Any, template: str, max_length: int) -> PromptWrap:
    parts = template.split("{text}")
    if len(parts) != 2:
        raise ConfigError(f"model.prompt_template must contain {{text}} exactly once, found {template!r}")

    def plain(text: str) -> list[int]:
        return list(tokenizer(text, add_special_tokens=False)["input_ids"]) if text else []

    # Where the tokenizer's own special tokens go: around the plain ids of a probe text.
    probe = plain("x")
    full = list(tokenizer("x", add_special_tokens=True)["input_ids"])
    start = next((i for i in range(len(full) - len(probe) + 1) if full[i : i + len(probe)] == probe), None)
    if not probe or start is None:
        raise BackboneError("cannot tell the tokenizer's special tokens from a text's tokens; use another pooling")
    head, tail = full[:start], full[start + len(probe) :]
    prefix, suffix = plain(parts[0]), plain(parts[1])
    budget = max_length - len(head) - len(prefix) - len(suffix) - len(tail)
    if budget < 1:
        raise ConfigError(
            f"model.prompt_template takes {max_length - budget} tokens with the tokenizer's special tokens, leaving "
            f"no room for the text in model.max_length = {max_length}; shorten the template or raise max_length"
        )
    return PromptWrap(head, prefix, suffix, tail, budget)


def tokenize(tokenizer: Any, texts: list[str], max_length: int, *, add_special_tokens: bool = True) -> list[list[int]]:
    """Token ids per text, truncated to ``max_length``, not padded (padding is per batch); with
    ``add_special_tokens=False``, without the tokenizer's special tokens (a BOS, or BERT's CLS and SEP).

    A fast tokenizer's Rust backend is called directly (a copy set to truncate, kept per tokenizer): the same ids
    as ``tokenizer(texts, truncation=True, max_length=max_length)`` without its Python wrapping, which costs
    more than the encoding itself for one short text (0.17 against 0.07 ms for MiniLM's tokenizer).
    """
    backend = _truncating_backend(tokenizer, max_length)
    if backend is None:
        options = {} if add_special_tokens else {"add_special_tokens": False}
        encoded = tokenizer(list(texts), truncation=True, max_length=max_length, padding=False, **options)
        return [list(ids) for ids in encoded["input_ids"]]
    return [encoding.ids for encoding in backend.encode_batch(list(texts), add_special_tokens=add_special_tokens)]


# transformers' own encoding methods; a tokenizer class that overrides one of them may do more than its backend.
_PLAIN_ENCODERS = {"TokenizersBackend", "PreTrainedTokenizerFast", "PreTrainedTokenizerBase"}


def _truncating_backend(tokenizer: Any, max_length: int) -> Any:
    """The cached backend copy for ``tokenizer`` (None: call the tokenizer itself)."""
    key = (max_length, getattr(tokenizer, "truncation_side", "right"))
    try:
        cached = _BACKENDS.get(tokenizer)
    except TypeError:  # not weak-referenceable
        return None
    if cached is not None and cached[0] == key:
        return cached[1]
    source = getattr(tokenizer, "backend_tokenizer", None) if getattr(tokenizer, "is_fast", False) else None
    if source is None or not _encodes_plainly(type(tokenizer)):
        return None
    backend = copy.deepcopy(source)
    backend.enable_truncation(max_length, direction=key[1])
    backend.no_padding()
    _BACKENDS[tokenizer] = (key, backend)
    return backend


def _encodes_plainly(cls: type) -> bool:
    for name in ("__call__", "_encode_plus"):
        owner = next((c for c in cls.__mro__ if name in c.__dict__), None)
        if owner is None or owner.__name__ not in _PLAIN_ENCODERS:
            return False
    return True


def pad_arrays(sequences: list[list[int]], pad_id: int, *, side: str = "right") -> dict[str, np.ndarray]:
    """Pad a batch to its own longest sequence (dynamic padding), as NumPy arrays (what ONNX Runtime takes).

    Returns:
        ``input_ids`` and ``attention_mask``, both ``(batch, longest)`` int64.
    """
    longest = max(len(s) for s in sequences)
    ids = np.full((len(sequences), longest), pad_id, dtype=np.int64)
    mask = np.zeros((len(sequences), longest), dtype=np.int64)
    for row, seq in enumerate(sequences):
        span = slice(0, len(seq)) if side == "right" else slice(longest - len(seq), longest)
        ids[row, span] = seq
        mask[row, span] = 1
    return {"input_ids": ids, "attention_mask": mask}


def pad_batch(sequences: list[list[int]], pad_id: int, *, side: str = "right") -> dict[str, torch.Tensor]:
    """:func:`pad_arrays` as PyTorch tensors (sharing the arrays' memory)."""
    import torch

    return {name: torch.from_numpy(array) for name, array in pad_arrays(sequences, pad_id, side=side).items()}


class Collator:
    """Turns ``(token_ids, label_id)`` pairs (or ``(token_ids, multi_hot_row)``) into padded tensors for a
    DataLoader."""

    def __init__(self, pad_id: int, side: str = "right") -> None:
        self.pad_id = pad_id
        self.side = side

    def __call__(self, items: list[tuple[list[int], int]]) -> dict[str, torch.Tensor]:
        batch = pad_batch([ids for ids, _ in items], self.pad_id, side=self.side)
        import torch

        labels = [label for _, label in items]
        # Intent ids, or multi-hot rows for a multi-label network.
        multi_hot = bool(labels) and isinstance(labels[0], (list, tuple))
        batch["labels"] = torch.tensor(labels, dtype=torch.float32 if multi_hot else torch.long)
        return batch
