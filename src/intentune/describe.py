"""``intentune inspect``: a backbone's architecture in a few labelled lines and a compact module tree, the "inspect
the model" step before training (:func:`describe_backbone`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from .backbones import load_backbone, resolve_backbone


@dataclass
class BackboneInfo:
    """What ``intentune inspect`` shows about a backbone."""

    name: str
    source: str
    kind: str
    model_type: str
    parameters: int
    trainable_parameters: int
    layers: int | None
    hidden_size: int | None
    attention_heads: int | None
    key_value_heads: int | None
    vocab_size: int | None
    max_positions: int | None
    tokenizer: str
    pad_token: str
    module_tree: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_text(self) -> str:
        """A labelled summary followed by the compact module tree."""
        rows = [
            ("backbone", self.name),
            ("source", self.source),
            ("kind", f"{self.kind} ({self.model_type})"),
            ("parameters", f"{self.parameters:,} total, {self.trainable_parameters:,} trainable"),
            ("layers", self.layers),
            ("hidden size", self.hidden_size),
            (
                "attention heads",
                self.attention_heads
                if self.key_value_heads in (None, self.attention_heads)
                else f"{self.attention_heads} ({self.key_value_heads} key/value)",
            ),
            ("vocabulary", self.vocab_size),
            ("max positions", self.max_positions),
            ("tokenizer", self.tokenizer),
            ("pad token", self.pad_token),
        ]
        width = max(len(k) for k, _ in rows)
        lines = [f"{k:<{width}}  {v}" for k, v in rows]
        return "\n".join([*lines, "", "modules:", self.module_tree])


def describe_backbone(name: str, *, kind: str = "auto") -> BackboneInfo:
    """Load a backbone and describe its architecture (the "inspect the model" step).

    Raises:
        BackboneError: if it cannot be resolved or loaded.
    """
    model, tokenizer, kind = load_backbone(name, kind=kind)
    config = model.config
    return BackboneInfo(
        name=name,
        source=str(resolve_backbone(name)),
        kind=kind,
        model_type=config.model_type,
        parameters=sum(p.numel() for p in model.parameters()),
        trainable_parameters=sum(p.numel() for p in model.parameters() if p.requires_grad),
        layers=getattr(config, "num_hidden_layers", None),
        hidden_size=getattr(config, "hidden_size", None),
        attention_heads=getattr(config, "num_attention_heads", None),
        key_value_heads=getattr(config, "num_key_value_heads", None),
        vocab_size=getattr(config, "vocab_size", None),
        max_positions=getattr(config, "max_position_embeddings", None),
        tokenizer=type(tokenizer).__name__,
        pad_token=f"{tokenizer.pad_token!r} (id {tokenizer.pad_token_id}), padding on the {tokenizer.padding_side}",
        module_tree=module_tree(model),
    )


def module_tree(module: Any, depth: int = 3) -> str:
    """An indented tree of modules with parameter counts; runs of identical layers are folded into one line."""
    lines: list[str] = []

    def count(m: Any) -> int:
        return sum(p.numel() for p in m.parameters())

    def walk(name: str, m: Any, level: int) -> None:
        children = list(m.named_children())
        label = f"{'  ' * level}{name}: {type(m).__name__}"
        kinds = {type(c).__name__ for _, c in children}
        if children and len(kinds) == 1 and len(children) > 1 and name.endswith(("layers", "layer", "h", "blocks")):
            first = children[0][1]
            lines.append(f"{label} [{len(children)} x {type(first).__name__}, {count(first):,} params each]")
            if level + 1 < depth:
                for child_name, child in first.named_children():
                    walk(child_name, child, level + 2)
            return
        lines.append(f"{label} ({count(m):,} params)" if count(m) else label)
        if level + 1 < depth:
            for child_name, child in children:
                walk(child_name, child, level + 1)

    walk(type(module).__name__, module, 0)
    return "\n".join(lines)


__all__ = ["BackboneInfo", "describe_backbone", "module_tree"]
