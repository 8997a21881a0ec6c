"""Tokenization and padding: the direct backend path gives the tokenizer's own ids; padding on either side."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from intentune.preprocess import pad_arrays, pad_batch, tokenize

TEXTS = ["where is my card", "héllo — ünïcode 😀 text", "  spaces   around  ", "word " * 100, "x"]


@pytest.mark.parametrize("fixture", ["tiny_decoder", "tiny_encoder"])
@pytest.mark.parametrize("side", ["right", "left"])
def test_tokenize_matches_the_tokenizers_own_call(fixture: str, side: str, request: pytest.FixtureRequest) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(request.getfixturevalue(fixture))
    tokenizer.truncation_side = side
    assert tokenizer.is_fast
    for max_length in (8, 32, 8):  # a changed max length is not served from the first one's cached backend
        expected = [list(ids) for ids in tokenizer(TEXTS, truncation=True, max_length=max_length)["input_ids"]]
        got = tokenize(tokenizer, TEXTS, max_length)
        assert got == expected
        assert max(len(ids) for ids in got) == max_length, "the long text is truncated"
    assert len(tokenizer(TEXTS[3])["input_ids"]) > 32, "the tokenizer itself does not start truncating"


def test_tokenize_calls_a_tokenizer_that_overrides_encoding(tiny_encoder: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_encoder)
    original = type(tokenizer)

    class Custom(original):  # type: ignore[misc, valid-type]
        def _encode_plus(self, *args: object, **kwargs: object):  # noqa: ANN202
            encoded = super()._encode_plus(*args, **kwargs)
            encoded["input_ids"] = [[7] + list(ids) for ids in encoded["input_ids"]]
            return encoded

    tokenizer.__class__ = Custom
    assert tokenize(tokenizer, ["where is my card"], 16)[0][0] == 7, "the override is honoured"


def test_tokenize_follows_a_changed_truncation_side(tiny_encoder: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_encoder)
    right = tokenize(tokenizer, [TEXTS[1] * 5], 8)
    tokenizer.truncation_side = "left"
    left = tokenize(tokenizer, [TEXTS[1] * 5], 8)
    assert left != right
    assert left == [list(tokenizer([TEXTS[1] * 5], truncation=True, max_length=8)["input_ids"][0])]


def test_tokenize_falls_back_to_the_call_for_slow_tokenizers() -> None:
    class Slow:
        is_fast = False

        def __call__(self, texts: list[str], **kwargs: object) -> dict[str, list[list[int]]]:
            assert kwargs == {"truncation": True, "max_length": 3, "padding": False}
            return {"input_ids": [[len(t)] * 5 for t in texts][:3]}

    assert tokenize(Slow(), ["ab", "abc"], 3) == [[2] * 5, [3] * 5]


@pytest.mark.parametrize("side", ["right", "left"])
def test_pad_arrays_and_pad_batch(side: str) -> None:
    arrays = pad_arrays([[5, 6, 7], [8]], 0, side=side)
    row = [8, 0, 0] if side == "right" else [0, 0, 8]
    np.testing.assert_array_equal(arrays["input_ids"], [[5, 6, 7], row])
    np.testing.assert_array_equal(arrays["attention_mask"], [[1, 1, 1], [int(v != 0) for v in row]])
    assert arrays["input_ids"].dtype == np.int64
    tensors = pad_batch([[5, 6, 7], [8]], 0, side=side)
    assert tensors["input_ids"].dtype == torch.long
    assert tensors["input_ids"].tolist() == arrays["input_ids"].tolist()
