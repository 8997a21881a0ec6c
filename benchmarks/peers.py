"""The methods the benchmark suite compares, one function each: intentune and its peers (TF-IDF + logistic
regression, SetFit, a plain Hugging Face ``Trainer`` fine-tune).

Each takes the train / validation / test splits and a :class:`Job` and returns a result dict with the same fields:
test accuracy, macro-F1, in-scope accuracy and out-of-scope recall (when the test data has out-of-scope rows),
validation accuracy, training wall time, training examples per second, the validation accuracy after every epoch
with the time it was reached, and the single-query latency. ``benchmarks.run`` runs each in its own process
(``python -m benchmarks.peers JOB.json RESULT.json``) so that the peak memory it records belongs to one method.

Training wall time is the time of the fit call, backbone loading included, and the evaluations on the validation
data during training included (every method that has them does them once per epoch); predicting the test and
validation data afterwards is not in it.
"""

from __future__ import annotations

import csv
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.common import reached

LATENCY_QUERIES = 100
LATENCY_WARMUP = 10


@dataclass
class Split:
    """Texts and their intents, read from a ``text,intent`` CSV file."""

    texts: list[str]
    labels: list[str]

    @classmethod
    def read(cls, path: str | Path, *, drop_label: str | None = None) -> Split:
        with open(path, newline="", encoding="utf-8") as f:
            rows = [(r["text"].strip(), r["intent"]) for r in csv.DictReader(f)]
        rows = [r for r in rows if r[1] != drop_label]
        return cls([t for t, _ in rows], [y for _, y in rows])


@dataclass
class Job:
    """One method on one task, as ``benchmarks.run`` hands it to the worker process."""

    method: str  # tfidf | intentune | setfit | trainer
    train_file: str
    validation_file: str
    test_file: str
    backbone: str = ""
    device: str = "cpu"
    oos_label: str | None = None  # the test data's out-of-scope label, when it has one
    drop_oos: bool = False  # in-scope-only task: drop out-of-scope rows from validation and test
    options: dict[str, Any] = field(default_factory=dict)  # the method's settings (epochs, learning rate, ...)


# ------------------------------------------------------------------------------------------------ shared measuring
def score(truth: Sequence[str], predicted: Sequence[str], oos_label: str | None) -> dict[str, float | None]:
    """Accuracy and macro-F1 over all rows; in-scope accuracy and out-of-scope recall when ``oos_label`` is set
    (an in-scope row answered with the out-of-scope label counts as wrong)."""
    from sklearn.metrics import accuracy_score, f1_score

    labels = sorted(set(truth))
    result: dict[str, float | None] = {
        "accuracy": round(float(accuracy_score(truth, predicted)), 4),
        "macro_f1": round(float(f1_score(truth, predicted, labels=labels, average="macro", zero_division=0)), 4),
        "in_scope_accuracy": None,
        "oos_recall": None,
    }
    if oos_label is not None and oos_label in labels:
        pairs = list(zip(truth, predicted))
        inside = [y == p for y, p in pairs if y != oos_label]
        outside = [p == oos_label for y, p in pairs if y == oos_label]
        result["in_scope_accuracy"] = round(sum(inside) / len(inside), 4)
        result["oos_recall"] = round(sum(outside) / len(outside), 4)
    return result


def latency_ms(predict_one: Callable[[str], Any], texts: Sequence[str]) -> dict[str, float]:
    """Median and 95th percentile of single-text predictions (``LATENCY_QUERIES`` texts after a warm-up)."""
    for text in texts[:LATENCY_WARMUP]:
        predict_one(text)
    times = []
    for text in texts[:LATENCY_QUERIES]:
        started = time.perf_counter()
        predict_one(text)
        times.append((time.perf_counter() - started) * 1000)
    return {"p50": round(statistics.median(times), 2), "p95": round(statistics.quantiles(times, n=20)[18], 2)}


