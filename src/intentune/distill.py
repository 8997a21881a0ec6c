"""Distillation: a small, fast student model trained on a large teacher model's calibrated probabilities.

``intentune distill TEACHER --student minilm-l6`` trains the student on the teacher's data (its run's training
rows, read from the teacher's config) plus any unlabelled texts (``--unlabeled``: logs, paraphrases), with the
teacher's probabilities as soft targets (:class:`intentune.train.losses.DistillationLoss`). The student is an
ordinary model: it gets its own calibration, distance model and out-of-scope thresholds, fitted on validation data
as in any run. The run folder also holds ``distill.json`` and ``distill.md``: teacher and student side by side on
the evaluation data (accuracy, agreement overall and per intent, out-of-scope numbers, latency, size).
"""

from __future__ import annotations

import copy
import json
import logging
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._io import write_file_atomic
from .config import Config, ModelConfig, TrainConfig
from .data import Examples
from .errors import ConfigError
from .folder import read_metadata, resolve_model_dir
from .model import IntentClassifier
from .train.losses import Distillation, SoftTargets, soften

logger = logging.getLogger(__name__)

DISTILL_FILE = "distill"
# Keys that describe the teacher's backbone rather than the task: a student starts from their defaults.
BACKBONE_KEYS = ("model.kind", "model.pooling", "model.prompt_template", "model.num_layers", "train.learning_rate",
                 "train.few_shot_learning_rate")  # fmt: skip
LATENCY_TEXTS = 50


@dataclass
class Teacher:
    """A trained model to distil from."""

    classifier: IntentClassifier
    path: Path  # as given: a run or a model folder
    model_dir: Path
    model_id: str

    def student_config(
        self, student: str | None = None, overrides: Sequence[str] = (), options: Mapping[str, Any] | None = None
    ) -> Config:
        """The teacher's config (its data files and task settings) with the backbone-specific keys back at their
        defaults, ``model.backbone`` set to ``student`` (when given), then ``overrides`` and ``options`` applied.

        Raises:
            ConfigError: on an unknown key or a bad value.
        """
        config = copy.deepcopy(self.classifier.config)
        defaults = {"model": ModelConfig(), "train": TrainConfig()}
        for key in BACKBONE_KEYS:
            section, name = key.split(".")
            setattr(getattr(config, section), name, getattr(defaults[section], name))
        if student:
            config.model.backbone = student
        return config.override(list(overrides)).update(dict(options or {}))

    def targets(self, train: Examples, unlabeled: Sequence[str], settings: TrainConfig) -> tuple[Examples, SoftTargets]:
        """The training rows plus the unlabelled texts (labelled with the teacher's answer, which only few-shot pairs
        and class weights read), and the teacher's probabilities for all of them, softened at
        ``train.distill_temperature``: ``p ** (1 / T)``, normalised, from the teacher's calibrated probabilities."""
        seen = {t for t in train.texts}
        extra = [t for t in dict.fromkeys(unlabeled) if t not in seen]
        texts = [*train.texts, *extra]
        probabilities = teacher_probabilities(self.classifier, texts, settings)
        softened = soften(probabilities, settings.distill_temperature)
        classes = list(self.classifier.classes_)
        answers = [classes[i] for i in probabilities[len(train.texts) :].argmax(axis=1)] if extra else []
        rows = Examples(texts, [*train.labels, *answers], source=train.source)
        labelled = [True] * len(train.texts) + [False] * len(extra)
        settings_used = Distillation(settings.distill_temperature, settings.distill_alpha)
        logger.info("distilling on %d training rows and %d unlabelled texts", len(train.texts), len(extra))
        return rows, SoftTargets(classes, softened, labelled, settings_used)

    def record(self) -> dict[str, Any]:
        return {"path": str(self.path), "model_dir": str(self.model_dir), "model_id": self.model_id,
                "backbone": self.classifier.config.model.backbone}  # fmt: skip


def teacher_probabilities(classifier: IntentClassifier, texts: Sequence[str], settings: TrainConfig) -> Any:
    """A teacher's calibrated probabilities for ``texts`` (``(len(texts), n_intents)``), scored on the device the
    training run uses: the teacher reads every text once, before the first step. The teacher of ``intentune
    distill`` and the old model of ``--init-from`` (:meth:`intentune.extend.PreviousModel.soft_targets`) both."""
    import torch

    if settings.device in ("auto", "cuda") and torch.cuda.is_available():
        classifier.net_.to("cuda")
    return classifier.predict_proba(list(texts))


def load_teacher(path: str | Path) -> Teacher:
    """Load the teacher model from a run or model folder.

    Raises:
        ModelError: if ``path`` holds no model or a damaged one.
        ConfigError: for a multi-label teacher (distillation trains single-label students).
    """
    from .serve.predlog import metadata_id

    path = Path(path)
    model_dir = resolve_model_dir(path)
    classifier = IntentClassifier.load(model_dir)
    if classifier.multi_label_:
        raise ConfigError(f"{path} is a multi-label model; distillation works with single-label teachers")
    return Teacher(classifier, path, model_dir, metadata_id(read_metadata(model_dir)))


