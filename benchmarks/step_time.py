"""Time per training step: a plain Hugging Face ``Trainer`` against intentune's loop, same backbone shape.

    python benchmarks/step_time.py --backbone smollm2-135m [--device cuda] [--steps 100] [--skip 20]
                                   [--setting NAME=KEY=VALUE,KEY=VALUE ...] [--out FILE]

The weights are random (only the step's cost is measured, never accuracy), made from the backbone's config and
tokenizer: ``--backbone`` is a bundled name or any folder with ``config.json`` and the tokenizer files, so on a
machine where the bundled weights are too large to carry, those few files are enough. The texts are BANKING77's
training texts (``--data``), shuffled with a fixed seed, so the batches have real lengths; each setting takes as
many as its steps need (an epoch's end, where intentune evaluates, falls after the timed steps while the file has
them: 8,622 texts are 134 steps of 64).

Each setting trains ``--steps`` optimizer steps at batch 16 (unless the setting changes it) and reports the
milliseconds per step between step ``--skip`` and the step before the last (the last one evaluates), with the
device synchronised at both ends, and examples per second over the same steps:

- ``trainer``: ``AutoModelForSequenceClassification`` under the ``Trainer``, every text padded to 64 tokens, fp32,
  learning rate 5e-5 (the suite's ``Trainer`` peer);
- intentune's ``IntentClassifier.fit`` (few-shot mode off) with its defaults, and with each ``--setting``
  (default: ``bf16`` = ``train.precision=bf16``, ``no-average`` = ``train.ema_epochs=0``, ``batch-64`` =
  ``train.batch_size=64``).

Writes a JSON record with the machine (default ``benchmarks/results/step_time_<backbone>_<device>.json``) and
prints a Markdown table. Settings run one after another in this process; run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, SHARED, machine, relative  # noqa: E402

DEFAULT_SETTINGS = ["bf16=train.precision=bf16", "no-average=train.ema_epochs=0", "batch-64=train.batch_size=64"]


def random_backbone(source: str, target: Path) -> Path:
    """A folder with the backbone's config and tokenizer and random weights of its shape."""
    import torch
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    from intentune.backbones import from_pretrained, resolve_backbone

    folder = Path(source) if Path(source).is_dir() else Path(resolve_backbone(source))
    config = from_pretrained(AutoConfig, folder)
    torch.manual_seed(0)
    AutoModel.from_config(config, dtype=torch.float32).save_pretrained(target)
    from_pretrained(AutoTokenizer, folder).save_pretrained(target)
    return target


class Marks:
    """Wall-clock marks at two steps, the device synchronised first."""

    def __init__(self, device: str, first: int, last: int) -> None:
        import torch

        self.sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
        self.first, self.last, self.at = first, last, {}

    def step(self, step: int) -> None:
        if step in (self.first, self.last):
            self.sync()
            self.at[step] = time.perf_counter()

    def result(self, batch_size: int) -> dict[str, float]:
        seconds = self.at[self.last] - self.at[self.first]
        steps = self.last - self.first
        return {
            "ms_per_step": round(seconds / steps * 1000, 2),
            "examples_per_s": round(steps * batch_size / seconds, 1),
        }


