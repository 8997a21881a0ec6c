"""The network: a pretrained backbone, its token states pooled into one vector per text, and a dense layer with
one logit per intent. :func:`embed` is the one place where a backbone's token states become pooled vectors
(training, few-shot prototypes and the data doctor all go through it); :func:`resolve_pooling` says what
``model.pooling`` means for a backbone kind. The ``prompt`` pooling's wrap happens before, in tokenization
(:func:`intentune.preprocess.encode_texts`); here it pools the last token.
"""

from __future__ import annotations

import torch
from torch import nn

from .backbones import DECODER
from .errors import ConfigError

PROMPT = "prompt"  # the pooling whose texts are wrapped in model.prompt_template; it pools the last token


def resolve_pooling(pooling: str, kind: str) -> str:
    """What ``model.pooling`` means for a backbone kind: ``auto`` is ``prompt`` for decoders and ``mean`` for
    encoders; ``last``, ``mean``, ``cls`` and ``prompt`` stay as they are.

    ``prompt`` is for decoders only: a causal decoder's last token has read the whole wrapped text and sits where
    the next word (the intent) would be predicted, while an encoder's tokens all see the whole text anyway and
    were trained on plain sentences, so the wrap would only add the same words to every text.

    Raises:
        ConfigError: for ``prompt`` with an encoder backbone.
    """
    if pooling == "auto":
        return PROMPT if kind == DECODER else "mean"
    if pooling == PROMPT and kind != DECODER:
        raise ConfigError(
            "model.pooling = prompt needs a decoder backbone (it pools the last token of the wrapped text); "
            "this backbone is an encoder: use a decoder backbone, or pooling auto, mean or cls"
        )
    return pooling


def pool_hidden(hidden: torch.Tensor, mask: torch.Tensor, how: str) -> torch.Tensor:
    """Pool token states into one vector per text.

    Args:
        hidden: ``(batch, seq, hidden)`` token states.
        mask: ``(batch, seq)`` attention mask, 1 for real tokens.
        how: ``last`` (last real token, whatever side the padding is on), ``prompt`` (the same: the last token of
            the wrapped text), ``mean`` or ``cls``.

    Returns:
        ``(batch, hidden)``.
    """
    if how in ("last", PROMPT):
        positions = torch.arange(mask.shape[1], device=mask.device)
        last = (mask * positions).argmax(dim=1)  # (batch,) index of the last real token
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
    if how == "cls":
        return hidden[:, 0]
    weights = mask.unsqueeze(-1).to(hidden.dtype)  # (batch, seq, 1)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


def token_states(
    backbone: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor, *, kind: str
) -> torch.Tensor:
    """The backbone's last token states ``(batch, seq, hidden)`` of token ids and mask ``(batch, seq)``.

    For decoders the position ids count real tokens only, so left and right padding give the same states
    (transformers #9785, #35909).
    """
    extra = {}
    if kind == DECODER:
        extra["position_ids"] = (attention_mask.cumsum(dim=1) - 1).clamp(min=0)
    return backbone(input_ids=input_ids, attention_mask=attention_mask, **extra).last_hidden_state


def embed(
    backbone: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor, *, kind: str, pooling: str
) -> torch.Tensor:
    """Pooled vectors ``(batch, hidden)`` of token ids and mask ``(batch, seq)``: :func:`token_states` pooled by
    :func:`pool_hidden`."""
    return pool_hidden(token_states(backbone, input_ids, attention_mask, kind=kind), attention_mask, pooling)


class IntentNet(nn.Module):
    """Backbone -> pooled hidden state -> dropout -> dense layer (one logit per intent)."""

    def __init__(self, backbone: nn.Module, num_labels: int, *, kind: str, pooling: str, dropout: float) -> None:
        super().__init__()
        self.backbone = backbone
        self.kind = kind
        self.pooling = pooling
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(backbone.config.hidden_size, num_labels)
        nn.init.normal_(self.head.weight, std=0.02)
        nn.init.zeros_(self.head.bias)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, return_pooled: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Logits ``(batch, num_labels)`` for token ids and mask of shape ``(batch, seq)``; with
        ``return_pooled``, also the pooled vectors ``(batch, hidden)`` the dense layer reads."""
        pooled = embed(self.backbone, input_ids, attention_mask, kind=self.kind, pooling=self.pooling)
        logits = self.head(self.dropout(pooled))
        return (logits, pooled) if return_pooled else logits
