"""Augmentation with synthetic rows (templates, LM paraphrases, given files), and the comparison that shows whether
they help: a model trained on the real rows against one trained on the real + synthetic rows, each difference with
its paired-bootstrap interval.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import Config
from .data import Examples, load_for_config, split_validation, write_examples
from .errors import ConfigError
from .evaluate import EvalReport, evaluate_classifier
from .model import IntentClassifier
from .train.callbacks import Callback

if TYPE_CHECKING:
    from .evaluate.bootstrap import Interval


@dataclass
class AugmentResult:
    """What :func:`augment_data` produced."""

    combined: Examples
    synthetic: Examples
    output_dir: Path
    comparison: dict[str, Any] | None = None


def augment_data(
    train_file: str | Path,
    output_dir: str | Path,
    *,
    config: Config | None = None,
    templates: str | Path | None = None,
    generate: bool = False,
    synthetic_files: Sequence[str | Path] = (),
    ratio: float | None = None,
    cap_per_intent: int | None = None,
    evaluate: bool = False,
    filter_model: str | Path | None = None,
    callbacks: Sequence[Callback] = (),
    progress: Any = None,
) -> AugmentResult:
    """Add synthetic rows (templates, LM paraphrases, or given files) to real training data, and optionally prove
    whether they help.

    Writes ``train_augmented.csv`` (real + synthetic rows with a ``source`` column) and, when generating,
    ``generated.csv`` (resumable) to ``output_dir``. With ``evaluate``, trains one model on the real rows and one
    on the augmented rows, with the same config, seed and real validation data (``data.validation_file``, else a
    stratified split of the real rows), evaluates both on the validation data and on ``data.test_file`` if set,
    and writes ``comparison.json`` and ``comparison.md``, each difference with a 95% paired-bootstrap interval over
    the evaluation rows. The real-data model also filters the generated paraphrases unless ``filter_model`` names
    another model. Synthetic rows that repeat a real training, validation or test text (ignoring case and
    punctuation) are dropped.

    Raises:
        ConfigError: if nothing synthetic is asked for.
    """
    from .synth import combine_examples, generate_paraphrases, make_paraphraser
    from .templates import expand_templates, load_templates

    if not (templates or generate or synthetic_files):
        raise ConfigError("nothing to add: pass --templates SPEC, --generate, or --synthetic FILE")
    config = config or Config()
    dcfg = config.data
    out = Path(output_dir)
    real = load_for_config(str(train_file), config)
    validation = load_for_config(dcfg.validation_file, config) if dcfg.validation_file else None
    if validation is None and evaluate:
        real, validation = split_validation(real, dcfg)
    test = load_for_config(dcfg.test_file, config) if dcfg.test_file else None
    # Synthetic copies of evaluation texts would leak them into training.
    heldout = [*(validation.texts if validation is not None else []), *(test.texts if test is not None else [])]
    baseline, seconds = None, {}
    started = time.perf_counter()
    if evaluate:
        baseline = IntentClassifier(config).fit(
            real.texts, real.labels, validation=(validation.texts, validation.labels), callbacks=callbacks
        )
        seconds["train_real_only"] = round(time.perf_counter() - started, 1)
    synthetic = Examples([], [], [], "synthetic")
    if templates:
        synthetic.extend(expand_templates(load_templates(templates), seed=dcfg.split_seed))
    for path in synthetic_files:
        synthetic.extend(load_for_config(str(path), config))
    if generate:
        judge = IntentClassifier.load(filter_model) if filter_model else baseline
        started = time.perf_counter()
        paraphraser = make_paraphraser(config.generate)
        generated = generate_paraphrases(
            real,
            paraphraser,
            config.generate,
            out / "generated.csv",
            classifier=judge,
            heldout=heldout,
            progress=progress,
        )
        seconds["generate"] = round(time.perf_counter() - started, 1)
        synthetic.extend(generated)
    combined = combine_examples(
        real, synthetic, ratio=ratio, cap_per_intent=cap_per_intent, seed=dcfg.split_seed, heldout=heldout
    )
    write_examples(combined, out / "train_augmented.csv")
    result = AugmentResult(combined, synthetic, out)
    if evaluate:
        started = time.perf_counter()
        augmented = IntentClassifier(config).fit(
            combined.texts, combined.labels, validation=(validation.texts, validation.labels), callbacks=callbacks
        )
        seconds["train_augmented"] = round(time.perf_counter() - started, 1)
        result.comparison = compare_models(baseline, augmented, validation, test, len(real), len(combined) - len(real))
        result.comparison["seconds"] = seconds
        (out / "comparison.json").write_text(json.dumps(result.comparison, indent=2), encoding="utf-8")
        (out / "comparison.md").write_text(comparison_markdown(result.comparison), encoding="utf-8")
    return result


def compare_models(
    baseline: IntentClassifier,
    augmented: IntentClassifier,
    validation: Examples,
    test: Examples | None,
    real_rows: int,
    synthetic_rows: int,
) -> dict[str, Any]:
    """Accuracy, macro-F1 and per-intent F1 of two models on the same real data, and their differences.

    Each difference carries a paired-bootstrap ``interval`` (95%, resampling the evaluation rows, which both models
    predict) and ``within_noise``: true when the interval contains 0, so one training run per side cannot tell
    the models apart on that metric.
    """
    from .evaluate.bootstrap import paired_bootstrap

    result: dict[str, Any] = {"real_rows": real_rows, "synthetic_rows": synthetic_rows}
    for name, data in (("validation", validation), ("test", test)):
        if data is None:
            continue
        evals = [evaluate_classifier(model, data.texts, data.labels) for model in (baseline, augmented)]
        a, b = (e.report for e in evals)
        # The labels the reports' macro averages are over, so the bootstrap's macro F1 is the reported one (the
        # union differs from either side only when synthetic rows bring an intent the real rows lack).
        averaged = [[x for x in e.labels if x not in e.averages_leave_out] for e in evals]
        labels = list(dict.fromkeys([*averaged[0], *averaged[1]]))
        noise = paired_bootstrap(data.labels, *(_answers(e, data.labels) for e in evals), labels)
        result["bootstrap"] = {"resamples": noise.resamples, "confidence": noise.confidence, "seed": noise.seed}
        per_intent = {
            intent: _diff(a[intent]["f1-score"], b[intent]["f1-score"], noise.per_intent_f1[intent])
            for intent in baseline.classes_
        }
        result[name] = {
            "rows": len(data),
            "accuracy": _diff(a["accuracy"], b["accuracy"], noise.accuracy),
            "macro_f1": _diff(a["macro avg"]["f1-score"], b["macro avg"]["f1-score"], noise.macro_f1),
            "per_intent_f1": per_intent,
        }
    return result


def _answers(evaluation: EvalReport, y_true: Sequence[str]) -> list[str]:
    """Each row's answer, rebuilt from the report: the true intent except at the rows it lists as errors."""
    answers = list(y_true)
    for error in evaluation.errors:
        answers[error["index"]] = error["predicted"]
    return answers