def time_trainer(folder: Path, texts: list[str], labels: list[str], args: argparse.Namespace) -> dict[str, Any]:
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        Trainer,
        TrainerCallback,
        TrainingArguments,
    )

    from intentune.backbones import from_pretrained

    classes = sorted(set(labels))
    tokenizer = from_pretrained(AutoTokenizer, folder)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = from_pretrained(AutoModelForSequenceClassification, folder, num_labels=len(classes))
    model.config.pad_token_id = tokenizer.pad_token_id
    encoded = tokenizer(texts, padding="max_length", truncation=True, max_length=64)
    rows = [{k: v[i] for k, v in encoded.items()} | {"labels": classes.index(labels[i])} for i in range(len(texts))]
    marks = Marks(args.device, args.skip, args.steps - 1)

    class Timer(TrainerCallback):
        def on_step_end(self, _args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            marks.step(state.global_step)

    with tempfile.TemporaryDirectory() as tmp:
        training = TrainingArguments(
            output_dir=tmp, max_steps=args.steps, per_device_train_batch_size=16, learning_rate=5e-5,
            save_strategy="no", logging_strategy="no", report_to="none", disable_tqdm=True, seed=42,
            use_cpu=args.device != "cuda",
        )  # fmt: skip
        Trainer(model=model, args=training, train_dataset=rows, callbacks=[Timer()]).train()
    return {"setting": "trainer", "sets": [], "batch_size": 16, **marks.result(16)}


def time_intentune(
    name: str, sets: list[str], folder: Path, texts: list[str], labels: list[str], args: argparse.Namespace
) -> dict[str, Any]:
    from intentune.config import Config
    from intentune.model import IntentClassifier
    from intentune.train import Callback

    # Few-shot mode off: a slice of the data can look like few examples per intent, and its phase is not a step.
    base = [f"model.backbone={folder}", f"train.device={args.device}", f"train.max_steps={args.steps}"]
    config = Config().override([*base, "train.few_shot=off", *sets])
    batch_size = config.train.batch_size
    texts, labels = texts[: batch_size * args.steps], labels[: batch_size * args.steps]  # later passes cost time
    marks = Marks(args.device, args.skip, args.steps - 1)

    class Timer(Callback):
        def on_step_end(self, state: Any, control: Any) -> None:
            marks.step(state.step)

    validation = (texts[:256], labels[:256])
    IntentClassifier(config).fit(texts, labels, validation=validation, callbacks=[Timer()])
    return {"setting": name, "sets": sets, "batch_size": batch_size, **marks.result(batch_size)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="smollm2-135m", help="a bundled name or a folder (config + tokenizer)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--data", type=Path, default=SHARED / "banking77" / "dialoglue_split" / "train.csv")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--skip", type=int, default=20, help="steps before the timing starts (warm-up)")
    parser.add_argument("--setting", action="append", metavar="NAME=KEY=VALUE,...",
                        help="an intentune setting to time besides its defaults (repeatable)")  # fmt: skip
    parser.add_argument("--no-trainer", action="store_true", help="time intentune's settings only")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if not 0 < args.skip < args.steps - 1:
        parser.error("--skip must be at least 1 and below --steps - 1")

    with open(args.data, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    random.Random(0).shuffle(rows)
    texts, labels = [r["text"] for r in rows], [r["intent"] for r in rows]
    settings = [("defaults", [])] + [
        (spec.split("=", 1)[0], spec.split("=", 1)[1].split(",")) for spec in (args.setting or DEFAULT_SETTINGS)
    ]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = random_backbone(args.backbone, Path(tmp) / "backbone")
        if not args.no_trainer:
            results.append(time_trainer(folder, texts, labels, args))
            print(results[-1], flush=True)
        for name, sets in settings:
            results.append(time_intentune(name, sets, folder, texts, labels, args))
            print(results[-1], flush=True)
    record = {
        "command": relative([sys.executable.rsplit("/", 1)[-1], *sys.argv]),
        "backbone": args.backbone,
        "device": args.device,
        "steps": args.steps,
        "skip": args.skip,
        "machine": machine(),
        "results": results,
    }
    name = Path(args.backbone).name
    out = args.out or ROOT / "benchmarks" / "results" / f"step_time_{name}_{args.device}.json"
    out.write_text(json.dumps(record, indent=2) + "\n")
    print("\n| setting | batch | ms per step | examples/s |\n|---|---:|---:|---:|")
    for r in results:
        what = ", ".join(r["sets"]) or ("padding to 64, fp32" if r["setting"] == "trainer" else "defaults")
        print(f"| {r['setting']} ({what}) | {r['batch_size']} | {r['ms_per_step']} | {r['examples_per_s']} |")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
