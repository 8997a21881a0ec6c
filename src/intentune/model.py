"""The intent classifier: a pretrained backbone, a pooled hidden state, and a dense layer with one unit per
intent followed by softmax (:mod:`intentune.net`). Shaped like a scikit-learn estimator: ``fit`` here, prediction
in :class:`intentune.predictor.IntentPredictor`; saved as a self-contained folder (:mod:`intentune.folder`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors import SafetensorError
from torch import nn

from . import __version__
from ._io import atomic_folder
from .backbones import (
    first_line,
    from_pretrained,
    load_backbone,
    load_error,
    prepare_tokenizer,
    quiet_transformers,
)
from .confidence import fit_intent_confidence, fit_softmax_confidence
from .config import Config
from .errors import ConfigError, DataError, ModelError
from .folder import (
    BACKBONE_CONFIG,
    DISTANCE_FILE,
    FORMAT_VERSION,
    HEAD_FILE,
    META_FILE,
    SINGLE_LABEL_FORMAT,
    backbone_config,
    mark_not_transformers,
    read_metadata,
    resolve_model_dir,
)
from .labels import intent_sets, multi_hot, wants_multi_label
from .modelcard import write_model_card
from .net import PROMPT, IntentNet, resolve_pooling
from .predictor import IntentPredictor, TorchRunner
from .preprocess import encode_labels

if TYPE_CHECKING:
    from .extend import PreviousModel
    from .train.losses import SoftTargets

logger = logging.getLogger(__name__)


class IntentClassifier(IntentPredictor):
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

    @property
    def runner_(self) -> TorchRunner:
        """The network in PyTorch (``net_``, set by ``fit`` or ``load``)."""
        return TorchRunner(self.net_)

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
        init_from: PreviousModel | None = None,
        soft_targets: SoftTargets | None = None,
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
            init_from: a trained model to start from (:func:`intentune.extend.load_previous`): its backbone, its
                intents' head rows, new rows for the new intents; few-shot mode off, a lower default backbone rate.
                Mixing in its training rows is the caller's (``PreviousModel.with_replay``; ``train_run`` does it).
            soft_targets: a teacher's probabilities for every text (:meth:`intentune.distill.Teacher.targets`): the
                model learns from them and from the true intents (``labels`` of unlabelled texts are the teacher's
                answers, used for few-shot pairs and class weights only).

        Returns:
            ``self``.

        Raises:
            DataError: if there are fewer than two intents. (Validation rows of intents not in training are
                logged as a warning and left out of early stopping and calibration.)
            ConfigError: with ``resume``, if there is no checkpoint for this data and config.
        """
        from .data import Examples, check_trainable
        from .train.adapters import merge_lora, prepare_backbone
        from .train.driver import train_net
        from .train.fewshot import contrastive_pretrain, use_few_shot
        from .train.head_init import init_head_bias_from_rates
        from .train.optim import compute_class_weights, with_backbone_learning_rate

        check_trainable(Examples(list(texts), list(labels), source="training data"))
        oos_label, separator = self.config.oos.label, self.config.data.multi_label_separator
        self.multi_label_ = wants_multi_label(self.config.model.multi_label, labels, separator)
        if self.multi_label_ and init_from is not None:
            raise ConfigError("--init-from works with single-label models only; train the multi-label model anew")
        if soft_targets is not None and (self.multi_label_ or init_from is not None):
            raise ConfigError("distillation trains a new single-label model; it does not combine with multi-label "
                              "data or --init-from")  # fmt: skip
        if self.multi_label_:  # the intents, not their combinations; an out-of-scope row is one with none
            self.classes_ = sorted({i for found in intent_sets(labels, separator, oos_label) for i in found})
            if len(self.classes_) < 2:
                raise DataError("a multi-label model needs at least two intents in the training data")
        else:
            self.classes_ = sorted(set(labels).union(init_from.classes if init_from is not None else ()))
        if soft_targets is not None:
            if unknown_to_teacher := sorted(set(self.classes_) - set(soft_targets.classes)):
                raise DataError(f"the teacher model does not know the intents {', '.join(unknown_to_teacher)}")
            self.classes_ = list(soft_targets.classes)
        if validation is not None and (unknown := self.unknown_intents(validation[1])):
            rows = [i for i, y in enumerate(validation[1]) if not self.knows(y) and y != oos_label]
            logger.warning(
                "validation data has intents not in the training data: %s (%d rows, at positions %s%s); those rows "
                "take no part in early stopping or calibration", ", ".join(unknown), len(rows),
                ", ".join(map(str, rows[:5])), ", ..." if len(rows) > 5 else "",
            )  # fmt: skip
        tcfg = (
            with_backbone_learning_rate(self.config.train, self.config.model.backbone)
            if init_from is None
            else init_from.train_settings(self.config, labels)
        )
        from accelerate.utils import set_seed

        set_seed(self.config.train.seed)  # before the head is initialised, so a seed fixes the whole run
        mcfg = self.config.model
        if init_from is not None:  # a copy of the old model's fine-tuned backbone, once the config agrees with it
            backbone, self.tokenizer_, self.kind_ = init_from.backbone(self.config)
        else:
            backbone, self.tokenizer_, self.kind_ = load_backbone(
                mcfg.backbone, kind=mcfg.kind, num_layers=mcfg.num_layers
            )
        self._attach_labels(backbone)
        pooling = resolve_pooling(mcfg.pooling, self.kind_)
        self.prompt_template_ = mcfg.prompt_template if pooling == PROMPT else None
        backbone, trainable = prepare_backbone(backbone, self.config.train)  # freezing or LoRA adapters
        self.net_ = IntentNet(backbone, len(self.classes_), kind=self.kind_, pooling=pooling, dropout=mcfg.dropout)
        train_ids = self.token_ids(texts)
        val = None
        if validation is not None:
            # Rows of an intent the model does not learn (out-of-scope rows of a single-label model, intents only
            # validation has) take no part in early stopping.
            known = [(t, y) for t, y in zip(*validation) if self.knows(y)]
            if known:
                val = (self.token_ids([t for t, _ in known]), self.targets([y for _, y in known]))
        if on_ready is not None:
            on_ready()
        if init_from is not None and not resume:  # the old head rows, and new rows from their examples
            init_from.expand_head(self.net_, self.classes_, train_ids, self.label_ids(labels), self.pad_id(), tcfg)
        few_shot = None
        # A multi-label model's intents count once per row that has them; its contrastive pairs are rows with the
        # same set of intents, and its head is not started from prototypes (a sigmoid head needs its offsets).
        intents = (
            [i for found in intent_sets(labels, separator, oos_label) for i in found] if self.multi_label_ else labels
        )
        if self.multi_label_:
            tcfg = dataclasses.replace(tcfg, few_shot_prototype_init=False)
        if use_few_shot(intents, tcfg) and not resume:  # resumed weights replace its work
            device = "cuda" if tcfg.device in ("auto", "cuda") and torch.cuda.is_available() else "cpu"
            groups = {y: i for i, y in enumerate(sorted(set(intent_sets(labels, separator, oos_label))))}
            group_ids = (
                [groups[y] for y in intent_sets(labels, separator, oos_label)]
                if self.multi_label_
                else self.label_ids(labels)
            )
            few_shot = contrastive_pretrain(self.net_, train_ids, group_ids, tcfg, self.pad_id(), device)
        weights = compute_class_weights(intents, self.classes_, self.config.train.class_weight)
        targets = (
            self.targets(labels) if soft_targets is None else soft_targets.rows(self.classes_, self.label_ids(labels))
        )
        if self.multi_label_ and not resume:  # sigmoids start at the intents' base rates, not at 0.5
            init_head_bias_from_rates(self.net_.head, targets)
        distillation = soft_targets.settings if soft_targets is not None else None
        if init_from is not None and (
            kept := init_from.soft_targets(texts, self.classes_, self.label_ids(labels), tcfg)
        ):
            targets, distillation = kept  # the old model's answers among its intents, besides the true intents
        result = train_net(
            self.net_, (train_ids, targets), val, tcfg, self.pad_id(), callbacks,
            class_weights=weights, checkpoint_dir=checkpoint_dir, resume=resume,
            evaluate_first=few_shot is not None and tcfg.few_shot_prototype_init,  # the prototype head classifies
            distillation=distillation,
            epoch_rows=init_from.epoch_rows(texts, labels, tcfg) if init_from is not None else None,
        )  # fmt: skip
        self.net_.backbone = merge_lora(self.net_.backbone)
        self.history_ = result.history
        self.train_summary_ = result.summary() | {"backbone_training": trainable}
        if few_shot is not None:
            self.train_summary_["few_shot"] = few_shot
        if init_from is not None:
            self.train_summary_["init_from"] = init_from.summary(tcfg, self.classes_)
        if soft_targets is not None:
            self.train_summary_["distillation"] = soft_targets.summary()
        self.net_.eval()
        self._fit_confidence(validation, (texts, labels))
        return self

    def _fit_confidence(
        self,
        validation: tuple[Sequence[str], Sequence[str]] | None,
        training: tuple[Sequence[str], Sequence[str]] | None = None,
    ) -> None:
        """Calibration and the out-of-scope answer, fitted on the validation data (:mod:`intentune.confidence`)."""
        self.temperature_, self.thresholds_, self.distance_ = 1.0, None, None
        if self.multi_label_:
            intents = fit_intent_confidence(self, self.config, validation, training)
            self.intent_calibration_, self.intent_thresholds_ = intents.calibration, intents.thresholds
            self.train_summary_.update(intents.summary)
            return
        fitted = fit_softmax_confidence(self, self.config, validation, training)
        self.temperature_, self.thresholds_, self.distance_ = fitted.temperature, fitted.thresholds, fitted.distance
        self.train_summary_.update(fitted.summary)

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
            mark_not_transformers(tmp / BACKBONE_CONFIG)
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

        directory = resolve_model_dir(directory)
        meta = read_metadata(directory)
        self = cls(Config.from_dict(meta["config"], source=str(directory / META_FILE)))
        self.restore(directory, meta)
        config = backbone_config(directory, meta)
        try:
            with quiet_transformers():  # a damaged folder is reported below in one line, not in a load table
                backbone = from_pretrained(AutoModel, directory, config=config, dtype=torch.float32)
            self.tokenizer_ = from_pretrained(AutoTokenizer, directory, config=config)
            head = load_file(str(directory / HEAD_FILE))
        except (OSError, ValueError, SafetensorError) as exc:
            raise ModelError(f"model folder {directory} is incomplete or damaged: {load_error(exc)}") from None
        prepare_tokenizer(self.tokenizer_, backbone, self.kind_)
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
        """What ``intentune.json`` holds: format version, labels, backbone, pooling and prompt template,
        calibration, out-of-scope thresholds, the resolved config, the training summary and history."""
        self._check_fitted()
        multi_label = getattr(self, "multi_label_", False)
        return {
            "format_version": FORMAT_VERSION if multi_label else SINGLE_LABEL_FORMAT,
            "intentune_version": __version__,
            "labels": self.classes_,
            "backbone": self.config.model.backbone,
            "kind": self.kind_,
            "backbone_model_type": self.net_.backbone.config.model_type,
            "pooling": self.net_.pooling,
            "prompt_template": getattr(self, "prompt_template_", None),  # texts are wrapped in it when not None
            "max_length": self.config.model.max_length,
            "lowercase": self.config.data.lowercase,
            "remove_special_chars": self.config.data.remove_special_chars,
            "temperature": getattr(self, "temperature_", 1.0),
            "oos_thresholds": self.thresholds.to_dict() if self.thresholds is not None else None,
            "multi_label": multi_label,
            "multi_label_separator": self.config.data.multi_label_separator,
            "intent_calibration": self.intent_calibration_.to_dict() if multi_label else None,
            "intent_thresholds": self.intent_thresholds_.to_dict() if multi_label else None,
            "config": _without_none(self.config.to_dict()),
            "train_summary": getattr(self, "train_summary_", {}),
            "history": getattr(self, "history_", []),
        }

    def _attach_labels(self, backbone: nn.Module) -> None:
        backbone.config.id2label = dict(enumerate(self.classes_))
        backbone.config.label2id = {label: i for i, label in enumerate(self.classes_)}

    def label_ids(self, labels: Sequence[str]) -> list[int]:
        """The intent ids of single-intent labels (positions in ``classes_``)."""
        return encode_labels(list(labels), self.classes_)

    def targets(self, labels: Sequence[str]) -> list[int] | list[list[float]]:
        """What training compares the logits with: intent ids, or multi-hot rows for a multi-label model."""
        if not getattr(self, "multi_label_", False):
            return self.label_ids(labels)
        sets = intent_sets(labels, self.config.data.multi_label_separator, self.config.oos.label)
        return multi_hot(sets, self.classes_).tolist()


def _without_none(raw: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {section: {k: v for k, v in values.items() if v is not None} for section, values in raw.items()}