def finish(
    job: Job,
    data: dict[str, Split],
    predict: Callable[[list[str]], list[str]],
    predict_one: Callable[[str], Any],
    *,
    train_seconds: float,
    examples_processed: int,
    curve: list[dict[str, float]],
    settings: dict[str, Any],
) -> dict[str, Any]:
    """Score a fitted method on the test and validation data and assemble its result."""
    started = time.perf_counter()
    test_predicted = predict(data["test"].texts)
    predict_seconds = time.perf_counter() - started
    validation_accuracy = score(data["validation"].labels, predict(data["validation"].texts), None)["accuracy"]
    # Time to the final validation accuracy: the first evaluation that reached it (the whole fit without a curve).
    times = [p["elapsed_s"] for p in curve if reached(p["val_accuracy"], validation_accuracy)]
    return {
        "metrics": score(data["test"].labels, test_predicted, job.oos_label),
        "validation_accuracy": validation_accuracy,
        "train_seconds": round(train_seconds, 2),
        "examples_processed": examples_processed,
        "train_examples_per_s": round(examples_processed / train_seconds, 1),
        "time_to_final_val_accuracy_s": round(times[0] if times else train_seconds, 2),
        "curve": curve,
        "test_predict_seconds": round(predict_seconds, 2),
        "latency_ms": latency_ms(predict_one, data["test"].texts),
        "sizes": {name: len(split.texts) for name, split in data.items()},
        "settings": settings,
    }


def _threads() -> int:
    import torch

    return torch.get_num_threads()


# ------------------------------------------------------------------------------------------------------ the methods
TFIDF_C_GRID = (1.0, 10.0, 100.0)  # the logistic regression's inverse regularization strengths tried on validation


def tfidf_features() -> Any:
    """TF-IDF of word 1-2 grams next to TF-IDF of character 2-5 grams within word boundaries (``char_wb``), both
    with sublinear term frequency: the character grams catch misspellings and word forms the word grams miss."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import FeatureUnion

    return FeatureUnion([
        ("word", TfidfVectorizer(analyzer="word", ngram_range=(1, 2), sublinear_tf=True)),
        ("char", TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True)),
    ])  # fmt: skip


def tfidf_logreg(job: Job, data: dict[str, Split]) -> dict[str, Any]:
    """TF-IDF features (:func:`tfidf_features`) and a logistic regression whose ``C`` is chosen on the validation
    data from ``TFIDF_C_GRID`` (validation accuracy; a tie goes to the smaller ``C``). Every candidate is fitted on
    the training data only, as intentune trains on it only (its validation rows choose the epoch, the calibration
    and the thresholds), so the model kept is the chosen candidate itself; the features are fitted once, on the
    training data, since they do not depend on ``C``. Training time covers the features, every candidate's fit and
    its validation predictions. The baseline every time ratio is taken against."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    train, validation = data["train"], data["validation"]
    started = time.perf_counter()
    features = tfidf_features().fit(train.texts)
    train_x, validation_x = features.transform(train.texts), features.transform(validation.texts)
    fitted: dict[float, Any] = {}
    by_c: dict[str, float] = {}
    for c in TFIDF_C_GRID:
        fitted[c] = LogisticRegression(C=c, max_iter=2000).fit(train_x, train.labels)
        by_c[str(c)] = score(validation.labels, list(fitted[c].predict(validation_x)), None)["accuracy"]
    chosen = max(TFIDF_C_GRID, key=lambda c: (by_c[str(c)], -c))
    pipeline = make_pipeline(features, fitted[chosen])
    seconds = time.perf_counter() - started
    settings = {
        "features": {"word": {"ngram_range": [1, 2]}, "char_wb": {"ngram_range": [2, 5]}, "sublinear_tf": True},
        "n_features": int(train_x.shape[1]),
        "C_grid": list(TFIDF_C_GRID),
        "validation_accuracy_by_C": by_c,
        "C": chosen,
        "fitted_on": "train",
        "max_iter": 2000,
    }
    return finish(
        job, data, lambda texts: list(pipeline.predict(texts)), lambda text: pipeline.predict([text]),
        train_seconds=seconds, examples_processed=len(TFIDF_C_GRID) * len(train.texts), curve=[],
        settings=settings,
    )  # fmt: skip


