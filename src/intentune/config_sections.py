"""The config's sections (``data`` / ``model`` / ``train`` / ``generate`` / ``oos`` / ``serve``): one dataclass each,
every key a typed field with its default and help text.

The help text and choices live in each field's metadata: ``config init`` writes them as comments, and setting a
value (:mod:`intentune.config`) checks it against the field's type and choices.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


def option(default: Any, help: str, choices: tuple[str, ...] | None = None, example: Any = None) -> Any:
    """A dataclass field with its documentation (written as a comment by ``config init``).

    ``example`` is shown, commented out, for keys that are unset by default.
    """
    return field(default=default, metadata={"help": help, "choices": choices, "example": example})


@dataclass
class DataConfig:
    """Where the data is and how its text is preprocessed."""

    train_file: str | None = option(
        None, "Training data: CSV or JSONL with a text and an intent field.", example="data/train.csv"
    )
    validation_file: str | None = option(
        None,
        "Validation data for early stopping; if unset, validation_fraction of train_file is split off.",
        example="data/validation.csv",
    )
    test_file: str | None = option(None, "Test data, evaluated once after training; optional.", example="data/test.csv")
    text_field: str = option("text", "Name of the column or JSON field holding the utterance.")
    label_field: str = option("intent", "Name of the column or JSON field holding the intent label.")
    validation_fraction: float = option(
        0.1, "Share of the training data split off (stratified) as validation when no validation_file is given."
    )
    test_fraction: float = option(0.1, "Share of the data put into the test split by `intentune data split`.")
    split_seed: int = option(13, "Seed of every stratified split, so splits are reproducible.")
    lowercase: bool = option(False, "Lower-case every text before tokenizing (uncased encoders do this anyway).")
    remove_special_chars: bool = option(
        False, "Replace characters other than letters, digits, spaces and apostrophes with spaces."
    )
    multi_label_separator: str = option(
        "+",
        "Joins the intents of a message with more than one (cancel_order+refund); empty = every label is one "
        "intent, separator or not.",
    )


@dataclass
class ModelConfig:
    """The pretrained backbone and the classification head on top of it."""

    backbone: str = option(
        "smollm2-135m",
        "Bundled name (smollm2-135m: GPT-style decoder; minilm-l6: small encoder; mpnet-base: larger encoder), a "
        "local Hugging Face folder, or a hub id.",
    )
    kind: str = option(
        "auto", "Backbone kind; auto detects it from the backbone's config.", ("auto", "decoder", "encoder")
    )
    pooling: str = option(
        "auto",
        "How token states become one vector: auto = prompt for decoders, mean for encoders; prompt = each text "
        "wrapped in prompt_template and the last token pooled (decoders only); last = the last real token of the "
        "plain text.",
        ("auto", "last", "mean", "cls", "prompt"),
    )
    prompt_template: str = option(
        'This message: "{text}". Its intent in one word:',
        "The instruction each text is wrapped in when pooling = prompt; {text} (exactly once) marks the text, "
        "which truncation shortens while the template stays whole.",
    )
    max_length: int = option(64, "Texts are truncated to this many tokens.")
    dropout: float = option(0.1, "Dropout on the pooled vector before the dense classification layer.")
    num_layers: int | None = option(
        None,
        "Keep only the lower N transformer layers of the backbone (faster training and prediction, usually at "
        "some accuracy); unset = all of them.",
        example=12,
    )
    multi_label: bool | str = option(
        "auto",
        "true = a sigmoid per intent and binary cross-entropy, so one message can have several intents (each "
        "answered above its own threshold); false = softmax, one intent per message; auto = true when a training "
        "row has several intents (data.multi_label_separator).",
    )


@dataclass
class TrainConfig:
    """The fine-tuning loop: optimizer, schedule, early stopping."""

    seed: int = option(42, "Seed for weight initialisation, shuffling and dropout.")
    epochs: int = option(5, "Maximum passes over the training data (early stopping may end sooner).")
    batch_size: int = option(16, "Training examples per step.")
    group_by_length: bool = option(
        True, "Batch texts of similar token length together (shuffled), so batches need little padding."
    )
    eval_batch_size: int = option(64, "Examples per forward pass when evaluating and predicting.")
    learning_rate: float | None = option(
        None,
        "Learning rate of the pretrained backbone; unset = the backbone's default: 5e-5 for decoders and mpnet-base, "
        "1e-4 for other encoders.",
        example=3e-5,
    )
    head_learning_rate: float = option(
        2e-3, "Learning rate of the freshly initialised classification layer (it needs a larger one)."
    )
    layer_lr_decay: float = option(
        1.0,
        "Layer-wise learning-rate decay: the top transformer layer trains at the backbone's learning rate, each "
        "layer below at this factor times the rate of the one above, the embeddings below the lowest layer at one "
        "factor less again (0.9 over 6 layers: 0.53x for the embeddings); 1.0 = one rate for the whole backbone.",
        example=0.9,
    )
    weight_decay: float = option(0.01, "AdamW weight decay (not applied to biases and norms).")
    warmup_ratio: float = option(0.1, "Share of the steps over which the learning rate rises from 0.")
    schedule: str = option("linear", "Decay after warmup.", ("linear", "cosine", "constant"))
    max_steps: int | None = option(
        None,
        "Stop after this many optimizer steps (the schedule spans them); unset = as many as the epochs take.",
        example=1000,
    )
    gradient_accumulation_steps: int = option(
        1, "Add up the gradients of this many batches per optimizer step (effective batch = batch_size x this)."
    )
    optimizer: str = option(
        "adamw",
        "adamw (decoupled weight decay), adam, sgd (with momentum) or adafactor.",
        ("adamw", "adam", "sgd", "adafactor"),
    )
    momentum: float = option(0.9, "SGD momentum (optimizer = sgd only).")
    class_weight: str | dict[str, float] = option(
        "none",
        "Loss weight per intent: none, balanced (inversely proportional to the intent's training examples), or a "
        "table of explicit weights, for example { refund = 2.0 } (intents not named get 1.0).",
    )
    label_smoothing: float = option(
        0.0,
        "Label smoothing of the training loss: each target gives this share of its weight evenly to all intents, so "
        "the model is not pushed to ever more extreme logits; 0 = off, 0.1 is common. Validation loss stays plain "
        "cross-entropy.",
    )
    freeze_layers: int = option(
        0, "Freeze the embeddings and the lowest N transformer layers (faster steps, less overfitting); 0 = none."
    )
    freeze_embeddings: bool = option(
        False,
        "Freeze the token embedding matrix alone (every transformer layer still trains): its gradient and optimizer "
        "update cover the whole vocabulary each step, though a batch uses a few hundred tokens of it.",
    )
    lora_rank: int = option(
        0,
        "Train LoRA adapters (peft) of this rank instead of the whole backbone; 0 = off. Merged into the saved "
        "weights.",
    )
    lora_alpha: float = option(16.0, "LoRA scaling numerator (the update is scaled by lora_alpha / lora_rank).")
    lora_dropout: float = option(0.05, "Dropout on the LoRA adapters' input.")
    lora_target_modules: list[str] | None = option(
        None,
        "Module names that get adapters; unset = all attention and MLP projections of the backbone.",
        example=["q_proj", "v_proj"],
    )
    ema_epochs: float = option(
        0.5,
        "Average the weights over training: an exponential moving average whose time constant is this many epochs, "
        "or a ninth of the steps trained so far where that is shorter (early on; with 5 epochs and 0.5, for about "
        "the first 90% of training). Validation, early stopping and the saved model use the averaged weights; it "
        "costs one float32 copy of the trainable weights. 0 = off.",
    )
    precision: str = option(
        "fp32",
        "fp32, or bf16 autocast: bf16 = always, auto = where the hardware multiplies bf16 natively (CPUs with AMX, "
        "GPUs that support it). On the CPU it helps only with AMX; on GPUs it pays off for larger backbones, since "
        "each step casts every weight, which can cost small backbones more than it saves.",
        ("auto", "fp32", "bf16"),
    )
    checkpoint_every_steps: int | None = option(
        None,
        "Write a resumable checkpoint (weights, optimizer, schedule, random states) every N steps; unset = after "
        "every evaluation; 0 = never. `intentune train --resume` continues from it.",
        example=200,
    )
    keep_checkpoint: bool = option(False, "Keep the last checkpoint after training finishes (default: delete it).")
    max_grad_norm: float = option(1.0, "Gradient clipping norm; 0 disables clipping.")
    eval_every_steps: int | None = option(
        None, "Evaluate on validation every N steps; unset = once per epoch.", example=50
    )
    early_stopping_patience: int = option(
        2, "Stop after this many evaluations without a better validation score; 0 disables early stopping."
    )
    early_stopping_metric: str = option(
        "auto",
        "What 'better' means for early stopping and the best weights: lower val_loss (smooth, reliable on small "
        "validation sets), higher val_accuracy (ties broken by val_loss), or auto: val_accuracy when the validation "
        "data has at least 10 examples per intent, else val_loss (a run with --init-from: val_accuracy).",
        ("auto", "val_loss", "val_accuracy"),
    )
    device: str = option("auto", "auto, cpu or cuda.", ("auto", "cpu", "cuda"))
    calibrate: bool = option(
        True, "Fit temperature scaling on the validation data after training, so confidences match accuracy."
    )
    few_shot: str = option(
        "auto",
        "Few-shot mode: contrastive (SupCon) training of the backbone on same/different-intent examples, then a "
        "head started from the intent means, before the ordinary fine-tuning. auto = on when the median intent has "
        "at most few_shot_max_per_intent training examples.",
        ("auto", "on", "off"),
    )
    few_shot_max_per_intent: int = option(
        20, "few_shot = auto: the median examples per intent at or below which it is on."
    )
    few_shot_epochs: int = option(3, "Passes of contrastive training over the training data.")
    few_shot_learning_rate: float | None = option(
        None, "Learning rate of contrastive training; unset = 5e-5.", example=3e-5
    )
    few_shot_temperature: float = option(0.1, "Softmax temperature of the contrastive loss's cosine similarities.")
    few_shot_batch_intents: int = option(16, "Intents per contrastive batch.")
    few_shot_examples_per_intent: int = option(4, "Examples of each intent per contrastive batch (at least 2).")
    few_shot_prototype_init: bool = option(
        True, "Start the classification layer from the normalised mean embedding of each intent, not at random."
    )
    # 50 rows: with them an extension comes closer to a retrain on everything than with 20 (benchmarks/RESULTS.md,
    # adding intents) and still trains on well under half of a full data set's rows.
    replay_per_intent: int = option(
        50,
        "With `intentune train --init-from`: rows of each of the old model's intents, drawn from its training data, "
        "mixed into each epoch of the new training data so the old intents are not forgotten; 0 = no replay.",
    )
    # Taking turns: over four training seeds of one BANKING77 draw it ends closer to a retrain than one sample for the
    # whole run, at the same steps (benchmarks/RESULTS.md, adding intents).
    replay_resample: bool = option(
        True,
        "With replay: true = each epoch takes the next replay_per_intent rows of each old intent, in a seeded "
        "order, so the old rows take turns and over the epochs most of them are seen at the same number of steps; "
        "false = one sample for the whole run.",
    )
    replay_distill: float = option(
        0.5,
        "With `intentune train --init-from`: the share of the loss that keeps the old model's answers among its own "
        "intents (KL divergence from its calibrated probabilities over them, softened at distill_temperature, on "
        "every training row, the new intents' rows included); the rest is cross-entropy with the true intents. "
        "0 = cross-entropy alone.",
    )
    distill_temperature: float = option(
        2.0,
        "With `intentune distill` (and train.replay_distill): the temperature that softens the teacher's "
        "probabilities and the student's alike, so the student also learns which wrong intents the teacher finds "
        "close.",
    )
    distill_alpha: float = option(
        0.5,
        "With `intentune distill`: the teacher's share of the loss (KL divergence to its softened probabilities); "
        "the rest is cross-entropy with the true intents. Unlabelled texts learn from the teacher alone.",
    )


@dataclass
class OOSConfig:
    """Out-of-scope answers: an explicit out-of-scope intent and rejection thresholds fitted from data."""

    label: str = option(
        "oos",
        "The out-of-scope intent: rows with this label are out-of-scope examples (in training, an intent of its own; "
        "in validation, they show how well rejection works), and predict answers it when it rejects.",
    )
    reject: bool = option(
        True, "Answer the out-of-scope label when the calibrated confidence is below the fitted threshold."
    )
    threshold: float | None = option(
        None,
        "A fixed global rejection threshold; unset = fitted on the validation data (see max_accuracy_drop).",
        example=0.5,
    )
    max_accuracy_drop: float = option(
        0.01,
        "The accuracy budget: the fitted threshold is the highest whose rejections cost at most this share of "
        "in-scope accuracy on unseen data (0.01 = one point), with probability budget_confidence; higher "
        "thresholds catch more out-of-scope messages.",
    )
    budget_confidence: float = option(
        0.9,
        "How sure the fit must be that the threshold's cost on unseen data stays within max_accuracy_drop (a "
        "one-sided binomial bound from the number of validation rows); 0 = judged on the validation rows alone.",
    )
    per_intent: str = option(
        "auto",
        "Per-intent thresholds: on, off, or auto (used when validation out-of-scope rows held out of their fit show "
        "they catch more without costing more in-scope accuracy than the budget).",
        ("auto", "on", "off"),
    )
    score: str = option(
        "auto",
        "What the fitted threshold applies to: confidence (the calibrated probability), distance (how far the "
        "message's vector lies from the training examples of its nearest intent), or auto (distance when "
        "validation out-of-scope rows show it catches more within the same accuracy budget, else confidence).",
        ("auto", "confidence", "distance"),
    )
    outlier_exposure: str = option(
        "auto",
        "Stand-in out-of-scope rows: generic out-of-domain sentences shipped with intentune (not trained on) join "
        "the validation rows as out-of-scope examples when choosing the thresholds, less any matching a training "
        "or validation text: on, off, or auto (only when the validation data has no out-of-scope rows).",
        ("auto", "on", "off"),
    )
    multi_label_floor: float = option(
        0.25,
        "Multi-label models: the lowest threshold any intent may get. Each intent's threshold maximises its F1 on "
        "the validation rows (shrunk towards one global threshold when it has few of them); a message with no "
        "intent above its threshold is out of scope.",
    )


@dataclass
class GenerateConfig:
    """Paraphrase generation with a language model (``intentune data generate``)."""

    backbone: str = option(
        "smollm2-135m", "Instruction-tuned causal LM that writes the paraphrases (bundled, folder or hub id)."
    )
    endpoint_url: str | None = option(
        None,
        "Base URL of an OpenAI-compatible chat API (its /chat/completions is called); when set, used instead of "
        "the local model.",
        example="https://api.openai.com/v1",
    )
    endpoint_model: str = option("gpt-4o-mini", "Model name sent to the endpoint.")
    api_key_env: str = option("OPENAI_API_KEY", "Environment variable holding the endpoint's API key.")
    per_example: int = option(3, "Paraphrase candidates asked for per real utterance (before filtering).")
    temperature: float = option(0.9, "Sampling temperature.")
    top_p: float = option(0.95, "Nucleus sampling threshold.")
    max_new_tokens: int = option(40, "Longest paraphrase, in tokens.")
    max_chars: int = option(200, "Paraphrases longer than this many characters are dropped.")
    filter_confidence: float = option(
        0.9, "With a filter model: drop paraphrases it assigns to another intent with at least this probability."
    )
    seed: int = option(13, "Sampling seed.")


@dataclass
class ServeConfig:
    """The HTTP server (``intentune serve``). Every key can also be set from an ``INTENTUNE_<KEY>`` environment
    variable (``INTENTUNE_PORT=9000``), which overrides the config file; ``--set`` and the command's options win."""

    model_dir: str | None = option(
        None, "Model folder to serve when none is given (`intentune serve MODEL` passes its own).", example="runs/shop"
    )
    host: str = option("127.0.0.1", "Address to listen on; 0.0.0.0 accepts connections from other machines.")
    port: int = option(8000, "TCP port to listen on.")
    runtime: str = option(
        "auto",
        "Prediction runtime: torch, onnx, onnx-int8 (after `intentune export`), or auto: on the CPU the int8 or "
        "float32 ONNX export when the model folder has one, else torch.",
    )
    device: str = option("cpu", "cpu, or cuda (the torch runtime only).", ("cpu", "cuda"))
    api_key_env: str = option(
        "INTENTUNE_API_KEY",
        "Environment variable holding the API key; when it is set, /v1/ routes need `Authorization: Bearer KEY` "
        "or `X-API-Key: KEY`.",
    )
    max_texts_per_request: int = option(64, "Most texts one POST /v1/predict may carry (more: HTTP 422).")
    max_chars_per_text: int = option(1000, "Longest text, in characters (longer: HTTP 422).")
    max_body_bytes: int = option(1_048_576, "Largest request body, in bytes (larger: HTTP 413).")
    max_batch_size: int = option(
        64, "Most texts one model call predicts: concurrent requests are batched together up to this many."
    )
    batch_wait_ms: float = option(
        5.0, "How long the first request of a batch waits for others to join it, in milliseconds; 0 = no waiting."
    )
    log_predictions: str | None = option(
        None,
        "Prediction log: a file (in an existing folder) that gets one JSON line per answered text: time, model id, "
        "text, intent, confidence, top intents, runtime, latency. Unset = no log.",
        example="logs/predictions.jsonl",
    )
    log_texts: bool = option(
        True,
        "Keep each text in the prediction log; false keeps text_sha256 instead, a hash keyed with the salt in the "
        "log's .salt file, for teams that may not store user messages.",
    )
    log_max_bytes: int = option(
        100_000_000, "The prediction log is rotated (file -> file.1 -> ...) before it grows past this many bytes."
    )
    log_backups: int = option(5, "Rotated prediction-log files kept (file.1 ... file.N); older ones are deleted.")
