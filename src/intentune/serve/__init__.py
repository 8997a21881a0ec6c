"""The HTTP service: ``create_app(...)`` builds a FastAPI app that answers intent predictions.

Routes: ``POST /v1/predict``, ``GET /v1/model``, ``GET /health``, the chat demo page at ``/``, the OpenAPI
schema at ``/openapi.json`` and its docs pages at ``/docs`` and ``/redoc`` (their scripts served from here, not a
CDN). The model loads in the app's lifespan (never at import); concurrent requests are
predicted together (:class:`~intentune.serve.batching.MicroBatcher`); every error has one JSON shape
(``{"error": {"code", "message", "details"}}``); each request writes one JSON line to the ``intentune.access``
logger (method, path, status, duration, number of texts; never the texts). With ``serve.log_predictions`` set,
each answered text also becomes one line of the prediction log (``predlog``), read back by
:func:`~intentune.serve.predlog.read_prediction_log`.

Modules: ``app`` (the factory, routes, ``serve``), ``schemas``, ``errors``, ``middleware``, ``batching``, ``docs``,
``predlog``.
"""

from __future__ import annotations

from .app import create_app, load_serving_predictor, serve
from .batching import MicroBatcher, PredictionError
from .predlog import PredictionLog, model_id, read_prediction_log

__all__ = [
    "MicroBatcher",
    "PredictionError",
    "PredictionLog",
    "create_app",
    "load_serving_predictor",
    "model_id",
    "read_prediction_log",
    "serve",
]
