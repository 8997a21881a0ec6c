"""The app factory, its routes and ``serve`` (load a model, then run uvicorn)."""

# No ``from __future__ import annotations``: FastAPI reads the route signatures' annotations at runtime.

import asyncio
import errno
import hmac
import logging
import os
import socket
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager, suppress
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from .. import __version__
from ..config import Config, ServeConfig
from ..errors import ConfigError
from .batching import MicroBatcher
from .docs import add_docs_routes
from .errors import ERROR_RESPONSES, ApiError, install_error_handlers
from .middleware import RequestGuard
from .predlog import open_prediction_log
from .schemas import Health, ModelInfo, PredictResponse, request_schema

logger = logging.getLogger(__name__)
NO_MODEL = "no model to serve: pass a model folder, or set serve.model_dir or INTENTUNE_MODEL_DIR"


def create_app(
    model_dir: str | Path | None = None, *, classifier: Any | None = None, settings: ServeConfig | None = None
) -> FastAPI:
    """Build the HTTP service for one model.

    Args:
        model_dir: a model folder (or the run folder holding it), loaded with
            :func:`intentune.inference.load_predictor` when the app starts (in its lifespan), not here.
            Default: ``settings.model_dir``.
        classifier: an already loaded predictor (``classes_``, ``predict_details``, ``describe``) to serve instead;
            a ``model_dir`` given with it only names it (the model id of the prediction log).
        settings: the ``[serve]`` settings; default: the defaults with ``INTENTUNE_*`` environment overrides.
            The API key is read from the variable ``settings.api_key_env`` names, here.

    Returns:
        The app, for any ASGI server: ``INTENTUNE_MODEL_DIR=runs/shop uvicorn --factory
        intentune.serve:create_app``.

    Raises:
        ConfigError: if neither a model folder nor a classifier is given. When the app starts, before the model
            loads, a prediction log (``serve.log_predictions``) that cannot be written raises ConfigError; then a
            folder that does not load raises :class:`~intentune.errors.ModelError`.

    Example:
        >>> from fastapi.testclient import TestClient
        >>> with TestClient(create_app("runs/shop")) as client:
        ...     client.post("/v1/predict", json={"texts": ["hi there"]}).json()["predictions"][0]["intent"]
        'greeting'
    """
    settings = settings or Config().override_env().serve
    if classifier is None:
        model_dir = model_dir or settings.model_dir
    if classifier is None and not model_dir:
        raise ConfigError(NO_MODEL)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        prediction_log = open_prediction_log(settings)  # a bad path fails before the model loads
        try:
            predictor = classifier if classifier is not None else load_serving_predictor(model_dir, settings)
            if prediction_log is not None:
                prediction_log.start_serving(predictor, model_dir)
            batcher = MicroBatcher(
                lambda texts, top_k: predictor.predict_details(texts, top_k=top_k),
                max_batch_size=settings.max_batch_size,
                wait_ms=settings.batch_wait_ms,
            )
            app.state.predictor, app.state.batcher = predictor, batcher
            app.state.prediction_log = prediction_log
            try:
                yield
            finally:
                await batcher.close()
        finally:
            if prediction_log is not None:
                await asyncio.to_thread(prediction_log.close)  # writes the lines still queued

    app = FastAPI(
        title="intentune",
        version=__version__,
        summary="Intent classification for chatbots: send texts, get each one's intent and confidence.",
        lifespan=lifespan,
        docs_url=None,  # FastAPI's docs pages load their scripts from a CDN; add_docs_routes serves them from here
        redoc_url=None,
    )
    app.add_middleware(RequestGuard, max_body_bytes=settings.max_body_bytes)
    install_error_handlers(app, settings)
    _add_routes(app, settings)
    add_docs_routes(app)
    return app


def _add_routes(app: FastAPI, settings: ServeConfig) -> None:
    key = os.environ.get(settings.api_key_env, "")
    # Only a server with a key declares it, so the OpenAPI schema says whether clients need one.
    authorized = [Depends(api_key_check(key))] if key else []
    predict_request = request_schema(settings)

    @app.post(
        "/v1/predict",
        response_model=PredictResponse,
        responses=ERROR_RESPONSES,
        dependencies=[*authorized, Depends(_require_json)],
        summary="Intent of each text",
    )
    async def predict(body: predict_request, request: Request) -> dict[str, Any]:  # type: ignore[valid-type]
        """For each text: the intent (the out-of-scope label when rejected), its confidence, whether it is out of
        scope, and the ``top_k`` best intents with their probabilities."""
        request.state.texts = len(body.texts)
        top_k = min(body.top_k, len(request.app.state.predictor.classes_))
        started = time.perf_counter()
        results = await request.app.state.batcher.predict(body.texts, top_k)
        prediction_log = request.app.state.prediction_log
        if prediction_log is not None:
            latency_ms, request_id = (time.perf_counter() - started) * 1000, request.headers.get("x-request-id")
            prediction_log.add(body.texts, results, latency_ms=latency_ms, request_id=request_id)
        return {"predictions": [{"text": text, **result} for text, result in zip(body.texts, results)]}

    @app.get("/v1/model", response_model=ModelInfo, responses={401: ERROR_RESPONSES[401]}, dependencies=authorized)
    async def model_info(request: Request) -> dict[str, Any]:
        """The served model: labels, backbone, runtime, training summary, intentune version."""
        return request.app.state.predictor.describe()

    @app.get("/health", response_model=Health, response_model_exclude_none=True)
    async def health(request: Request) -> dict[str, Any]:
        """Answers once the model is loaded, with the number of intents and, when the prediction log is on, its
        written and dropped line counts."""
        prediction_log = request.app.state.prediction_log
        stats = prediction_log.stats() if prediction_log is not None else None
        return {"status": "ok", "intents": len(request.app.state.predictor.classes_), "prediction_log": stats}

    page = resources.files("intentune").joinpath("static/chat.html").read_text(encoding="utf-8")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def chat() -> str:
        return page


