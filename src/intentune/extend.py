"""Adding intents to a trained model (``intentune train NEW_DATA --init-from runs/v1``).

The new model starts from the old one instead of from the pretrained backbone: the old model's fine-tuned backbone
(loaded with :meth:`intentune.model.IntentClassifier.load`, so nothing from the folder runs), its head rows for
the intents it knows, and new rows for the new intents, started from their training rows' pooled vectors. Training
mixes in the old training rows (**replay**: ``train.replay_per_intent`` of each old intent per epoch, with
``train.replay_resample`` the next ones of all its rows every epoch), so the old intents are not forgotten while the new
ones are learnt. After training, both models are evaluated on the same test rows and compared intent by intent
(:func:`intentune.evaluate.previous.compare_with_previous`).

:func:`load_previous` reads the old model and finds its training rows; :class:`PreviousModel` holds them and does
the work that ``IntentClassifier.fit(..., init_from=...)`` and :func:`intentune.pipeline.train_run` ask of it.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .config import Config, TrainConfig
from .data import Examples, load_examples
from .distill import teacher_probabilities
from .errors import ConfigError, DataError
from .folder import read_metadata, resolve_model_dir
from .model import IntentClassifier
from .net import resolve_pooling
from .replay import TRAIN_SPLIT, Replay, find_run_rows, sample_replay
from .train.fewshot import embed_texts, use_few_shot
from .train.head_init import expand_head
from .train.losses import Distillation, soften
from .train.optim import default_learning_rate
from .train.sampler import EpochRows

logger = logging.getLogger(__name__)

# The backbone's learning rate when train.learning_rate is unset, as a share of a fresh run's default. The backbone
# is already fine-tuned; a fresh run's peak rate is sized to carry pretrained weights a long way, which here would
# undo much of the old adaptation before the replay rows can hold it. Half the peak is the average rate of the old
# run's linear decay, so the continued run moves the weights at the pace the old run moved them on average.
CONTINUED_RATE_SHARE = 0.5
# Settings that shape what the backbone computes for a text: the new model must read texts as the old one did.
ARCHITECTURE_KEYS = ("model.backbone", "model.kind", "model.pooling", "model.max_length", "model.num_layers",
                     "model.prompt_template", "data.lowercase", "data.remove_special_chars")  # fmt: skip


@dataclass
class PreviousModel:
    """A trained model to start a new one from, with its training rows for replay.

    Attributes:
        classifier: the old model, loaded (it is not changed: the new model trains a copy of its backbone).
        path: the run or model folder as given.
        model_dir: its model folder.
        model_id: :func:`intentune.serve.predlog.model_id` of the old model.
        pool: the rows the old model trained on, or None when none were found.
        pool_source: where ``pool`` was read from.
        replay_file: the file given for replay (``--replay``), None when ``pool`` was found in the run folder.
        held_out: the old run's validation rows (its ``splits/validation.csv``, or the file its manifest names),
            None when none were found.
        held_out_source: where ``held_out`` was read from.
        replayed: the replay sample that :meth:`with_replay` drew last (None before).
        replay_sample: its rows.
    """

    classifier: IntentClassifier
    path: Path
    model_dir: Path
    model_id: str
    pool: Examples | None
    pool_source: str | None
    replay_file: Path | None = None
    held_out: Examples | None = field(default=None, repr=False)
    held_out_source: str | None = None
    replayed: Replay | None = field(default=None, repr=False)
    replay_sample: Examples | None = field(default=None, repr=False)

    @property
    def classes(self) -> list[str]:
        """The old model's intents."""
        return list(self.classifier.classes_)

    def config(self, overrides: Sequence[str] | None = None, options: Mapping[str, Any] | None = None) -> Config:
        """The old model's config with the data files cleared (the new run names its own), then ``overrides``
        (``section.key=value``) and ``options`` (``section.key`` -> value, None skipped) applied.

        Raises:
            ConfigError: on an unknown key or a bad value.
        """
        config = copy.deepcopy(self.classifier.config)
        config.data.train_file = config.data.validation_file = config.data.test_file = None
        return config.override(list(overrides or [])).update(options or {})

    def check_config(self, config: Config) -> None:
        """Refuse a config whose backbone, pooling, lengths or preprocessing differ from the old model's.

        Raises:
            ConfigError: naming the first key that differs.
        """
        old = self.classifier.config
        for key in ARCHITECTURE_KEYS:
            section, name = key.split(".")
            new_value, old_value = getattr(getattr(config, section), name), getattr(getattr(old, section), name)
            if key == "model.kind":
                same = new_value in ("auto", self.classifier.kind_)
                old_value = self.classifier.kind_
            elif key == "model.pooling":
                same = new_value == old_value or (
                    resolve_pooling(new_value, self.classifier.kind_) == self.classifier.net_.pooling
                )
                old_value = self.classifier.net_.pooling
            elif key == "model.prompt_template":
                same = self.classifier.net_.pooling != "prompt" or new_value == old_value
            elif key == "model.backbone":
                same = new_value == old_value or _same_folder(new_value, old_value)
            else:
                same = new_value == old_value
            if not same:
                raise ConfigError(
                    f"{key} = {new_value!r} contradicts the model --init-from starts from ({self.path}: "
                    f"{old_value!r}); leave it as that model has it, or train without --init-from"
                )

    def backbone(self, config: Config) -> tuple[nn.Module, Any, str]:
        """A copy of the old model's fine-tuned backbone, its tokenizer and its kind, after :meth:`check_config`.

        Raises:
            ConfigError: if ``config`` contradicts the old model.
        """
        self.check_config(config)
        return copy.deepcopy(self.classifier.net_.backbone), self.classifier.tokenizer_, self.classifier.kind_

    def train_settings(self, config: Config, labels: Sequence[str]) -> TrainConfig:
        """The ``[train]`` settings of a run that starts here: few-shot mode off (the backbone is already adapted,
        and contrastive passes would reshape the vectors the old head rows read), an unset
        ``train.learning_rate`` at :data:`CONTINUED_RATE_SHARE` of the fresh-run default, and
        ``train.early_stopping_metric = auto`` as ``val_accuracy``.

        Early stopping judges a continued run by accuracy whatever the validation rows per intent: the old intents
        start fitted, so further passes make their answers more confident, and validation loss rises from the first
        evaluation on while accuracy still climbs with the new intents. Judged by loss, the run would keep its
        first epoch's weights.

        Raises:
            DataError: with ``train.class_weight = balanced``, when an old intent has no training rows (no replay).
        """
        cfg = config.train
        if use_few_shot(labels, cfg):
            logger.info("few-shot mode skipped: the backbone starts fine-tuned (--init-from)")
        counts = Counter(labels)
        empty = [c for c in self.classes if not counts[c]]
        if empty and cfg.class_weight == "balanced":
            raise DataError(
                f"train.class_weight = balanced needs rows of every intent; {', '.join(empty)} of {self.path} have "
                "none (no replay rows): pass --replay FILE, or set train.class_weight = none"
            )
        rate = (
            cfg.learning_rate
            or default_learning_rate(self.classifier.kind_, config.model.backbone) * CONTINUED_RATE_SHARE
        )
        metric = "val_accuracy" if cfg.early_stopping_metric == "auto" else cfg.early_stopping_metric
        return dataclasses.replace(cfg, few_shot="off", learning_rate=rate, early_stopping_metric=metric)

    def with_replay(self, train: Examples, config: Config, exclude: Sequence[str] = ()) -> Examples:
        """``train`` plus a sample of the old training rows: up to ``train.replay_per_intent`` of each old intent
        (seeded by ``train.seed``), leaving out rows whose text matches (ignoring case and punctuation) a new
        training row or a text in ``exclude`` (the new validation and test texts). Logs what it adds, and the old
        intents without new rows (kept, and trained through replay only). The sample is kept in ``replayed``.
        """
        per_intent = config.train.replay_per_intent
        missing = sorted(set(self.classes) - set(train.labels))
        if self.pool is None or per_intent == 0:
            if self.pool is None and per_intent > 0:
                logger.warning(
                    "no training data of %s found for replay (no %s, and its training file moved or changed); "
                    "training without replay, so its intents may be forgotten: pass --replay FILE",
                    self.path, TRAIN_SPLIT,
                )  # fmt: skip
            if missing:
                logger.info("intents of %s without new rows are kept, untrained (no replay): %s",
                            self.path, _some(missing))  # fmt: skip
            self.replayed = Replay(0, {}, self.pool_source, per_intent)
            return train
        resample = config.train.replay_resample
        drawn = len(self.pool) if resample else per_intent  # taking turns: every row, each epoch its share
        sample = sample_replay(self.pool, self.classes, drawn, config.train.seed, [*train.texts, *exclude])
        counts = dict(sorted(Counter(sample.labels).items()))
        self.replayed = Replay(len(sample), counts, self.pool_source, per_intent, resampled=resample)
        self.replay_sample = sample
        each_epoch = ", taking turns each epoch" if resample else ""
        logger.info("replay: %d rows of %d intents of %s, from %s (train.replay_per_intent = %d%s)",
                    len(sample), len(counts), self.path, self.pool_source, per_intent, each_epoch)  # fmt: skip
        if missing:
            logger.info("intents of %s without new rows are kept and train on replay rows only: %s",
                        self.path, _some(missing))  # fmt: skip
        return train.subset(list(range(len(train)))).extend(sample)

    def epoch_rows(self, texts: Sequence[str], labels: Sequence[str], cfg: TrainConfig) -> EpochRows | None:
        """Which of the training rows (``texts``, ``labels``) each epoch uses when the replay rows take turns
        (``train.replay_resample``): every row that is not replayed, and the next ``train.replay_per_intent``
        of each old intent's replayed rows, which take turns (:class:`intentune.train.sampler.EpochRows`). None
        (every row, every epoch) without resampling, or when no old intent has more replayed rows than that.
        """
        if not cfg.replay_resample or not self.replay_sample:
            return None
        replayed = set(zip(self.replay_sample.texts, self.replay_sample.labels))
        pools: dict[str, list[int]] = defaultdict(list)
        fixed: list[int] = []
        for i, row in enumerate(zip(texts, labels)):
            (pools[row[1]] if row in replayed else fixed).append(i)
        if all(len(rows) <= cfg.replay_per_intent for rows in pools.values()):
            return None
        plan = EpochRows(tuple(fixed), tuple(tuple(pools[c]) for c in sorted(pools)), cfg.replay_per_intent, cfg.seed)
        logger.info("each epoch: %d rows (%d new, up to %d replayed rows of each of %d old intents, "
                    "taking turns among %d)",
                    plan.size, len(fixed), cfg.replay_per_intent, len(pools), len(texts) - len(fixed))  # fmt: skip
        return plan

    def soft_targets(
        self, texts: Sequence[str], classes: Sequence[str], label_ids: Sequence[int], cfg: TrainConfig
    ) -> tuple[list[list[float]], Distillation] | None:
        """With ``train.replay_distill`` above 0: the old model's calibrated probabilities over its own intents for
        each training text, softened at ``train.distill_temperature``, each row followed by the text's intent id
        (the targets :class:`intentune.train.losses.DistillationLoss` reads), and the settings that compare them
        with the new model's softmax over the same intents (``classes`` are the new model's). None when it is 0."""
        if cfg.replay_distill <= 0:
            return None
        softened = soften(teacher_probabilities(self.classifier, texts, cfg), cfg.distill_temperature)
        columns = tuple(list(classes).index(c) for c in self.classes)
        rows = [[*map(float, row), float(label)] for row, label in zip(softened, label_ids, strict=True)]
        logger.info("keeping the old answers: %d training rows scored by %s (train.replay_distill = %g)",
                    len(rows), self.path, cfg.replay_distill)  # fmt: skip
        return rows, Distillation(cfg.distill_temperature, cfg.replay_distill, columns)

    def with_held_out(
        self, train: Examples, validation: Examples, config: Config, exclude: Sequence[str] = (), *, split_off: bool
    ) -> tuple[Examples, Examples]:
        """``(train, validation)`` with the old intents validated on rows the old model never trained on.

        Up to ``train.replay_per_intent`` rows of each old intent are drawn from the old run's validation rows
        (seeded by ``train.seed``; texts that match a training, validation or ``exclude`` text, ignoring case and
        punctuation, left out). With ``split_off`` (the validation rows were split off new rows plus replay), they
        take the place of the replayed rows of their intents, which go back to ``train``; an old intent with no
        such row keeps its replayed rows, so forgetting it still shows. Without ``split_off`` (a validation file),
        the file's rows are kept and only the old intents it has no rows of get theirs, so early stopping also
        sees whether those are forgotten.

        The old model trained on every replayed row and answers it with a confidence no unseen text gets; judged on
        such rows, early stopping, calibration and the out-of-scope thresholds would be fitted to memorised answers.
        Unchanged without a replay sample or without the old run's validation rows.
        """
        if self.held_out is None or not self.replay_sample or self.replayed is None:
            return train, validation
        validated = set(validation.labels)
        wanted = self.classes if split_off else [c for c in self.classes if c not in validated]
        sample = sample_replay(self.held_out, wanted, self.replayed.requested_per_intent, config.train.seed,
                               [*train.texts, *validation.texts, *exclude])  # fmt: skip
        covered = set(sample.labels)
        back: list[int] = []
        if split_off:
            replayed = set(zip(self.replay_sample.texts, self.replay_sample.labels))
            rows = zip(validation.texts, validation.labels)
            back = [i for i, row in enumerate(rows) if row in replayed and row[1] in covered]
        kept = sorted(set(range(len(validation))) - set(back))
        train = train.subset(list(range(len(train)))).extend(validation.subset(back))
        validation = validation.subset(kept).extend(sample)
        source = self.held_out_source if len(sample) else None
        self.replayed = dataclasses.replace(self.replayed, validation_rows=len(sample), validation_source=source)
        logger.info("validation: %d replayed rows moved back to training; %d rows of %d old intents from %s added",
                    len(back), len(sample), len(covered), self.held_out_source)  # fmt: skip
        return train, validation

    @torch.no_grad()
    def expand_head(
        self, net: nn.Module, classes: Sequence[str], token_ids: list[list[int]], label_ids: list[int], pad_id: int,
        cfg: TrainConfig,
    ) -> list[str]:  # fmt: skip
        """Fill ``net.head`` (one row per intent of ``classes``) from the old head and the training rows'
        pooled vectors (see :func:`intentune.train.head_init.expand_head`); returns the intents it added."""
        device = "cuda" if cfg.device in ("auto", "cuda") and torch.cuda.is_available() else "cpu"
        net.to(device)
        embeddings = embed_texts(net, token_ids, pad_id, device, cfg.eval_batch_size)  # (n, hidden)
        added = expand_head(net.head, self.classifier.net_.head, self.classes, classes, embeddings,
                            torch.tensor(label_ids))  # fmt: skip
        if added:
            logger.info("new intents (head rows from their examples' mean vector): %s", _some(added))
        return added

    def record(self) -> dict[str, Any]:
        """What a run's manifest records as ``init_from`` (and ``--resume`` reads back): the old model's folder,
        id and intent count, the replay file given, and the replay sample."""
        return {
            "path": str(self.path),
            "model_dir": str(self.model_dir),
            "model_id": self.model_id,
            "replay_file": str(self.replay_file) if self.replay_file is not None else None,
            "previous_intents": len(self.classes),
            "replay": self.replayed.to_dict() if self.replayed is not None else None,
        }

    def summary(self, cfg: TrainConfig, classes: Sequence[str]) -> dict[str, Any]:
        """The training summary's ``init_from``: :meth:`record`, the intents added and the backbone's rate."""
        added = [c for c in classes if c not in set(self.classes)]
        return {**self.record(), "intents_added": added, "learning_rate": cfg.learning_rate,
                "replay_distill": cfg.replay_distill}  # fmt: skip


