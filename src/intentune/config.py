"""One typed, sectioned config (``data`` / ``model`` / ``train`` / ``generate`` / ``oos`` / ``serve``), saved with
every model and run.

Every key is a typed field with its help text. Unknown keys are an error that names the key path; values are
type-checked as they are set (from a file, ``--set section.key=value``, an environment variable or a command's
option). Reading and writing config files, and assembling the config a command runs with, is
:mod:`intentune.config_files`.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from .errors import ConfigError

ENV_PREFIX = "INTENTUNE_"  # INTENTUNE_<KEY> environment variables override [serve] keys


def _opt(default: Any, help: str, choices: tuple[str, ...] | None = None, example: Any = None) -> Any:
    """A dataclass field with its documentation (written as a comment by ``config init``).

    ``example`` is shown, commented out, for keys that are unset by default.
    """
    return field(default=default, metadata={"help": help, "choices": choices, "example": example})


@dataclass
class DataConfig:
    """Where the data is and how its text is preprocessed."""

    train_file: str | None = _opt(
        None, "Training data: CSV or JSONL with a text and an intent field.", example="data/train.csv"
    )
    validation_file: str | None = _opt(
        None,
        "Validation data for early stopping; if unset, validation_fraction of train_file is split off.",
        example="data/validation.csv",
    )
    test_file: str | None = _opt(None, "Test data, evaluated once after training; optional.", example="data/test.csv")
    text_field: str = _opt("text", "Name of the column or JSON field holding the utterance.")
    label_field: str = _opt("intent", "Name of the column or JSON field holding the intent label.")
    validation_fraction: float = _opt(
        0.1, "Share of the training data split off (stratified) as validation when no validation_file is given."
    )
    test_fraction: float = _opt(0.1, "Share of the data put into the test split by `intentune data split`.")
    split_seed: int = _opt(13, "Seed of every stratified split, so splits are reproducible.")
    lowercase: bool = _opt(False, "Lower-case every text before tokenizing (uncased encoders do this anyway).")
    remove_special_chars: bool = _opt(
        False, "Replace characters other than letters, digits, spaces and apostrophes with spaces."
    )
    multi_label_separator: str = _opt(
        "+",
        "Joins the intents of a message with more than one (cancel_order+refund); empty = every label is one "
        "intent, separator or not.",
    )


@dataclass
class ModelConfig:
    """The pretrained backbone and the classification head on top of it."""

    backbone: str = _opt(
        "smollm2-135m",
        "Bundled name (smollm2-135m: GPT-style decoder; minilm-l6: small encoder; mpnet-base: larger encoder), a "
        "local Hugging Face folder, or a hub id.",
    )
    kind: str = _opt(
        "auto", "Backbone kind; auto detects it from the backbone's config.", ("auto", "decoder", "encoder")
    )
    pooling: str = _opt(
        "auto",
        "How token states become one vector: auto = prompt for decoders, mean for encoders; prompt = each text "
        "wrapped in prompt_template and the last token pooled (decoders only); last = the last real token of the "
        "plain text.",
        ("auto", "last", "mean", "cls", "prompt"),
    )
    prompt_template: str = _opt(
        'This message: "{text}". Its intent in one word:',
        "The instruction each text is wrapped in when pooling = prompt; {text} (exactly once) marks the text, "
        "which truncation shortens while the template stays whole.",
    )
    max_length: int = _opt(64, "Texts are truncated to this many tokens.")
    dropout: float = _opt(0.1, "Dropout on the pooled vector before the dense classification layer.")
    num_layers: int | None = _opt(
        None,
        "Keep only the lower N transformer layers of the backbone (faster training and prediction, usually at "
        "some accuracy); unset = all of them.",
        example=12,
    )
    multi_label: bool | str = _opt(
        "auto",
        "true = a sigmoid per intent and binary cross-entropy, so one message can have several intents (each "
        "answered above its own threshold); false = softmax, one intent per message; auto = true when a training "
        "row has several intents (data.multi_label_separator).",
    )


@dataclass
class TrainConfig:
    """The fine-tuning loop: optimizer, schedule, early stopping."""

    seed: int = _opt(42, "Seed for weight initialisation, shuffling and dropout.")
    epochs: int = _opt(5, "Maximum passes over the training data (early stopping may end sooner).")
    batch_size: int = _opt(16, "Training examples per step.")
    group_by_length: bool = _opt(
        True, "Batch texts of similar token length together (shuffled), so batches need little padding."
    )
    eval_batch_size: int = _opt(64, "Examples per forward pass when evaluating and predicting.")
    learning_rate: float | None = _opt(
        None,
        "Learning rate of the pretrained backbone; unset = the backbone's default: 5e-5 for decoders and mpnet-base, "
        "1e-4 for other encoders.",
        example=3e-5,
    )
    head_learning_rate: float = _opt(
        2e-3, "Learning rate of the freshly initialised classification layer (it needs a larger one)."
    )
    layer_lr_decay: float = _opt(
        1.0,
        "Layer-wise learning-rate decay: the top transformer layer trains at the backbone's learning rate, each "
        "layer below at this factor times the rate of the one above, the embeddings below the lowest layer at one "
        "factor less again (0.9 over 6 layers: 0.53x for the embeddings); 1.0 = one rate for the whole backbone.",
        example=0.9,
    )
    weight_decay: float = _opt(0.01, "AdamW weight decay (not applied to biases and norms).")
    warmup_ratio: float = _opt(0.1, "Share of the steps over which the learning rate rises from 0.")
    schedule: str = _opt("linear", "Decay after warmup.", ("linear", "cosine", "constant"))
    max_steps: int | None = _opt(
        None,
        "Stop after this many optimizer steps (the schedule spans them); unset = as many as the epochs take.",
        example=1000,
    )
    gradient_accumulation_steps: int = _opt(
        1, "Add up the gradients of this many batches per optimizer step (effective batch = batch_size x this)."
    )
    optimizer: str = _opt(
        "adamw",
        "adamw (decoupled weight decay), adam, sgd (with momentum) or adafactor.",
        ("adamw", "adam", "sgd", "adafactor"),
    )
    momentum: float = _opt(0.9, "SGD momentum (optimizer = sgd only).")
    class_weight: str | dict[str, float] = _opt(
        "none",
        "Loss weight per intent: none, balanced (inversely proportional to the intent's training examples), or a "
        "table of explicit weights, for example { refund = 2.0 } (intents not named get 1.0).",
    )
    label_smoothing: float = _opt(
        0.0,
        "Label smoothing of the training loss: each target gives this share of its weight evenly to all intents, so "
        "the model is not pushed to ever more extreme logits; 0 = off, 0.1 is common. Validation loss stays plain "
        "cross-entropy.",
    )
    freeze_layers: int = _opt(
        0, "Freeze the embeddings and the lowest N transformer layers (faster steps, less overfitting); 0 = none."
    )
    freeze_embeddings: bool = _opt(
        False,
        "Freeze the token embedding matrix alone (every transformer layer still trains): its gradient and optimizer "
        "update cover the whole vocabulary each step, though a batch uses a few hundred tokens of it.",
    )
    lora_rank: int = _opt(
        0,
        "Train LoRA adapters (peft) of this rank instead of the whole backbone; 0 = off. Merged into the saved "
        "weights.",
    )
    lora_alpha: float = _opt(16.0, "LoRA scaling numerator (the update is scaled by lora_alpha / lora_rank).")
    lora_dropout: float = _opt(0.05, "Dropout on the LoRA adapters' input.")
    lora_target_modules: list[str] | None = _opt(
        None,
        "Module names that get adapters; unset = all attention and MLP projections of the backbone.",
        example=["q_proj", "v_proj"],
    )
    ema_epochs: float = _opt(
        0.5,
        "Average the weights over training: an exponential moving average whose time constant is this many epochs, "
        "or a ninth of the steps trained so far where that is shorter (early on; with 5 epochs and 0.5, for about "
        "the first 90% of training). Validation, early stopping and the saved model use the averaged weights; it "
        "costs one float32 copy of the trainable weights. 0 = off.",
    )
    precision: str = _opt(
        "fp32",
        "fp32, or bf16 autocast: bf16 = always, auto = where the hardware multiplies bf16 natively (CPUs with AMX, "
        "GPUs that support it). On the CPU it helps only with AMX; on GPUs it pays off for larger backbones, since "
        "each step casts every weight, which can cost small backbones more than it saves.",
        ("auto", "fp32", "bf16"),
    )
    checkpoint_every_steps: int | None = _opt(
        None,
        "Write a resumable checkpoint (weights, optimizer, schedule, random states) every N steps; unset = after "
        "every evaluation; 0 = never. `intentune train --resume` continues from it.",
        example=200,
    )
    keep_checkpoint: bool = _opt(False, "Keep the last checkpoint after training finishes (default: delete it).")
    max_grad_norm: float = _opt(1.0, "Gradient clipping norm; 0 disables clipping.")
    eval_every_steps: int | None = _opt(
        None, "Evaluate on validation every N steps; unset = once per epoch.", example=50
    )
    early_stopping_patience: int = _opt(
        2, "Stop after this many evaluations without a better validation score; 0 disables early stopping."
    )
    early_stopping_metric: str = _opt(
        "auto",
        "What 'better' means for early stopping and the best weights: lower val_loss (smooth, reliable on small "
        "validation sets), higher val_accuracy (ties broken by val_loss), or auto: val_accuracy when the validation "
        "data has at least 10 examples per intent, else val_loss (a run with --init-from: val_accuracy).",
        ("auto", "val_loss", "val_accuracy"),
    )
    device: str = _opt("auto", "auto, cpu or cuda.", ("auto", "cpu", "cuda"))
    calibrate: bool = _opt(
        True, "Fit temperature scaling on the validation data after training, so confidences match accuracy."
    )
    few_shot: str = _opt(
        "auto",
        "Few-shot mode: contrastive (SupCon) training of the backbone on same/different-intent examples, then a "
        "head started from the intent means, before the ordinary fine-tuning. auto = on when the median intent has "
        "at most few_shot_max_per_intent training examples.",
        ("auto", "on", "off"),
    )
    few_shot_max_per_intent: int = _opt(
        20, "few_shot = auto: the median examples per intent at or below which it is on."
    )
    few_shot_epochs: int = _opt(3, "Passes of contrastive training over the training data.")
    few_shot_learning_rate: float | None = _opt(
        None, "Learning rate of contrastive training; unset = 2e-5 for decoders, 5e-5 for encoders.", example=3e-5
    )
    few_shot_temperature: float = _opt(0.1, "Softmax temperature of the contrastive loss's cosine similarities.")
    few_shot_batch_intents: int = _opt(16, "Intents per contrastive batch.")
    few_shot_examples_per_intent: int = _opt(4, "Examples of each intent per contrastive batch (at least 2).")
    few_shot_prototype_init: bool = _opt(
        True, "Start the classification layer from the normalised mean embedding of each intent, not at random."
    )
    # 50 rows: with them an extension comes closer to a retrain on everything than with 20 (benchmarks/RESULTS.md,
    # adding intents) and still trains on well under half of a full data set's rows.
    replay_per_intent: int = _opt(
        50,
        "With `intentune train --init-from`: rows of each of the old model's intents, drawn from its training data, "
        "mixed into the new training data so the old intents are not forgotten; 0 = no replay.",
    )
    distill_temperature: float = _opt(
        2.0,
        "With `intentune distill`: the temperature that softens the teacher's probabilities and the student's "
        "alike, so the student also learns which wrong intents the teacher finds close.",
    )
    distill_alpha: float = _opt(
        0.5,
        "With `intentune distill`: the teacher's share of the loss (KL divergence to its softened probabilities); "
        "the rest is cross-entropy with the true intents. Unlabelled texts learn from the teacher alone.",
    )


@dataclass
class OOSConfig:
    """Out-of-scope answers: an explicit out-of-scope intent and rejection thresholds fitted from data."""

    label: str = _opt(
        "oos",
        "The out-of-scope intent: rows with this label are out-of-scope examples (in training, an intent of its own; "
        "in validation, they show how well rejection works), and predict answers it when it rejects.",
    )
    reject: bool = _opt(
        True, "Answer the out-of-scope label when the calibrated confidence is below the fitted threshold."
    )
    threshold: float | None = _opt(
        None,
        "A fixed global rejection threshold; unset = fitted on the validation data (see max_accuracy_drop).",
        example=0.5,
    )
    max_accuracy_drop: float = _opt(
        0.01,
        "The accuracy budget: the fitted threshold is the highest whose rejections cost at most this share of "
        "in-scope accuracy on unseen data (0.01 = one point), with probability budget_confidence; higher "
        "thresholds catch more out-of-scope messages.",
    )
    budget_confidence: float = _opt(
        0.9,
        "How sure the fit must be that the threshold's cost on unseen data stays within max_accuracy_drop (a "
        "one-sided binomial bound from the number of validation rows); 0 = judged on the validation rows alone.",
    )
    per_intent: str = _opt(
        "auto",
        "Per-intent thresholds: on, off, or auto (used when validation out-of-scope rows held out of their fit show "
        "they catch more without costing more in-scope accuracy than the budget).",
        ("auto", "on", "off"),
    )
    score: str = _opt(
        "auto",
        "What the fitted threshold applies to: confidence (the calibrated probability), distance (how far the "
        "message's vector lies from the training examples of its nearest intent), or auto (distance when "
        "validation out-of-scope rows show it catches more within the same accuracy budget, else confidence).",
        ("auto", "confidence", "distance"),
    )
    outlier_exposure: str = _opt(
        "auto",
        "Stand-in out-of-scope rows: generic out-of-domain sentences shipped with intentune (not trained on) join "
        "the validation rows as out-of-scope examples when choosing the thresholds, less any matching a training "
        "or validation text: on, off, or auto (only when the validation data has no out-of-scope rows).",
        ("auto", "on", "off"),
    )
    multi_label_floor: float = _opt(
        0.25,
        "Multi-label models: the lowest threshold any intent may get. Each intent's threshold maximises its F1 on "
        "the validation rows (shrunk towards one global threshold when it has few of them); a message with no "
        "intent above its threshold is out of scope.",
    )


@dataclass
class GenerateConfig:
    """Paraphrase generation with a language model (``intentune data generate``)."""

    backbone: str = _opt(
        "smollm2-135m", "Instruction-tuned causal LM that writes the paraphrases (bundled, folder or hub id)."
    )
    endpoint_url: str | None = _opt(
        None,
        "Base URL of an OpenAI-compatible chat API (its /chat/completions is called); when set, used instead of "
        "the local model.",
        example="https://api.openai.com/v1",
    )
    endpoint_model: str = _opt("gpt-4o-mini", "Model name sent to the endpoint.")
    api_key_env: str = _opt("OPENAI_API_KEY", "Environment variable holding the endpoint's API key.")
    per_example: int = _opt(3, "Paraphrase candidates asked for per real utterance (before filtering).")
    temperature: float = _opt(0.9, "Sampling temperature.")
    top_p: float = _opt(0.95, "Nucleus sampling threshold.")
    max_new_tokens: int = _opt(40, "Longest paraphrase, in tokens.")
    max_chars: int = _opt(200, "Paraphrases longer than this many characters are dropped.")
    filter_confidence: float = _opt(
        0.9, "With a filter model: drop paraphrases it assigns to another intent with at least this probability."
    )
    seed: int = _opt(13, "Sampling seed.")


@dataclass
class ServeConfig:
    """The HTTP server (``intentune serve``). Every key can also be set from an ``INTENTUNE_<KEY>`` environment
    variable (``INTENTUNE_PORT=9000``), which overrides the config file; ``--set`` and the command's options win."""

    model_dir: str | None = _opt(
        None, "Model folder to serve when none is given (`intentune serve MODEL` passes its own).", example="runs/shop"
    )
    host: str = _opt("127.0.0.1", "Address to listen on; 0.0.0.0 accepts connections from other machines.")
    port: int = _opt(8000, "TCP port to listen on.")
    runtime: str = _opt(
        "auto",
        "Prediction runtime: torch, onnx, onnx-int8 (after `intentune export`), or auto: on the CPU the int8 or "
        "float32 ONNX export when the model folder has one, else torch.",
    )
    device: str = _opt("cpu", "cpu, or cuda (the torch runtime only).", ("cpu", "cuda"))
    api_key_env: str = _opt(
        "INTENTUNE_API_KEY",
        "Environment variable holding the API key; when it is set, /v1/ routes need `Authorization: Bearer KEY` "
        "or `X-API-Key: KEY`.",
    )
    max_texts_per_request: int = _opt(64, "Most texts one POST /v1/predict may carry (more: HTTP 422).")
    max_chars_per_text: int = _opt(1000, "Longest text, in characters (longer: HTTP 422).")
    max_body_bytes: int = _opt(1_048_576, "Largest request body, in bytes (larger: HTTP 413).")
    max_batch_size: int = _opt(
        64, "Most texts one model call predicts: concurrent requests are batched together up to this many."
    )
    batch_wait_ms: float = _opt(
        5.0, "How long the first request of a batch waits for others to join it, in milliseconds; 0 = no waiting."
    )
    log_predictions: str | None = _opt(
        None,
        "Prediction log: a file (in an existing folder) that gets one JSON line per answered text: time, model id, "
        "text, intent, confidence, top intents, runtime, latency. Unset = no log.",
        example="logs/predictions.jsonl",
    )
    log_texts: bool = _opt(
        True,
        "Keep each text in the prediction log; false keeps text_sha256 instead, a hash keyed with the salt in the "
        "log's .salt file, for teams that may not store user messages.",
    )
    log_max_bytes: int = _opt(
        100_000_000, "The prediction log is rotated (file -> file.1 -> ...) before it grows past this many bytes."
    )
    log_backups: int = _opt(5, "Rotated prediction-log files kept (file.1 ... file.N); older ones are deleted.")


