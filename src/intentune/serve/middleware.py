"""ASGI middleware of the HTTP service: the access log and the request body limit."""

from __future__ import annotations

import json
import logging
import time

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import error_response

access_logger = logging.getLogger("intentune.access")


class RequestGuard:
    """Writes one JSON access-log line per request and answers 413 to bodies over ``max_body_bytes``.

    The line has ``method``, ``path``, ``status``, ``duration_ms`` and ``texts`` (the number of texts, which
    the predict route stores in ``request.state.texts``); never the texts or the query string. Pure ASGI rather
    than ``BaseHTTPMiddleware``, so responses pass through untouched.
    """

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), 500  # 500 unless a response starts: an exception escaped
        state = scope.setdefault("state", {})

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            replay = await self._read_body(scope, receive)
            if replay is None:
                message = f"the request body is over {self.max_body_bytes} bytes (serve.max_body_bytes)"
                await error_response(413, "body_too_large", message)(scope, receive, send_and_note)
            else:
                await self.app(scope, replay, send_and_note)
        finally:
            line = {
                "method": scope["method"],
                "path": scope["path"],
                "status": status,
                "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                "texts": state.get("texts", 0),
            }
            access_logger.info(json.dumps(line))

    async def _read_body(self, scope: Scope, receive: Receive) -> Receive | None:
        """Read the whole body (bounded); return a ``receive`` that replays it, or None when it is too large."""
        length = Headers(scope=scope).get("content-length", "")
        if length.isdigit() and int(length) > self.max_body_bytes:
            return None
        chunks: list[bytes] = []
        size, more = 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return _replay([message], receive)
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_body_bytes:
                return None
            more = message.get("more_body", False)
        return _replay([{"type": "http.request", "body": b"".join(chunks), "more_body": False}], receive)


def _replay(messages: list[Message], receive: Receive) -> Receive:
    async def replayed() -> Message:
        return messages.pop(0) if messages else await receive()

    return replayed
