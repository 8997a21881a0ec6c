"""The intent classifier: a pretrained backbone, a pooled hidden state, and a dense layer with one unit per
intent followed by softmax. Shaped like a scikit-learn estimator; saved as a self-contained folder.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from torch import nn

from . import __version__
from ._io import atomic_folder, recover_folder
from .backbones import (
    DECODER,
    first_line,
    from_pretrained,
    load_backbone,
    load_error,
    prepare_tokenizer,
    quiet_transformers,
)
from .config import Config
from .errors import DataError, IntentuneError, ModelError
from .modelcard import write_model_card
from .net import IntentNet
from .preprocess import clean_text, encode_labels, pad_batch, tokenize

FORMAT_VERSION = 2  # 2: config.json's model_type names intentune, the backbone's type is in intentune.json
META_FILE = "intentune.json"
HEAD_FILE = "head.safetensors"
DISTANCE_FILE = "oos_distance.safetensors"  # the out-of-scope distance model, when its threshold is used
BACKBONE_CONFIG = "config.json"
# The model_type written into config.json: transformers' Auto classes (and so ``pipeline``) refuse the folder with
# this text in their message, instead of loading the backbone under a random classification layer.
NOT_A_TRANSFORMERS_MODEL = "intentune (not a transformers model: load this folder with intentune.IntentClassifier.load)"


class IntentClassifier:
    """Fine-tunes a pretrained language model into an intent classifier.

    Args:
        config: the full config; ``Config()`` (the bundled GPT-style decoder) if omitted.

    Attributes (after ``fit`` or ``load``):
        classes_: the intents, sorted; column order of :meth:`predict_proba`.
        kind_: ``decoder`` or ``encoder``.
        temperature_: the calibration temperature (1.0 when not calibrated).
        thresholds_: the out-of-scope rejection thresholds, or None.
        distance_: the out-of-scope :class:`~intentune.evaluate.oos.DistanceModel` when the thresholds are on
            the distance score, else None.
        history_: one dict per validation evaluation during training.

    Example:
        >>> clf = IntentClassifier(Config()).fit(texts, labels)
        >>> clf.predict(["where is my parcel"])
        ['order_status']
    """

    def __init__(self, config: Config | None = None) -> None:
        self.config = config or Config()

    # ---------------------------------------------------------------- fitting
    def fit(
        self,
        texts: Sequence[str],
        labels: Sequence[str],
        *,
        validation: tuple[Sequence[str], Sequence[str]] | None = None,
        callbacks: Sequence[Any] = (),
        checkpoint_dir: str | Path | None = None,
        resume: bool = False,
        on_ready: Callable[[], None] | None = None,
    ) -> IntentClassifier:
        """Fine-tune on labelled texts.

        Args:
            texts: training utterances.
            labels: their intents.
            validation: ``(texts, labels)`` for evaluation, early stopping and choosing the best weights;
                without it the model trains for ``train.epochs`` and keeps the last weights.
            callbacks: extra :class:`intentune.train.Callback` objects (progress bars, loggers).
            checkpoint_dir: where resumable training checkpoints go (``train.checkpoint_every_steps``).
            resume: continue from the checkpoint in ``checkpoint_dir`` (same data and config).
            on_ready: called once the data has been checked, the backbone loaded and the texts tokenized, just
                before training starts (:func:`intentune.pipeline.train_run` writes its run folder there, so a
                run that cannot start leaves an existing folder as it was).

        Returns:
            ``self``.

        Raises:
            DataError: if there are fewer than two intents, or validation has intents not in training.
            ConfigError: with ``resume``, if there is no checkpoint for this data and config.
        """
        from .adapters import merge_lora, prepare_backbone
        from .data import Examples, check_trainable
        from .fewshot import contrastive_pretrain, use_few_shot
        from .train import compute_class_weights, train_net

        check_trainable(Examples(list(texts), list(labels), source="training data"))
        self.classes_ = sorted(set(labels))
        oos_label = self.config.oos.label
        if validation is not None:
            unknown = sorted(set(validation[1]) - set(self.classes_) - {oos_label})
            if unknown:
                raise DataError(
                    f"validation data has intents not in the training data: {', '.join(unknown)} "
                    f"(only the out-of-scope label {oos_label!r} may appear in validation alone)"
                )
        from accelerate.utils import set_seed

        set_seed(self.config.train.seed)  # before the head is initialised, so a seed fixes the whole run
        mcfg = self.config.model
        backbone, self.tokenizer_, self.kind_ = load_backbone(mcfg.backbone, kind=mcfg.kind, num_layers=mcfg.num_layers)
        self._attach_labels(backbone)
        pooling = mcfg.pooling if mcfg.pooling != "auto" else ("last" if self.kind_ == DECODER else "mean")
        backbone, trainable = prepare_backbone(backbone, self.config.train)  # freezing or LoRA adapters
        self.net_ = IntentNet(backbone, len(self.classes_), kind=self.kind_, pooling=pooling, dropout=mcfg.dropout)
        train_ids = self._token_ids(texts)
        val = None
        if validation is not None:
            # Out-of-scope rows of an intent the model does not learn take no part in early stopping.
            known = [(t, y) for t, y in zip(*validation) if y in self.classes_]
            if known:
                val = (self._token_ids([t for t, _ in known]), self._label_ids([y for _, y in known]))
        if on_ready is not None:
            on_ready()
        few_shot = None
        if use_few_shot(labels, tcfg := self.config.train) and not resume:  # resumed weights replace its work
            device = "cuda" if tcfg.device in ("auto", "cuda") and torch.cuda.is_available() else "cpu"
            few_shot = contrastive_pretrain(self.net_, train_ids, self._label_ids(labels), tcfg, self._pad_id(), device)
        weights = compute_class_weights(labels, self.classes_, self.config.train.class_weight)
        result = train_net(
            self.net_, (train_ids, self._label_ids(labels)), val, self.config.train, self._pad_id(), callbacks,
            class_weights=weights, checkpoint_dir=checkpoint_dir, resume=resume,
            evaluate_first=few_shot is not None and tcfg.few_shot_prototype_init,  # the prototype head classifies
        )  # fmt: skip
        self.net_.backbone = merge_lora(self.net_.backbone)
        self.history_ = result.history
        self.train_summary_ = result.summary() | {"backbone_training": trainable}
        if few_shot is not None:
            self.train_summary_["few_shot"] = few_shot
        self.net_.eval()
        self._fit_confidence(validation, (texts, labels))
        return self

    def _fit_confidence(
        self,
        validation: tuple[Sequence[str], Sequence[str]] | None,
        training: tuple[Sequence[str], Sequence[str]] | None = None,
    ) -> None:
        """Temperature scaling and out-of-scope thresholds, fitted on the validation data (``train.calibrate``,
        ``[oos]``); without validation data, temperature 1 and only a fixed ``oos.threshold`` if one is set. The
        distance score (``oos.score``) is fitted on the training rows when it can be chosen: always for
        ``distance``, for ``auto`` only when validation has out-of-scope rows to choose with."""
        from .evaluate.calibration import calibration_summary, fit_temperature, softmax
        from .evaluate.oos import DistanceModel, Thresholds, fit_thresholds

        ocfg = self.config.oos
        self.temperature_, self.thresholds_, self.distance_ = 1.0, None, None
        if ocfg.reject and ocfg.threshold is not None:
            self.thresholds_ = Thresholds(ocfg.label, ocfg.threshold, fit={"fixed": True})
        if validation is None or not validation[0]:
            return
        fitting = ocfg.reject and ocfg.threshold is None
        with_distance = (
            fitting
            and training is not None
            and (ocfg.score == "distance" or (ocfg.score == "auto" and ocfg.label in set(validation[1])))
        )
        logits, pooled = self._forward(validation[0], pooled=with_distance)
        known = [i for i, y in enumerate(validation[1]) if y in self.classes_]
        known_ids = self._label_ids([validation[1][i] for i in known])
        if self.config.train.calibrate:
            self.temperature_ = fit_temperature(logits[known], known_ids)
        summary = calibration_summary(logits[known], known_ids, self.temperature_)
        self.train_summary_["calibration"] = {k: summary[k] for k in ("temperature", "ece_before", "ece_after")}
        if fitting:
            distance, distances = None, None
            if with_distance:
                assert training is not None and pooled is not None
                distance = DistanceModel.fit(self._forward(training[0], pooled=True)[1], training[1], ocfg.label)
                distances = distance.distances(pooled)
            self.thresholds_ = fit_thresholds(
                softmax(logits, self.temperature_), validation[1], self.classes_, oos_label=ocfg.label,
                max_accuracy_drop=ocfg.max_accuracy_drop, per_intent=ocfg.per_intent, distances=distances,
                score=ocfg.score if with_distance else "confidence",
            )  # fmt: skip
            if self.thresholds_.score == "distance":
                self.distance_ = distance
        if self.thresholds_ is not None:
            self.train_summary_["oos"] = {
                "global_threshold": self.thresholds_.global_threshold,
                "per_intent_thresholds": len(self.thresholds_.per_intent),
                "score": self.thresholds_.score,
                **self.thresholds_.fit,
            }

    # ------------------------------------------------------------- predicting
    def predict_proba(self, texts: Sequence[str], *, batch_size: int | None = None) -> np.ndarray:
        """Calibrated intent probabilities (softmax of the logits divided by ``temperature_``), shape
        ``(len(texts), len(classes_))``, columns in ``classes_`` order."""
        from .evaluate.calibration import softmax

        logits = self.decision_function(texts, batch_size=batch_size)
        # float64, as when the thresholds were fitted: a float32 copy of the least confident right validation
        # answer can fall just below its own threshold.
        return softmax(logits, getattr(self, "temperature_", 1.0))

    def scores(self, texts: Sequence[str], *, batch_size: int | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """What rejection reads, in one pass over the network: the calibrated probabilities (as
        :meth:`predict_proba`) and, when the thresholds are on the distance score, each text's distance from the
        training data of its nearest intent (see :class:`~intentune.evaluate.oos.DistanceModel`), else None."""
        from .evaluate.calibration import softmax

        distance = getattr(self, "distance_", None)
        logits, pooled = self._forward(texts, batch_size=batch_size, pooled=distance is not None)
        probs = softmax(logits, getattr(self, "temperature_", 1.0))
        return probs, (distance.distances(pooled) if distance is not None else None)

    def predict(self, texts: Sequence[str], *, batch_size: int | None = None) -> list[str]:
        """The intent of each text: the most probable one, or ``oos.label`` when the out-of-scope intent wins or
        the confidence is below the rejection threshold (so the answer may be a label not in ``classes_``)."""
        return [p["intent"] for p in self.predict_details(texts, batch_size=batch_size)]

    def predict_details(
        self, texts: Sequence[str], *, top_k: int = 1, batch_size: int | None = None
    ) -> list[dict[str, Any]]:
        """What a chatbot needs per text: ``intent`` (the out-of-scope label when rejected), ``confidence`` (the
        calibrated probability of the best intent), ``is_out_of_scope``, and ``top`` (the ``top_k`` best intents
        with their probabilities, rejected or not)."""
        from .evaluate.oos import apply_rejection

        probs, distances = self.scores(texts, batch_size=batch_size)
        answers, confidences, out = apply_rejection(
            self.classes_, probs, self.thresholds, self.config.oos.label, distances
        )
        results = []
        for row, answer, confidence, rejected in zip(probs, answers, confidences, out):
            order = row.argsort()[::-1][: max(1, top_k)]
            top = [{"intent": self.classes_[i], "confidence": round(float(row[i]), 4)} for i in order]
            results.append(
                {"intent": answer, "confidence": round(float(confidence), 4), "is_out_of_scope": bool(rejected),
                 "top": top}
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
            "runtime": "torch",
            "max_length": self.config.model.max_length,
            "temperature": getattr(self, "temperature_", 1.0),
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
        return self._forward(texts, batch_size=batch_size)[0]

    def _forward(
        self, texts: Sequence[str], *, batch_size: int | None = None, pooled: bool = False
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Logits ``(n, len(classes_))`` and, with ``pooled``, the pooled vectors ``(n, hidden)`` (else None).
        Texts are batched by length (each batch padded to its longest) and returned in their own order; each
        runtime runs a batch in :meth:`_run_batch`."""
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
        ids = self._token_ids(texts)
        # Sort by length so each batch pads little; restore the order at the end.
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        for start in range(0, len(order), size):
            chunk = order[start : start + size]
            logits, states = self._run_batch([ids[i] for i in chunk], pooled)
            out[chunk] = logits
            if states is not None:
                if vectors is None:
                    vectors = np.zeros((len(texts), states.shape[1]), dtype=np.float32)
                vectors[chunk] = states
        return out, vectors

    def _run_batch(self, ids: list[list[int]], pooled: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """The network on one batch of token ids, in PyTorch: logits, and the pooled vectors if ``pooled``."""
        device = next(self.net_.parameters()).device
        batch = pad_batch(ids, self._pad_id(), side=self.tokenizer_.padding_side)
        self.net_.eval()
        with torch.inference_mode():
            logits, states = self.net_(
                batch["input_ids"].to(device), batch["attention_mask"].to(device), return_pooled=True
            )
        return logits.float().cpu().numpy(), (states.float().cpu().numpy() if pooled else None)

    # ---------------------------------------------------------- save and load
    def save(self, directory: str | Path) -> Path:
        """Write the model folder atomically: a temporary sibling folder, then a rename.

        The folder holds the backbone (``model.safetensors`` + ``config.json`` with ``id2label``), the
        tokenizer files, ``head.safetensors``, ``intentune.json`` (format version, labels, settings) and a model
        card, ``README.md`` (:mod:`intentune.modelcard`). No pickles; loading runs no code from the folder.
        An existing folder is swapped out only once the new one is complete (:func:`intentune._io.atomic_folder`).

        Returns:
            The folder.
        """
        from safetensors.torch import save_file

        self._check_fitted()
        directory = Path(directory)
        with atomic_folder(directory) as tmp:
            self.net_.backbone.save_pretrained(tmp)
            _mark_not_transformers(tmp / BACKBONE_CONFIG)
            self.tokenizer_.save_pretrained(tmp)
            head = {k: v.detach().cpu().contiguous() for k, v in self.net_.head.state_dict().items()}
            save_file(head, str(tmp / HEAD_FILE))
            if getattr(self, "distance_", None) is not None:
                from safetensors.numpy import save_file as save_arrays

                save_arrays(self.distance_.to_arrays(), str(tmp / DISTANCE_FILE))
            metadata = self.metadata()
            (tmp / META_FILE).write_text(json.dumps(metadata, indent=2), encoding="utf-8")
            write_model_card(tmp, metadata)
        return directory

    @classmethod
    def load(cls, directory: str | Path, *, device: str = "cpu") -> IntentClassifier:
        """Load a folder written by :meth:`save`.

        Nothing in the folder is executed: the backbone's config and tokenizer load with remote code refused, and
        weights load from safetensors only (see :func:`intentune.backbones.from_pretrained`).

        Raises:
            ModelError: if the folder is missing, is not an intentune model, has a newer format, or is damaged
                (truncated or missing weights, a head that does not fit the labels, code it asks to run).
        """
        from safetensors.torch import load_file
        from transformers import AutoModel, AutoTokenizer

        from .evaluate.oos import Thresholds

        directory = resolve_model_dir(directory)
        meta = _read_metadata(directory)
        self = cls(Config.from_dict(meta["config"], source=str(directory / META_FILE)))
        self.classes_ = list(meta["labels"])
        self.kind_ = meta["kind"]
        self.history_ = meta.get("history", [])
        self.train_summary_ = meta.get("train_summary", {})
        config = backbone_config(directory, meta)
        try:
            with quiet_transformers():  # a damaged folder is reported below in one line, not in a load table
                backbone = from_pretrained(AutoModel, directory, config=config, dtype=torch.float32)
            self.tokenizer_ = from_pretrained(AutoTokenizer, directory, config=config)
            head = load_file(str(directory / HEAD_FILE))
        except (OSError, ValueError, SafetensorError) as exc:
            raise ModelError(f"model folder {directory} is incomplete or damaged: {load_error(exc)}") from None
        prepare_tokenizer(self.tokenizer_, backbone, self.kind_)
        self.temperature_ = float(meta.get("temperature", 1.0))
        self.thresholds_ = Thresholds.from_dict(meta["oos_thresholds"]) if meta.get("oos_thresholds") else None
        self.distance_ = load_distance(directory, self.thresholds_)
        self.net_ = IntentNet(backbone, len(self.classes_), kind=self.kind_, pooling=meta["pooling"], dropout=0.0)
        try:
            self.net_.head.load_state_dict(head)
        except RuntimeError as exc:  # shapes or names that do not match the labels in intentune.json
            raise ModelError(f"model folder {directory}: {HEAD_FILE} does not fit {META_FILE} "
                             f"({first_line(exc)}); copy the whole model folder, or retrain") from None  # fmt: skip
        self.net_.to(device).eval()
        return self

    # -------------------------------------------------------------- internals
    def metadata(self) -> dict[str, Any]:
        """What ``intentune.json`` holds: format version, labels, backbone, pooling, calibration, out-of-scope
        thresholds, the resolved config, the training summary and history."""
        self._check_fitted()
        return {
            "format_version": FORMAT_VERSION,
            "intentune_version": __version__,
            "labels": self.classes_,
            "backbone": self.config.model.backbone,
            "kind": self.kind_,
            "backbone_model_type": self.net_.backbone.config.model_type,
            "pooling": self.net_.pooling,
            "max_length": self.config.model.max_length,
            "lowercase": self.config.data.lowercase,
            "remove_special_chars": self.config.data.remove_special_chars,
            "temperature": getattr(self, "temperature_", 1.0),
            "oos_thresholds": self.thresholds.to_dict() if self.thresholds is not None else None,
            "config": _without_none(self.config.to_dict()),
            "train_summary": getattr(self, "train_summary_", {}),
            "history": getattr(self, "history_", []),
        }

    def _attach_labels(self, backbone: nn.Module) -> None:
        backbone.config.id2label = dict(enumerate(self.classes_))
        backbone.config.label2id = {label: i for i, label in enumerate(self.classes_)}

    def _token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        dcfg = self.config.data
        cleaned = [
            clean_text(t, lowercase=dcfg.lowercase, remove_special_chars=dcfg.remove_special_chars) for t in texts
        ]
        ids = tokenize(self.tokenizer_, cleaned, self.config.model.max_length)
        empty = [i for i, seq in enumerate(ids) if not seq]
        if empty:
            raise IntentuneError(f"text at position {empty[0]} is empty after preprocessing; give non-empty texts")
        return ids

    def _label_ids(self, labels: Sequence[str]) -> list[int]:
        return encode_labels(list(labels), self.classes_)

    def _pad_id(self) -> int:
        return int(self.tokenizer_.pad_token_id)

    def _check_fitted(self) -> None:
        if not hasattr(self, "net_"):
            raise ModelError("this IntentClassifier is not fitted yet; call fit(...) or IntentClassifier.load(dir)")


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


def _mark_not_transformers(path: Path) -> None:
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


def _read_metadata(directory: Path) -> dict[str, Any]:
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
    return meta


def _without_none(raw: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {section: {k: v for k, v in values.items() if v is not None} for section, values in raw.items()}