@dataclass
class Config:
    """The whole config. ``Config()`` gives the defaults."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    generate: GenerateConfig = field(default_factory=GenerateConfig)
    oos: OOSConfig = field(default_factory=OOSConfig)
    serve: ServeConfig = field(default_factory=ServeConfig)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """The config as nested plain dicts (None values kept)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], *, source: str = "config") -> Config:
        """Build and validate a config from nested dicts; missing keys keep their defaults.

        Raises:
            ConfigError: on an unknown section or key, or a value of the wrong type.
        """
        config = cls()
        for section_name, values in raw.items():
            section = _section(config, section_name, source)
            if not isinstance(values, dict):
                raise ConfigError(f"{source}: [{section_name}] must be a table of keys, found {values!r}")
            for key, value in values.items():
                _set_field(section, section_name, key, value, source)
        config.validate()
        return config

    def override(self, assignments: Sequence[str], *, validate: bool = True) -> Config:
        """Apply ``section.key=value`` strings (values parsed as TOML, else taken as text) in place; with
        ``validate=False`` each value is checked alone and the whole is left for :meth:`validate` (a value may be
        valid only together with one set later).

        Raises:
            ConfigError: on a malformed assignment, an unknown key or a bad value.
        """
        _apply_overrides(self, assignments)
        if validate:
            self.validate()
        return self

    def update(self, values: Mapping[str, Any], *, source: str = "option", validate: bool = True) -> Config:
        """Set ``section.key`` paths to values (type-checked like ``--set``) in place; None values are skipped.

        This is how a command's own options (``--test 0.2`` -> ``data.test_fraction``) enter the config.

        Raises:
            ConfigError: naming ``source`` and the key, on an unknown key or a bad value.
        """
        _apply_values(self, values, source)
        if validate:
            self.validate()
        return self

    def override_env(self, environ: Mapping[str, str] | None = None) -> Config:
        """Apply deployment overrides of the ``[serve]`` keys from ``INTENTUNE_<KEY>`` environment variables
        (``INTENTUNE_PORT=9000``, ``INTENTUNE_MAX_TEXTS_PER_REQUEST=16``), in place.

        Args:
            environ: the variables to read; default ``os.environ``.

        Raises:
            ConfigError: naming the variable, on a bad value.
        """
        environ = os.environ if environ is None else environ
        hints = typing.get_type_hints(ServeConfig)
        for f in dataclasses.fields(self.serve):
            name = f"{ENV_PREFIX}{f.name.upper()}"
            if name in environ:
                text = environ[name].strip()
                # Text keys take the value as it is (a host or a path is not TOML).
                value = text if str in typing.get_args(hints[f.name]) or hints[f.name] is str else _parse_value(text)
                _set_field(self.serve, "serve", f.name, value, f"environment variable {name}")
        self.validate()
        return self

    def validate(self) -> None:
        """Check value ranges that types alone do not catch.

        Raises:
            ConfigError: naming the key and the allowed range.
        """
        checks = [
            ("data.validation_fraction", 0.0 < self.data.validation_fraction < 0.5, "between 0 and 0.5"),
            ("data.test_fraction", 0.0 <= self.data.test_fraction < 0.5, "between 0 and 0.5"),
            ("model.max_length", self.model.max_length >= 2, "at least 2"),
            ("model.dropout", 0.0 <= self.model.dropout < 1.0, "in [0, 1)"),
            ("model.num_layers", (self.model.num_layers or 1) >= 1, "at least 1"),
            ("train.epochs", self.train.epochs >= 1, "at least 1"),
            ("train.batch_size", self.train.batch_size >= 1, "at least 1"),
            ("train.eval_batch_size", self.train.eval_batch_size >= 1, "at least 1"),
            ("train.warmup_ratio", 0.0 <= self.train.warmup_ratio < 1.0, "in [0, 1)"),
            ("train.head_learning_rate", self.train.head_learning_rate > 0, "positive"),
            ("train.layer_lr_decay", 0.0 < self.train.layer_lr_decay <= 1.0, "in (0, 1]"),
            ("train.learning_rate", (self.train.learning_rate or 1.0) > 0, "positive"),
            ("train.early_stopping_patience", self.train.early_stopping_patience >= 0, "0 or more"),
            ("train.eval_every_steps", (self.train.eval_every_steps or 1) >= 1, "at least 1"),
            ("train.max_steps", (self.train.max_steps or 1) >= 1, "at least 1"),
            ("train.gradient_accumulation_steps", self.train.gradient_accumulation_steps >= 1, "at least 1"),
            ("train.momentum", 0.0 <= self.train.momentum < 1.0, "in [0, 1)"),
            ("train.label_smoothing", 0.0 <= self.train.label_smoothing < 1.0, "in [0, 1)"),
            ("train.ema_epochs", self.train.ema_epochs >= 0, "0 (off) or more"),
            ("train.freeze_layers", self.train.freeze_layers >= 0, "0 or more"),
            ("train.lora_rank", self.train.lora_rank >= 0, "0 or more"),
            ("train.lora_alpha", self.train.lora_alpha > 0, "positive"),
            ("train.lora_dropout", 0.0 <= self.train.lora_dropout < 1.0, "in [0, 1)"),
            ("train.checkpoint_every_steps", (self.train.checkpoint_every_steps or 0) >= 0, "0 or more"),
            ("train.few_shot_max_per_intent", self.train.few_shot_max_per_intent >= 1, "at least 1"),
            ("train.few_shot_epochs", self.train.few_shot_epochs >= 0, "0 or more"),
            ("train.few_shot_learning_rate", (self.train.few_shot_learning_rate or 1.0) > 0, "positive"),
            ("train.few_shot_temperature", self.train.few_shot_temperature > 0, "positive"),
            ("train.few_shot_batch_intents", self.train.few_shot_batch_intents >= 2, "at least 2"),
            ("train.few_shot_examples_per_intent", self.train.few_shot_examples_per_intent >= 2, "at least 2"),
            ("train.replay_per_intent", self.train.replay_per_intent >= 0, "0 or more"),
            ("train.distill_temperature", self.train.distill_temperature > 0, "positive"),
            ("train.distill_alpha", 0.0 <= self.train.distill_alpha <= 1.0, "between 0 and 1"),
            ("oos.label", bool(self.oos.label.strip()), "a non-empty intent name"),
            ("oos.threshold", 0.0 <= (self.oos.threshold or 0.0) <= 1.0, "between 0 and 1"),
            ("oos.max_accuracy_drop", 0.0 <= self.oos.max_accuracy_drop < 1.0, "in [0, 1)"),
            ("oos.budget_confidence", 0.0 <= self.oos.budget_confidence < 1.0, "in [0, 1)"),
            ("oos.multi_label_floor", 0.0 < self.oos.multi_label_floor < 1.0, "in (0, 1)"),
            ("serve.port", 0 <= self.serve.port <= 65535, "between 0 and 65535"),
            ("serve.max_texts_per_request", self.serve.max_texts_per_request >= 1, "at least 1"),
            ("serve.max_chars_per_text", self.serve.max_chars_per_text >= 1, "at least 1"),
            ("serve.max_body_bytes", self.serve.max_body_bytes >= 1024, "at least 1024"),
            ("serve.max_batch_size", self.serve.max_batch_size >= 1, "at least 1"),
            ("serve.batch_wait_ms", 0.0 <= self.serve.batch_wait_ms <= 1000.0, "between 0 and 1000"),
            ("serve.log_max_bytes", self.serve.log_max_bytes >= 1024, "at least 1024"),
            ("serve.log_backups", self.serve.log_backups >= 1, "at least 1"),
        ]
        for name, ok, allowed in checks:
            if not ok:
                raise ConfigError(f"{name} must be {allowed}")
        weight = self.train.class_weight
        if isinstance(weight, str) and weight not in ("none", "balanced"):
            raise ConfigError(
                f"train.class_weight must be none, balanced or a table of weights such as {{ refund = 2.0 }}, "
                f"found {weight!r}"
            )
        if isinstance(weight, dict) and any(not (w > 0) for w in weight.values()):
            raise ConfigError("train.class_weight: every explicit weight must be positive")
        if isinstance(self.model.multi_label, str) and self.model.multi_label != "auto":
            raise ConfigError(f"model.multi_label must be auto, true or false, found {self.model.multi_label!r}")
        if self.data.multi_label_separator.strip() != self.data.multi_label_separator:
            raise ConfigError("data.multi_label_separator must not start or end with spaces")
        if self.model.prompt_template.count("{text}") != 1:
            raise ConfigError(
                "model.prompt_template must contain {text} exactly once (where the message goes), found "
                f"{self.model.prompt_template!r}"
            )
        if self.train.lora_rank and self.train.freeze_layers:
            raise ConfigError("train.lora_rank and train.freeze_layers exclude each other (LoRA freezes the backbone)")
        if self.data.validation_fraction + self.data.test_fraction > 0.4:
            raise ConfigError(
                "data.validation_fraction + data.test_fraction must leave at least 60% for training "
                f"(found {self.data.validation_fraction} + {self.data.test_fraction})"
            )