def load_previous(path: str | Path, *, replay_file: str | Path | None = None) -> PreviousModel:
    """Load a trained model to start from, and find the rows it trained on.

    Args:
        path: a run folder (``intentune train -o``) or a model folder.
        replay_file: the old training data (any data format); default: the run folder's ``splits/train.csv``,
            else the training file its ``manifest.json`` names when that file is unchanged.

    Raises:
        ModelError: if ``path`` is not a model folder or is damaged.
        DataError: if ``replay_file`` cannot be read.
    """
    from .serve.predlog import metadata_id

    path = Path(path)
    model_dir = resolve_model_dir(path)
    classifier = IntentClassifier.load(model_dir)
    dcfg = classifier.config.data
    if replay_file is not None:
        pool = load_examples(replay_file, text_field=dcfg.text_field, label_field=dcfg.label_field)
        source: str | None = str(replay_file)
    else:
        pool, source = find_run_rows(model_dir.parent, "train", dcfg.text_field, dcfg.label_field)
    model_id = metadata_id(read_metadata(model_dir))
    replay_path = Path(replay_file) if replay_file is not None else None
    held_out, held_out_source = find_run_rows(model_dir.parent, "validation", dcfg.text_field, dcfg.label_field)
    return PreviousModel(classifier, path, model_dir, model_id, pool, source, replay_path, held_out, held_out_source)


