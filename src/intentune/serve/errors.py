"""The one JSON error shape of the HTTP service, and the handlers that turn every error into it.

``{"error": {"code": "validation_error", "message": "...", "details": [{"field", "message", "type"}]}}``
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from ..config import ServeConfig
from .batching import PredictionError
from .schemas import BLANK_TEXT, NOT_UNICODE, ErrorResponse

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": text}
    for status, text in [
        (400, "The body is not valid JSON."),
        (401, "Missing or wrong API key."),
        (413, "The body is too large."),
        (415, "The body is not JSON."),
        (422, "The request breaks a limit or the schema."),
        (500, "The model failed."),
    ]
}  # for the OpenAPI schema


EXAMPLE = '{"texts": ["where is my order?"], "top_k": 3}'


class ApiError(Exception):
    """An error answered with the JSON error shape (status, code, message)."""

    def __init__(self, status: int, code: str, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers


def error_response(
    status: int, code: str, message: str, details: list[dict[str, Any]] | None = None, **kwargs: Any
) -> JSONResponse:
    """A response in the one JSON error shape."""
    body = {"error": {"code": code, "message": message, "details": details or []}}
    return JSONResponse(body, status_code=status, **kwargs)


def validation_item(error: dict[str, Any], settings: ServeConfig) -> dict[str, Any]:
    """One pydantic error as ``{field, message, type}``; the limits' messages say the limit and its setting."""
    loc = [str(part) for part in error.get("loc", ()) if part != "body"]
    field = ".".join(loc) or "body"
    kind, ctx = error.get("type", ""), error.get("ctx") or {}
    message = error.get("msg", "invalid value").removeprefix("Value error, ")
    if field == "texts" and kind == "too_long":
        message = (
            f"{ctx.get('actual_length', 'too many')} texts in one request; the limit is "
            f"{settings.max_texts_per_request} (serve.max_texts_per_request): send them in several requests"
        )
    elif field == "texts" and kind == "too_short":
        message = "the list is empty; send at least one text"
    elif len(loc) == 2 and loc[0] == "texts" and kind == "string_too_long":
        found = len(error["input"]) if isinstance(error.get("input"), str) else "too many"
        limit = settings.max_chars_per_text
        message = f"{found} characters; the limit is {limit} (serve.max_chars_per_text)"
    elif len(loc) == 2 and loc[0] == "texts" and kind in ("string_too_short", "string_pattern_mismatch"):
        message = BLANK_TEXT  # rather than pydantic's message, which quotes the regex
    elif len(loc) == 2 and loc[0] == "texts" and kind == "string_unicode":
        message = NOT_UNICODE
    elif field == "body" and kind in ("missing", "model_attributes_type", "dict_type"):
        message = (
            f"expected a JSON object such as {EXAMPLE}, found {'nothing' if kind == 'missing' else 'another value'}"
        )
    elif kind == "missing":
        message = "required"
    elif kind == "extra_forbidden":
        message = "unknown field; the fields are texts and top_k"
    return {"field": field, "message": message, "type": kind}


def install_error_handlers(app: FastAPI, settings: ServeConfig) -> None:
    """Make every error of ``app`` answer in the one JSON shape."""

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = list(exc.errors())
        bad_json = next((e for e in errors if e.get("type") == "json_invalid"), None)
        if bad_json is not None:
            reason = (bad_json.get("ctx") or {}).get("error", "cannot parse it")
            position = bad_json["loc"][-1] if isinstance(bad_json.get("loc", [None])[-1], int) else None
            where = f" at character {position}" if position is not None else ""
            return error_response(400, "invalid_json", f"the request body is not valid JSON: {reason}{where}")
        details = [validation_item(e, settings) for e in errors]
        message = "; ".join(f"{d['field']}: {d['message']}" for d in details[:3])
        if len(details) > 3:
            message += f"; and {len(details) - 3} more (see details)"
        return error_response(422, "validation_error", message, details)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        if exc.status_code == 404:
            message = f"no route {request.method} {request.url.path}; see /docs or /openapi.json"
            return error_response(404, "not_found", message)
        if exc.status_code == 405:
            allowed = (exc.headers or {}).get("Allow", "")
            message = f"{request.method} is not allowed on {request.url.path}; use {allowed}"
            return error_response(405, "method_not_allowed", message, headers=exc.headers)
        code = HTTPStatus(exc.status_code).phrase.lower().replace(" ", "_").replace("-", "_")
        return error_response(exc.status_code, code, str(exc.detail), headers=exc.headers)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, headers=exc.headers)

    @app.exception_handler(PredictionError)
    async def prediction_failed(request: Request, exc: PredictionError) -> JSONResponse:
        return error_response(500, "prediction_failed", f"{exc}; the server log has the details")

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        # Starlette re-raises the exception after this response, so the server logs its traceback.
        return error_response(500, "internal_error", "internal server error; the server log has the details")