def intentune_method(job: Job, data: dict[str, Split]) -> dict[str, Any]:
    """intentune's ``IntentClassifier`` with the project's current default config (so a change of defaults, such
    as the few-shot mode, shows in the next run), only the backbone and the device set."""
    from intentune import __version__
    from intentune.config import Config
    from intentune.model import IntentClassifier
    from intentune.train import Callback

    config = Config().override(
        [f"model.backbone={job.backbone}", f"train.device={job.device}", *job.options.get("set", [])]
    )
    curve: list[dict[str, float]] = []
    started = time.perf_counter()

    class Recorder(Callback):
        def on_evaluate(self, state: Any, control: Any, metrics: dict[str, float]) -> None:
            point = {"epoch": round(float(metrics.get("epoch", 0)), 2), "val_accuracy": metrics["val_accuracy"]}
            curve.append(point | {"elapsed_s": round(time.perf_counter() - started, 2)})
            print("evaluation:", json.dumps(curve[-1]), flush=True)  # progress in the piece's log

    train, validation = data["train"], data["validation"]
    model = IntentClassifier(config).fit(
        train.texts, train.labels, validation=(validation.texts, validation.labels), callbacks=[Recorder()]
    )
    seconds = time.perf_counter() - started
    summary = model.train_summary_
    few_shot = summary.get("few_shot")
    settings = {
        "intentune": __version__,
        "config": {"model": config.to_dict()["model"], "train": config.to_dict()["train"]},
        "epochs_run": summary.get("epochs"),
        "stopped_early": summary.get("stopped_early"),
        "few_shot": few_shot,
        "torch_threads": _threads(),
    }
    processed = round(float(summary.get("epochs") or 0) * len(train.texts))
    if few_shot:  # the contrastive passes over the training data count as processed examples too
        processed += int(getattr(config.train, "few_shot_epochs", 0) * len(train.texts))
    predict = model.predict
    if job.oos_label is None or job.drop_oos:
        # A closed-set test (every row has a known intent): score the top intent, as every peer is scored.
        # predict() would also answer the out-of-scope label below the fitted threshold (on the confidence or the
        # distance score), by default at the cost of up to one point of validation accuracy (oos.max_accuracy_drop);
        # that is recorded separately, from the same pass over the test texts (probabilities and distances).
        from intentune.evaluate.oos import apply_rejection

        def predict(texts: list[str]) -> list[str]:
            probs, distances = model.scores(texts)
            if texts is data["test"].texts:
                answers = apply_rejection(model.classes_, probs, model.thresholds, config.oos.label, distances)[0]
                settings["with_rejection"] = score(data["test"].labels, list(answers), None)
            return [model.classes_[i] for i in probs.argmax(axis=1)]

    return finish(
        job, data, predict, lambda text: model.predict([text]),
        train_seconds=seconds, examples_processed=processed, curve=curve, settings=settings,
    )  # fmt: skip


def setfit_method(job: Job, data: dict[str, Split]) -> dict[str, Any]:
    """SetFit (the ``setfit`` package) on the job's encoder body (MiniLM, the same as intentune's, or MPNet, the
    SetFit paper's own, on the few-shot tasks): contrastive fine-tuning of the sentence encoder on
    pairs (``num_iterations=20`` pairs per example, batch 16, 1 epoch, body learning rate 2e-5: the settings of the
    SetFit paper and README), then scikit-learn's logistic regression on the embeddings."""
    import setfit
    from datasets import Dataset
    from setfit import SetFitModel, Trainer, TrainingArguments

    from intentune.backbones import resolve_backbone

    options = {"num_iterations": 20, "batch_size": 16, "num_epochs": 1, "body_learning_rate": 2e-5} | job.options
    device = "cuda" if job.device == "cuda" else "cpu"
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        model = SetFitModel.from_pretrained(str(resolve_backbone(job.backbone)), device=device)
        train = Dataset.from_dict({"text": data["train"].texts, "label": data["train"].labels})
        args = TrainingArguments(output_dir=tmp, report_to="none", save_strategy="no", seed=42, **options)
        trainer = Trainer(model=model, args=args, train_dataset=train)
        trainer.train()
        seconds = time.perf_counter() - started
    # With num_iterations set, SetFit draws that many positive and as many negative pairs per training example.
    pairs = 2 * options["num_iterations"] * len(data["train"].texts)
    settings = {"setfit": setfit.__version__, **options, "pairs": pairs, "torch_threads": _threads()}
    return finish(
        job, data, lambda texts: [str(y) for y in model.predict(texts)], lambda text: model.predict([text]),
        train_seconds=seconds, examples_processed=2 * pairs, curve=[], settings=settings,
    )  # fmt: skip


