"""The HTTP service: ``create_app(...)`` builds a FastAPI app that answers intent predictions.

Routes: ``POST /v1/predict``, ``GET /v1/model``, ``GET /health``, the chat demo page at ``/``, the OpenAPI
schema at ``/openapi.json`` and its docs pages at ``/docs`` and ``/redoc`` (their scripts served from here, not a
CDN). The model loads in the app's lifespan (never at import); concurrent requests are
predicted together (:class:`~intentune.serve.batching.MicroBatcher`); every error has one JSON shape
(``{"error": {"code", "message", "details"}}``); each request writes one JSON line to the ``intentune.access``
logger (method, path, status, duration, number of texts; never the texts).

Modules: ``app`` (the factory, routes, ``serve``), ``schemas``, ``errors``, ``middleware``, ``batching``, ``docs``.
"""

from __future__ import annotations

from .app import create_app, load_serving_predictor, serve
from .batching import MicroBatcher, PredictionError

__all__ = ["MicroBatcher", "PredictionError", "create_app", "load_serving_predictor", "serve"]