def api_key_check(key: str) -> Callable[..., Coroutine[Any, Any, None]]:
    """A dependency that lets a request through when it sends ``key`` as ``Authorization: Bearer KEY`` or
    ``X-API-Key: KEY``, and answers 401 otherwise: no key, or any wrong one (another Authorization scheme
    included), since a wrong key is never outvoted by a right one."""
    bearer = HTTPBearer(auto_error=False, description="The API key of the server.")
    header = APIKeyHeader(name="X-API-Key", auto_error=False, description="The API key, in this header instead.")

    async def check(
        request: Request,
        _bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],  # declares it in the schema
        x_api_key: Annotated[str | None, Depends(header)],
    ) -> None:
        given = [x_api_key] if x_api_key else []
        authorization = request.headers.get("authorization")
        if authorization is not None:
            scheme, _, token = authorization.strip().partition(" ")
            given.append(token.strip() if scheme.lower() == "bearer" else "")
        # Constant-time comparison, so response times do not tell how much of a guess was right.
        if not given or not all([hmac.compare_digest(value.encode(), key.encode()) for value in given]):
            problem = "wrong API key" if given else "no API key"
            raise ApiError(
                401,
                "unauthorized",
                f"{problem}: send the key as 'Authorization: Bearer KEY' or 'X-API-Key: KEY'",
                headers={"WWW-Authenticate": "Bearer"},
            )

    return check


async def _require_json(request: Request) -> None:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        found = media_type or "no Content-Type header"
        raise ApiError(415, "unsupported_media_type", f"expected Content-Type: application/json, found {found}")


def load_serving_predictor(model_dir: str | Path, settings: ServeConfig) -> Any:
    """Load a model folder with the runtime and device of ``settings``.

    Raises:
        ModelError: if the folder is not a loadable intentune model.
        ConfigError: for an unknown runtime.
    """
    from ..inference import load_predictor

    return load_predictor(model_dir, runtime=settings.runtime, device=settings.device)


def serve(model_dir: str | Path | None = None, settings: ServeConfig | None = None) -> None:
    """Load the model, then serve it with uvicorn until interrupted (``intentune serve``).

    The port is taken first and the model loads before the server starts, so a busy port or a bad folder fails at
    once with a clear error rather than a server that announces itself and then exits. Uvicorn is handed that
    socket, so no other process can take the port between the check and the start.

    Raises:
        ConfigError: if no model folder is given, the server cannot listen on ``settings.host:settings.port``
            (the port is in use, below 1024 without root, or the host is not an address of this machine), or the
            prediction log (``serve.log_predictions``) cannot be written.
        ModelError: if the folder is not a loadable intentune model.
    """
    import uvicorn

    settings = settings or Config().override_env().serve
    model_dir = model_dir or settings.model_dir
    if not model_dir:
        raise ConfigError(NO_MODEL)
    with listen_on(settings.host, settings.port) as sock:
        check = open_prediction_log(settings)  # a log that cannot be written fails before the model loads
        if check is not None:
            check.close()
        predictor = load_serving_predictor(model_dir, settings)
        app = create_app(model_dir, classifier=predictor, settings=settings)
        port = sock.getsockname()[1]  # the one the system chose, for port 0
        key = (
            "required" if os.environ.get(settings.api_key_env) else f"off (set ${settings.api_key_env} to require one)"
        )
        logger.info(
            "serving %s (%d intents) on http://%s:%d: chat demo at /, API docs at /docs; API key %s",
            model_dir, len(predictor.classes_), settings.host, port, key,
        )  # fmt: skip
        # The access log of RequestGuard replaces uvicorn's (which would log query strings).
        config = uvicorn.Config(app, host=settings.host, port=port, access_log=False, lifespan="on")
        # Uvicorn re-raises Ctrl-C after its graceful shutdown; Ctrl-C is how serving ends, not an error.
        with suppress(KeyboardInterrupt):
            uvicorn.Server(config).run(sockets=[sock])


def listen_on(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` and listening, for uvicorn to serve on.

    It listens at once, so a second server started on the same port fails here too, even while this one is still
    loading its model; connections that arrive meanwhile wait and are answered once the server runs.

    Raises:
        ConfigError: if the port is in use, needs root, or ``host`` is not an address of this machine; the message
            says which, and what to pass instead.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET  # as uvicorn chooses
    sock = socket.socket(family, socket.SOCK_STREAM)
    if os.name != "nt":
        # As uvicorn does: a port left in TIME_WAIT by a server that just stopped is free again at once (a port that
        # a server listens on is not). On Windows the option would let two servers share a port.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen()
    except OSError as exc:
        sock.close()
        raise ConfigError(_bind_problem(host, port, exc)) from None
    return sock


def _bind_problem(host: str, port: int, exc: OSError) -> str:
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve the host {host!r} ({exc.strerror}): pass --host with an address such as 127.0.0.1"
    if exc.errno == errno.EADDRINUSE:
        return (
            f"port {port} on {host} is in use: pass --port with a free port (or set serve.port or INTENTUNE_PORT), "
            "or stop the other server"
        )
    if exc.errno == errno.EACCES:
        return (
            f"no permission to listen on port {port} on {host}: ports below 1024 need root; pass --port 1024 or above"
        )
    if exc.errno == errno.EADDRNOTAVAIL:
        return (
            f"{host} is not an address of this machine: pass --host 127.0.0.1 (this machine only) "
            "or --host 0.0.0.0 (every network interface)"
        )
    return f"cannot listen on {host}:{port}: {exc.strerror or exc}"