def _apply_overrides(config: Config, assignments: Sequence[str]) -> None:
    """Set ``section.key=value`` strings, each checked alone (the caller validates the whole config)."""
    for assignment in assignments:
        path, sep, text = assignment.partition("=")
        section_name, dot, key = path.strip().partition(".")
        if not sep or not dot or not key:
            raise ConfigError(f"--set {assignment!r}: expected section.key=value, for example train.learning_rate=3e-5")
        _set_field(_section(config, section_name, "--set"), section_name, key, _parse_value(text.strip()), "--set")


def _apply_values(config: Config, values: Mapping[str, Any], source: str) -> None:
    """Set ``section.key`` -> value pairs, skipping None, each checked alone (the caller validates the whole)."""
    for path, value in values.items():
        if value is not None:
            section_name, _, key = path.partition(".")
            value = os.fspath(value) if isinstance(value, os.PathLike) else value
            _set_field(_section(config, section_name, source), section_name, key, value, source)


def _section(config: Config, name: str, source: str) -> Any:
    names = [f.name for f in dataclasses.fields(config)]
    if name not in names:
        raise ConfigError(f"{source}: unknown config section {name!r}; sections are {', '.join(names)}")
    return getattr(config, name)


def _set_field(section: Any, section_name: str, key: str, value: Any, source: str) -> None:
    fields = {f.name: f for f in dataclasses.fields(section)}
    if key not in fields:
        raise ConfigError(
            f"{source}: unknown key {section_name}.{key}; keys of [{section_name}] are {', '.join(fields)}"
        )
    hint = typing.get_type_hints(type(section))[key]
    checked = _coerce(value, hint, f"{section_name}.{key}", source)
    choices = fields[key].metadata.get("choices")
    if choices and checked not in choices:
        raise ConfigError(f"{source}: {section_name}.{key} must be one of {', '.join(choices)}, found {checked!r}")
    setattr(section, key, checked)