def resume_previous(run_dir: Path, given: PreviousModel | None) -> PreviousModel | None:
    """The model a resumed run started from: ``given``, or the one its ``manifest.json`` records; checked against
    the recorded model id.

    Raises:
        ConfigError: if ``given`` is not the model the run started from, or the run did not start from one.
    """
    try:
        recorded = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8")).get("init_from")
    except (OSError, ValueError):
        return given
    if recorded is None:
        if given is not None:
            raise ConfigError(f"{run_dir} did not start with --init-from; resume it without --init-from")
        return None
    previous = given or load_previous(recorded["path"], replay_file=recorded.get("replay_file"))
    if previous.model_id != recorded["model_id"]:
        raise ConfigError(
            f"{previous.path} is not the model {run_dir} started from (model id {previous.model_id}, the run "
            f"started from {recorded['model_id']}); resume with the same --init-from model, or start a new run"
        )
    return previous


def _some(names: Sequence[str], shown: int = 10) -> str:
    """Names for a log line: all of a few, the first ``shown`` and the count of many."""
    more = f", ... ({len(names)} in all)" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def _same_folder(a: str, b: str) -> bool:
    """Whether two backbone names are one local folder written two ways."""
    pa, pb = Path(a).expanduser(), Path(b).expanduser()
    return pa.exists() and pb.exists() and pa.resolve() == pb.resolve()


__all__ = [
    "CONTINUED_RATE_SHARE",
    "PreviousModel",
    "load_previous",
    "resume_previous",
]
