"""Text clean-up, label encoding, tokenization and dynamic padding."""

from __future__ import annotations

import re
from typing import Any

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


def encode_labels(labels: list[str], classes: list[str]) -> list[int]:
    """Map intent names to ids in ``classes`` order (the model's sorted label list)."""
    index = {label: i for i, label in enumerate(classes)}
    return [index[label] for label in labels]


def tokenize(tokenizer: Any, texts: list[str], max_length: int) -> list[list[int]]:
    """Token ids per text, truncated to ``max_length``, not padded (padding is per batch)."""
    encoded = tokenizer(list(texts), truncation=True, max_length=max_length, padding=False)
    return [list(ids) for ids in encoded["input_ids"]]


def pad_batch(sequences: list[list[int]], pad_id: int, *, side: str = "right") -> dict[str, torch.Tensor]:
    """Pad a batch to its own longest sequence (dynamic padding).

    Returns:
        ``input_ids`` and ``attention_mask``, both ``(batch, longest)`` int64.
    """
    longest = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), longest), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), longest), dtype=torch.long)
    for row, seq in enumerate(sequences):
        span = slice(0, len(seq)) if side == "right" else slice(longest - len(seq), longest)
        ids[row, span] = torch.tensor(seq, dtype=torch.long)
        mask[row, span] = 1
    return {"input_ids": ids, "attention_mask": mask}


class Collator:
    """Turns ``(token_ids, label_id)`` pairs into padded tensors for a DataLoader."""

    def __init__(self, pad_id: int, side: str = "right") -> None:
        self.pad_id = pad_id
        self.side = side

    def __call__(self, items: list[tuple[list[int], int]]) -> dict[str, torch.Tensor]:
        batch = pad_batch([ids for ids, _ in items], self.pad_id, side=self.side)
        batch["labels"] = torch.tensor([label for _, label in items], dtype=torch.long)
        return batch