def _coerce(value: Any, hint: Any, name: str, source: str) -> Any:
    """Check ``value`` against a field's type hint; ints are accepted for floats."""
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    if value is None or (isinstance(value, str) and value.lower() in ("none", "null") and type(None) in options):
        if type(None) in options:
            return None
        raise ConfigError(f"{source}: {name} cannot be unset")
    for option in options:
        if option is bool and isinstance(value, bool):
            return value
        if option is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if option is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if option is str and isinstance(value, str):
            return value
        if typing.get_origin(option) is Literal and value in typing.get_args(option):
            return value
        numbers = isinstance(value, dict) and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in value.values()
        )
        if typing.get_origin(option) is dict and numbers:
            return {str(k): float(v) for k, v in value.items()}
        if typing.get_origin(option) is list and isinstance(value, list) and all(isinstance(v, str) for v in value):
            return list(value)
    names = {dict: "a table of numbers", list: "a list of strings"}
    expected = " or ".join(
        names.get(typing.get_origin(o), getattr(o, "__name__", str(o))) for o in options if o is not type(None)
    )
    raise ConfigError(f"{source}: {name} must be {expected}, found {value!r}")


def _parse_value(text: str) -> Any:
    """Parse an override value as TOML (numbers, booleans, quoted strings, lists), else keep the text."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text