def trainer_method(job: Job, data: dict[str, Split]) -> dict[str, Any]:
    """A plain Hugging Face ``Trainer`` fine-tune, written as transformers' ``run_classification.py`` example does
    it: ``AutoModelForSequenceClassification``, every text padded to ``max_length``, ``TrainingArguments``
    defaults (AdamW, linear decay, no warm-up, no weight decay), evaluation once per epoch, and the seed set before
    the model is made (so its new classification layer starts the same in every run); the backbone, epochs,
    learning rate and batch size come from ``job.options`` (``benchmarks.run`` passes intentune's)."""
    import torch
    import transformers
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        Trainer,
        TrainerCallback,
        TrainingArguments,
        set_seed,
    )

    from intentune.backbones import from_pretrained, resolve_backbone

    options = {"epochs": 3, "learning_rate": 5e-5, "batch_size": 8, "max_length": 64} | job.options
    classes = sorted(set(data["train"].labels))
    label_id = {label: i for i, label in enumerate(classes)}
    curve: list[dict[str, float]] = []

    started = time.perf_counter()
    path = str(resolve_backbone(job.backbone))
    tokenizer = from_pretrained(AutoTokenizer, path)
    set_seed(42)  # before the model is made, as the example script does: its classification layer is random
    model = from_pretrained(
        AutoModelForSequenceClassification, path, num_labels=len(classes), id2label=dict(enumerate(classes)),
        label2id=label_id,
    )  # fmt: skip
    if tokenizer.pad_token is None:  # decoders: pad with the end-of-text token, as the example script does
        tokenizer.pad_token = tokenizer.eos_token
    model.config.pad_token_id = tokenizer.pad_token_id

    def encode(split: Split) -> list[dict[str, Any]]:
        enc = tokenizer(split.texts, padding="max_length", truncation=True, max_length=options["max_length"])
        known = [i for i, y in enumerate(split.labels) if y in label_id]
        return [{k: v[i] for k, v in enc.items()} | {"labels": label_id[split.labels[i]]} for i in known]

    class Recorder(TrainerCallback):
        def on_evaluate(self, args: Any, state: Any, control: Any, metrics: dict[str, float], **kwargs: Any) -> None:
            point = {"epoch": round(float(state.epoch or 0), 2), "val_accuracy": round(metrics["eval_accuracy"], 5),
                     "val_loss": round(metrics["eval_loss"], 5)}  # fmt: skip
            curve.append(point | {"elapsed_s": round(time.perf_counter() - started, 2)})

    def accuracy(prediction: Any) -> dict[str, float]:
        return {"accuracy": float((prediction.predictions.argmax(-1) == prediction.label_ids).mean())}

    with tempfile.TemporaryDirectory() as tmp:
        args = TrainingArguments(
            output_dir=tmp, num_train_epochs=options["epochs"], learning_rate=options["learning_rate"],
            per_device_train_batch_size=options["batch_size"], per_device_eval_batch_size=64,
            eval_strategy="epoch", save_strategy="no", logging_strategy="epoch", report_to="none", seed=42,
            use_cpu=job.device != "cuda", disable_tqdm=True,
        )  # fmt: skip
        trainer = Trainer(
            model=model, args=args, train_dataset=encode(data["train"]), eval_dataset=encode(data["validation"]),
            compute_metrics=accuracy, callbacks=[Recorder()],
        )  # fmt: skip
        trainer.train()
    seconds = time.perf_counter() - started
    model.eval()
    device = model.device

    @torch.no_grad()
    def predict(texts: list[str]) -> list[str]:
        answers = []
        for i in range(0, len(texts), 64):
            enc = tokenizer(texts[i : i + 64], padding="max_length", truncation=True,
                            max_length=options["max_length"], return_tensors="pt").to(device)  # fmt: skip
            answers += [classes[j] for j in model(**enc).logits.argmax(-1).tolist()]
        return answers

    settings = {"transformers": transformers.__version__, **options, "torch_threads": _threads()}
    return finish(
        job, data, predict, lambda text: predict([text]), train_seconds=seconds,
        examples_processed=round(options["epochs"] * len(data["train"].texts)), curve=curve, settings=settings,
    )  # fmt: skip


METHODS: dict[str, Callable[[Job, dict[str, Split]], dict[str, Any]]] = {
    "tfidf": tfidf_logreg,
    "intentune": intentune_method,
    "setfit": setfit_method,
    "trainer": trainer_method,
}


def run_job(job: Job) -> dict[str, Any]:
    """Read the job's data and run its method."""
    drop = job.oos_label if job.drop_oos else None
    data = {
        "train": Split.read(job.train_file, drop_label=drop),
        "validation": Split.read(job.validation_file, drop_label=drop),
        "test": Split.read(job.test_file, drop_label=drop),
    }
    if job.device == "cuda":
        import torch

        torch.cuda.reset_peak_memory_stats()
    result = METHODS[job.method](job, data)
    if job.device == "cuda":
        import torch

        result["peak_gpu_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return {"job": asdict(job), **result}


def main() -> None:
    """``python -m benchmarks.peers JOB.json RESULT.json``: run one job, write its result."""
    job_file, result_file = sys.argv[1:3]
    result = run_job(Job(**json.loads(Path(job_file).read_text())))
    Path(result_file).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
