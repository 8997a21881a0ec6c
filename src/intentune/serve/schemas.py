"""Request and response schemas of the HTTP service (they make its OpenAPI schema)."""

# No ``from __future__ import annotations``: FastAPI and pydantic read these annotations at runtime, and the
# request schema is a class built per app, inside a function.

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from ..config import ServeConfig


class IntentScore(BaseModel):
    intent: str
    confidence: float = Field(description="Calibrated probability, rounded to 4 decimals.")


class Prediction(BaseModel):
    text: str
    intent: str = Field(description="The best intent, or the out-of-scope label when the model rejects the text.")
    confidence: float = Field(description="Calibrated probability of the best intent.")
    is_out_of_scope: bool
    intents: list[IntentScore] = Field(
        default_factory=list,
        description="Every intent the message carries, most probable first: a multi-label model answers each "
        "intent above its own threshold (several for 'cancel my order and refund me'); a single-label model, the "
        "one intent answered. Empty when the text is out of scope.",
    )
    top: list[IntentScore] = Field(description="The top_k best intents, best first (rejected or not).")


class PredictResponse(BaseModel):
    predictions: list[Prediction] = Field(description="One per text, in request order.")


class ModelInfo(BaseModel):
    """What :meth:`~intentune.model.IntentClassifier.describe` returns; other runtimes may add keys."""

    model_config = ConfigDict(extra="allow")
    labels: list[str]
    backbone: str | None = None
    runtime: str | None = None
    training: dict[str, Any] = Field(default_factory=dict, description="Steps, epochs, time, best validation.")
    intentune_version: str | None = None


class PredictionLogStats(BaseModel):
    written: int = Field(description="Lines written to the prediction log since the server started.")
    dropped: int = Field(description="Lines lost: the log's queue was full (a slow disk) or a write failed.")


class Health(BaseModel):
    status: str = "ok"
    intents: int
    prediction_log: PredictionLogStats | None = Field(None, description="Only when serve.log_predictions is set.")


class ErrorItem(BaseModel):
    field: str | None = Field(None, description="Where in the request, e.g. texts.3.")
    message: str
    type: str | None = None


class ErrorInfo(BaseModel):
    code: str = Field(description="Stable, machine-readable: validation_error, unauthorized, not_found, ...")
    message: str
    details: list[ErrorItem] = Field(default_factory=list)


class ErrorResponse(BaseModel):
    """The one shape of every error the server answers."""

    error: ErrorInfo


# A text must hold at least one character that is neither white space (``str.isspace``) nor a control character
# (Unicode category Cc): a blank text gives the model nothing to classify. The class lists those characters as
# ``\uXXXX`` escapes, which mean the same in pydantic's Rust regex, Python's ``re`` and the ECMA-262 regexes that
# JSON Schema's ``pattern`` uses, so a client generated from the OpenAPI schema refuses exactly what the server does.
TEXT_PATTERN = r"[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028-\u2029\u202f\u205f\u3000]"
BLANK_TEXT = "text is empty or only white space or control characters"
# Pydantic refuses lone UTF-16 surrogates (valid in JSON, but not text a tokenizer can take) when it matches the
# pattern, as ``string_unicode``.
NOT_UNICODE = "text is not valid Unicode (it holds a lone surrogate)"


def request_schema(settings: ServeConfig) -> type[BaseModel]:
    """The POST /v1/predict body, with this app's limits (so they show in the OpenAPI schema too)."""
    text = Annotated[
        str,
        StringConstraints(min_length=1, max_length=settings.max_chars_per_text, pattern=TEXT_PATTERN),
        Field(description="An utterance: at least one character that is not white space or a control character."),
    ]

    class PredictRequest(BaseModel):
        model_config = ConfigDict(
            extra="forbid", json_schema_extra={"examples": [{"texts": ["where is my parcel??"], "top_k": 3}]}
        )
        texts: list[text] = Field(  # type: ignore[valid-type]
            min_length=1, max_length=settings.max_texts_per_request, description="The utterances to classify."
        )
        top_k: int = Field(1, ge=1, description="How many best intents to list per text (at most all of them).")

    return PredictRequest