def compare_with_teacher(teacher: Teacher, student: IntentClassifier, data: Examples, out: Path) -> dict[str, Any]:
    """Evaluate teacher and student on ``data`` and write ``distill.json`` and ``distill.md`` into ``out``:
    accuracy, macro F1, the out-of-scope numbers, how often they give the same answer (overall and per true
    intent), median single-text latency on this machine, and size."""
    from .evaluate import evaluate_classifier

    device = next(student.net_.parameters()).device
    teacher.classifier.net_.to(device)  # where the student runs (a GPU)
    reports, answers, sides = {}, {}, {"teacher": teacher.classifier, "student": student}
    for name, model in sides.items():
        reports[name] = evaluate_classifier(model, data.texts, data.labels).to_dict()
        answers[name] = model.predict(data.texts)
    same = [a == b for a, b in zip(answers["teacher"], answers["student"], strict=True)]
    per_intent: dict[str, list[bool]] = {}
    for label, agreed in zip(data.labels, same, strict=True):
        per_intent.setdefault(label, []).append(agreed)
    record = {
        "teacher": teacher.record(),
        "student": {"backbone": student.config.model.backbone},
        "evaluated_on": data.source,
        "rows": len(data),
        "agreement": round(sum(same) / max(len(same), 1), 4),
        "agreement_per_intent": {k: round(sum(v) / len(v), 4) for k, v in sorted(per_intent.items())},
        **{f"{name}_scores": _side_summary(model, reports[name], data.texts) for name, model in sides.items()},
    }
    write_file_atomic(out / f"{DISTILL_FILE}.json", json.dumps(record, indent=2) + "\n")
    write_file_atomic(out / f"{DISTILL_FILE}.md", distill_markdown(record))
    return record


def _side_summary(model: IntentClassifier, report: dict[str, Any], texts: Sequence[str]) -> dict[str, Any]:
    """One model's column of the comparison."""
    oos = report.get("oos") or {}
    return {
        "accuracy": report.get("accuracy"),
        "macro_f1": (report.get("report", {}).get("macro avg") or {}).get("f1-score"),
        "in_scope_accuracy": oos.get("in_scope_accuracy"),
        "oos_recall": oos.get("oos_recall"),
        "latency_ms_p50": _latency_ms(model, texts),
        "parameters": sum(p.numel() for p in model.net_.parameters()),
    }


def _latency_ms(model: IntentClassifier, texts: Sequence[str]) -> float | None:
    """Median milliseconds of one single-text prediction, over up to :data:`LATENCY_TEXTS` texts (after one warm-up)."""
    sample = list(texts[:LATENCY_TEXTS])
    if not sample:
        return None
    model.predict(sample[:1])
    times = []
    for text in sample:
        started = time.perf_counter()
        model.predict([text])
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 2)


def distill_markdown(record: dict[str, Any]) -> str:
    """``distill.md``: the side-by-side table and the intents the two agree on least."""
    rows = [("accuracy", "accuracy", 4), ("macro F1", "macro_f1", 4), ("in-scope accuracy", "in_scope_accuracy", 4),
            ("out-of-scope recall", "oos_recall", 4), ("latency p50, ms (1 text)", "latency_ms_p50", 2),
            ("parameters", "parameters", 0)]  # fmt: skip

    def cell(value: Any, digits: int) -> str:
        if value is None:
            return "–"
        return f"{value:,}" if digits == 0 else f"{value:.{digits}f}"

    teacher, student = record["teacher"], record["student"]
    lines = [
        "# Distilled: teacher and student",
        "",
        f"Teacher: `{teacher['path']}` ({teacher['backbone']}, model id `{teacher['model_id']}`); student: "
        f"{student['backbone']}. Evaluated on {record['rows']} rows of `{record['evaluated_on']}`.",
        "",
        "| | teacher | student |",
        "|---|---:|---:|",
        *(
            f"| {name} | {cell(record['teacher_scores'][key], d)} | {cell(record['student_scores'][key], d)} |"
            for name, key, d in rows
        ),  # fmt: skip
        f"| same answer | | {record['agreement']:.4f} |",
        "",
        "Intents the two agree on least (share of rows with the same answer):",
        "",
    ]
    least = sorted(record["agreement_per_intent"].items(), key=lambda kv: kv[1])[:10]
    lines += [f"- `{intent}`: {share:.4f}" for intent, share in least]
    return "\n".join(lines) + "\n"


__all__ = ["DISTILL_FILE", "Teacher", "compare_with_teacher", "distill_markdown", "load_teacher"]