def _diff(real_only: float, augmented: float, noise: Interval | None = None) -> dict[str, Any]:
    """Both values and their difference; with ``noise``, its bootstrap interval and whether it contains 0."""
    diff: dict[str, Any] = {"real_only": real_only, "augmented": augmented}
    diff["difference"] = round(augmented - real_only, 6)
    if noise is not None:
        diff.update(interval=[noise.low, noise.high], within_noise=noise.within_noise)
    return diff


def comparison_markdown(comparison: dict[str, Any], top: int = 10) -> str:
    """The comparison as Markdown: overall numbers per split, then the intents that changed most, each difference
    with its bootstrap interval and 'within noise' where the interval contains 0."""
    lines = [
        "# Real data versus real + synthetic",
        "",
        f"Training rows: {comparison['real_rows']} real, plus {comparison['synthetic_rows']} synthetic.",
        "",
        "| data | metric | real only | augmented | difference | 95% interval |",
        "|---|---|---:|---:|---:|---|",
    ]
    for name in ("validation", "test"):
        if name in comparison:
            for metric in ("accuracy", "macro_f1"):
                m = comparison[name][metric]
                lines.append(
                    f"| {name} ({comparison[name]['rows']}) | {metric} | {m['real_only']:.4f} | "
                    f"{m['augmented']:.4f} | {m['difference']:+.4f} | {_noise_cell(m, 4)} |"
                )
    name = "test" if "test" in comparison else "validation"
    changes = sorted(comparison[name]["per_intent_f1"].items(), key=lambda kv: kv[1]["difference"])
    lines += ["", f"Per-intent F1 on {name}, largest drops and gains:", ""]
    lines += ["| intent | real only | augmented | difference | 95% interval |", "|---|---:|---:|---:|---|"]
    shown = [*changes[:top], *changes[-top:]] if len(changes) > 2 * top else changes
    for intent, m in shown:
        lines.append(
            f"| `{intent}` | {m['real_only']:.3f} | {m['augmented']:.3f} | {m['difference']:+.3f} | "
            f"{_noise_cell(m, 3)} |"
        )
    if "bootstrap" in comparison:
        boot = comparison["bootstrap"]
        lines += [
            "",
            f"Intervals: {boot['confidence']:.0%} paired bootstrap over the evaluation rows ({boot['resamples']} "
            f"resamples, seed {boot['seed']}). 'within noise': the interval contains 0, so these rows do not show "
            "which model is better.",
        ]
    return "\n".join(lines) + "\n"


def _noise_cell(diff: dict[str, Any], digits: int) -> str:
    """``[low, high]``, plus 'within noise' when the interval contains 0; empty without an interval."""
    if "interval" not in diff:
        return ""
    low, high = diff["interval"]
    return f"[{low:+.{digits}f}, {high:+.{digits}f}]" + (" within noise" if diff["within_noise"] else "")
