"""Prediction, whatever runs the network: :class:`IntentPredictor` cleans, tokenizes and batches texts by length,
hands each batch to its runner (:class:`TorchRunner` here, ``OnnxRunner`` in :mod:`intentune.inference`), and
applies calibration and out-of-scope rejection to the logits. :class:`intentune.model.IntentClassifier` adds
fitting and saving; :class:`intentune.inference.OnnxPredictor` adds loading an ONNX export.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from . import __version__
from .config import Config
from .errors import IntentuneError, ModelError
from .folder import load_distance
from .preprocess import clean_text, encode_texts, pad_batch


class Runner(Protocol):
    """Runs the network on one batch of token ids."""

    name: str  # the runtime: torch, onnx or onnx-int8

    def run(self, ids: list[list[int]], pad_id: int, side: str, pooled: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """Logits ``(batch, len(classes_))`` and, if ``pooled``, the pooled vectors ``(batch, hidden)``."""
        ...


class TorchRunner:
    """The network in PyTorch, on the device its weights are on."""

    name = "torch"

    def __init__(self, net: Any) -> None:
        self.net = net

    def run(self, ids: list[list[int]], pad_id: int, side: str, pooled: bool) -> tuple[np.ndarray, np.ndarray | None]:
        import torch

        device = next(self.net.parameters()).device
        batch = pad_batch(ids, pad_id, side=side)
        self.net.eval()
        with torch.inference_mode():
            logits, states = self.net(
                batch["input_ids"].to(device), batch["attention_mask"].to(device), return_pooled=True
            )
        return logits.float().cpu().numpy(), (states.float().cpu().numpy() if pooled else None)


class IntentPredictor:
    """A trained intent model that predicts; see the module docstring.

    Attributes (after fitting or loading):
        classes_: the intents, sorted; column order of :meth:`predict_proba`.
        kind_: ``decoder`` or ``encoder``.
        tokenizer_: the backbone's tokenizer.
        prompt_template_: the template each text is wrapped in before tokenizing (``model.pooling = prompt``),
            or None (no wrap).
        runner_: what runs the network (:class:`Runner`).
        temperature_: the calibration temperature (1.0 when not calibrated).
        thresholds_: the out-of-scope rejection thresholds, or None.
        distance_: the out-of-scope :class:`~intentune.evaluate.oos.DistanceModel` when the thresholds are on
            the distance score, else None.
        history_: one dict per validation evaluation during training.
    """

    def __init__(self, config: Config | None = None) -> None:
        self.config = config or Config()

    def restore(self, directory: Path, meta: dict[str, Any]) -> None:
        """Set the fitted attributes that a model folder's ``intentune.json`` (``meta``) holds: labels, kind,
        history, training summary, temperature, thresholds and the distance model (read from ``directory``), and
        the prompt template (None in folders written without one)."""
        from .evaluate.oos import Thresholds

        self.classes_, self.kind_ = list(meta["labels"]), meta["kind"]
        self.prompt_template_ = meta.get("prompt_template")
        self.history_, self.train_summary_ = meta.get("history", []), meta.get("train_summary", {})
        self.temperature_ = float(meta.get("temperature", 1.0))
        self.thresholds_ = Thresholds.from_dict(meta["oos_thresholds"]) if meta.get("oos_thresholds") else None
        self.distance_ = load_distance(directory, self.thresholds_)
        self.multi_label_ = bool(meta.get("multi_label", False))
        if self.multi_label_:
            from .evaluate.intent_thresholds import IntentCalibration, IntentThresholds

            self.intent_calibration_ = IntentCalibration.from_dict(meta["intent_calibration"])
            self.intent_thresholds_ = IntentThresholds.from_dict(meta["intent_thresholds"], self.classes_)

    def predict_proba(self, texts: Sequence[str], *, batch_size: int | None = None) -> np.ndarray:
        """Calibrated intent probabilities (softmax of the logits divided by ``temperature_``), shape
        ``(len(texts), len(classes_))``, columns in ``classes_`` order."""

        logits = self.decision_function(texts, batch_size=batch_size)
        return self._probabilities(logits)

    def _probabilities(self, logits: np.ndarray) -> np.ndarray:
        """Calibrated probabilities from logits: softmax over the intents, or for a multi-label model each intent's
        calibrated sigmoid (the rows then need not sum to 1). In float64, as when the thresholds were fitted: a
        float32 copy of the least confident right validation answer can fall just below its own threshold."""
        from .evaluate.calibration import softmax

        if self.is_multi_label:
            return self.intent_calibration_.probabilities(logits)
        return softmax(logits, getattr(self, "temperature_", 1.0))

    @property
    def is_multi_label(self) -> bool:
        """Whether the model answers each intent on its own (``model.multi_label``): a sigmoid per intent."""
        return bool(getattr(self, "multi_label_", False))

    def intents_of(self, label: str) -> tuple[str, ...]:
        """The intents a data label names: for a multi-label model its parts (``a+b``; none for the out-of-scope
        label), else the label itself."""
        from .labels import split_intents

        if self.is_multi_label:
            return split_intents(label, self.config.data.multi_label_separator, self.config.oos.label)
        return (label,)

    def knows(self, label: str) -> bool:
        """Whether the model was trained on every intent of a data label (the out-of-scope label of a multi-label
        model, which names none, included)."""
        return set(self.intents_of(label)) <= set(self.classes_)

    def unknown_intents(self, labels: Sequence[str]) -> list[str]:
        """The intents in ``labels`` the model was not trained on, sorted, the out-of-scope label left out."""
        found = {i for label in set(labels) for i in self.intents_of(label)}
        return sorted(found - set(self.classes_) - {self.config.oos.label})

    def scores(self, texts: Sequence[str], *, batch_size: int | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """What rejection reads, in one pass over the network: the calibrated probabilities (as
        :meth:`predict_proba`) and, when the thresholds are on the distance score, each text's distance from the
        training data of its nearest intent (see :class:`~intentune.evaluate.oos.DistanceModel`), else None."""
        distance = getattr(self, "distance_", None)
        logits, pooled = self.forward(texts, batch_size=batch_size, pooled=distance is not None)
        probs = self._probabilities(logits)
        return probs, (distance.distances(pooled) if distance is not None else None)

    def predict(self, texts: Sequence[str], *, batch_size: int | None = None) -> list[str]:
        """The intent of each text: the most probable one, or ``oos.label`` when the out-of-scope intent wins or
        the confidence is below the rejection threshold (so the answer may be a label not in ``classes_``). A
        multi-label model answers with the label of every intent above its threshold (``cancel_order+refund``, as
        the data writes it), or ``oos.label`` when none is."""
        details = self.predict_details(texts, batch_size=batch_size)
        if not self.is_multi_label:
            return [p["intent"] for p in details]
        from .labels import join_intents

        separator, oos = self.config.data.multi_label_separator, self.config.oos.label
        return [join_intents((i["intent"] for i in p["intents"]), separator, oos) for p in details]

    def predict_details(
        self, texts: Sequence[str], *, top_k: int = 1, batch_size: int | None = None
    ) -> list[dict[str, Any]]:
        """What a chatbot needs per text: ``intent`` (the out-of-scope label when rejected), ``confidence`` (the
        calibrated probability of the best intent), ``is_out_of_scope``, ``intents`` (every intent found, each
        ``{"intent", "confidence"}``, the most probable first: for a multi-label model every intent above its
        threshold, else the one answered; empty when out of scope), and ``top`` (the ``top_k`` most probable
        intents, answered or not)."""
        from .evaluate.oos import apply_rejection

        probs, distances = self.scores(texts, batch_size=batch_size)
        if self.is_multi_label:
            found = self.intent_thresholds_.answers(probs)
            if not self.config.oos.reject:  # no out-of-scope answer: at least the most probable intent
                found = [ids or [int(row.argmax())] for ids, row in zip(found, probs)]
            answers = [self.classes_[ids[0]] if ids else self.config.oos.label for ids in found]
            confidences, out = probs.max(axis=1), [not ids for ids in found]
        else:
            answers, confidences, out = apply_rejection(
                self.classes_, probs, self.thresholds, self.config.oos.label, distances
            )
            index = {c: i for i, c in enumerate(self.classes_)}
            found = [[] if rejected else [index[a]] for a, rejected in zip(answers, out)]
        results = []
        for row, answer, confidence, rejected, ids in zip(probs, answers, confidences, out, found):
            order = row.argsort()[::-1][: max(1, top_k)]
            top = [{"intent": self.classes_[i], "confidence": round(float(row[i]), 4)} for i in order]
            intents = [{"intent": self.classes_[i], "confidence": round(float(row[i]), 4)} for i in ids]
            results.append(
                {"intent": answer, "confidence": round(float(confidence), 4), "is_out_of_scope": bool(rejected),
                 "intents": intents, "top": top}
            )  # fmt: skip
        return results

    def describe(self) -> dict[str, Any]:
        """What a client may want to know about the model: labels, backbone, runtime, calibration, out-of-scope
        settings, a training summary and the intentune version (the server's ``GET /v1/model``)."""
        self._check_fitted()
        summary = getattr(self, "train_summary_", {})
        return {
            "labels": list(self.classes_),
            "backbone": self.config.model.backbone,
            "kind": self.kind_,
            "runtime": self.runner_.name,
            "max_length": self.config.model.max_length,
            "temperature": getattr(self, "temperature_", 1.0),
            "multi_label": self.is_multi_label,
            "oos_label": self.config.oos.label,
            "oos_threshold": self.thresholds.global_threshold if self.thresholds is not None else None,
            "oos_score": self.thresholds.score if self.thresholds is not None else None,
            "training": {
                k: summary[k]
                for k in ("steps", "epochs", "train_seconds", "best_validation", "calibration")
                if k in summary
            },  # fmt: skip
            "intentune_version": __version__,
        }

    @property
    def thresholds(self) -> Any:
        """The fitted out-of-scope :class:`~intentune.evaluate.oos.Thresholds`, or None (no rejection)."""
        return getattr(self, "thresholds_", None)

    def decision_function(self, texts: Sequence[str], *, batch_size: int | None = None) -> np.ndarray:
        """Raw logits, shape ``(len(texts), len(classes_))``."""
        return self.forward(texts, batch_size=batch_size)[0]

    def embed(self, texts: Sequence[str], *, batch_size: int | None = None) -> np.ndarray:
        """The pooled vectors the dense layer reads, shape ``(len(texts), hidden)``, not normalised: texts of one
        intent lie close together (``forward(texts, pooled=True)`` gives them with the logits in one pass)."""
        vectors = self.forward(texts, batch_size=batch_size, pooled=True)[1]
        return vectors if vectors is not None else np.zeros((len(texts), 0), dtype=np.float32)

    def forward(
        self, texts: Sequence[str], *, batch_size: int | None = None, pooled: bool = False
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Logits ``(n, len(classes_))`` and, with ``pooled``, the pooled vectors ``(n, hidden)`` (else None).
        Texts are batched by length (each batch padded to its longest) and returned in their own order; each
        batch runs in :attr:`runner_` (PyTorch or ONNX Runtime)."""
        self._check_fitted()
        if isinstance(texts, str):
            raise TypeError("texts must be a list of strings, not one string; wrap it: [text]")
        out = np.zeros((len(texts), len(self.classes_)), dtype=np.float32)
        vectors = None
        if len(texts) == 0:
            distance = getattr(self, "distance_", None)
            hidden = distance.whiten.shape[0] if distance is not None else 0
            return out, (np.zeros((0, hidden), dtype=np.float32) if pooled else None)
        size = batch_size or self.config.train.eval_batch_size
        ids = self.token_ids(texts)
        # Sort by length so each batch pads little; restore the order at the end.
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        for start in range(0, len(order), size):
            chunk = order[start : start + size]
            logits, states = self.runner_.run(
                [ids[i] for i in chunk], self.pad_id(), self.tokenizer_.padding_side, pooled
            )
            out[chunk] = logits
            if states is not None:
                if vectors is None:
                    vectors = np.zeros((len(texts), states.shape[1]), dtype=np.float32)
                vectors[chunk] = states
        return out, vectors

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """Each text cleaned as the config says (``data.lowercase``, ``data.remove_special_chars``), wrapped in
        ``prompt_template_`` if there is one, and tokenized, truncated to ``model.max_length``
        (:func:`~intentune.preprocess.encode_texts`).

        Raises:
            IntentuneError: if a text is empty after preprocessing.
            ConfigError: if the prompt template leaves no room for the text within ``model.max_length``.
        """
        dcfg = self.config.data
        cleaned = [
            clean_text(t, lowercase=dcfg.lowercase, remove_special_chars=dcfg.remove_special_chars) for t in texts
        ]
        template = getattr(self, "prompt_template_", None)
        ids = encode_texts(self.tokenizer_, cleaned, self.config.model.max_length, template)
        empty = [i for i, (text, seq) in enumerate(zip(cleaned, ids)) if not seq or (template and not text)]
        if empty:
            raise IntentuneError(f"text at position {empty[0]} is empty after preprocessing; give non-empty texts")
        return ids

    def pad_id(self) -> int:
        """The token id batches are padded with."""
        return int(self.tokenizer_.pad_token_id)

    def _check_fitted(self) -> None:
        if not hasattr(self, "runner_"):
            name = type(self).__name__
            raise ModelError(f"this {name} is not fitted yet; call fit(...) or {name}.load(dir)")
