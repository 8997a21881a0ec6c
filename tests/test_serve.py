"""The HTTP service, in-process: every route, each limit, the API key, the error shape, the micro-batcher, the
access log, the docs pages' local files, a bad model folder, a busy port, the CLI command and a bounded
schemathesis fuzz run of the OpenAPI schema.

Most tests serve a fake predictor (instant and deterministic); one serves a real tiny model folder.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import socket
import sys
import threading
import time
import unicodedata
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from typer.testing import CliRunner

from intentune import Config, ConfigError, ModelError, ServeConfig, create_app
from intentune.cli import app as cli_app
from intentune.serve import MicroBatcher, PredictionError, serve
from intentune.serve.app import listen_on
from intentune.serve.schemas import TEXT_PATTERN

LABELS = ["goodbye", "greeting", "order_status", "product_info"]
JSON = {"content-type": "application/json"}


class FakePredictor:
    """What the server needs from a model (``classes_``, ``predict_details``, ``describe``), without one.

    The answer is a function of the text, so a test can tell whose result a request got; texts holding "weather"
    are out of scope, and a batch holding ``fail_on`` raises.
    """

    classes_ = LABELS

    def __init__(self, fail_on: str | None = None, delay_s: float = 0.0) -> None:
        self.fail_on, self.delay_s = fail_on, delay_s
        self.batches: list[list[str]] = []
        self._lock = threading.Lock()

    def predict_details(self, texts: list[str], *, top_k: int = 1) -> list[dict[str, Any]]:
        with self._lock:
            self.batches.append(list(texts))
        time.sleep(self.delay_s)
        if self.fail_on and any(self.fail_on in text for text in texts):
            raise RuntimeError("model exploded")
        return [self.expected(text, top_k) for text in texts]

    @staticmethod
    def expected(text: str, top_k: int = 1) -> dict[str, Any]:
        best = sum(map(ord, text)) % len(LABELS)
        order = [best] + [i for i in range(len(LABELS)) if i != best]
        top = [{"intent": LABELS[i], "confidence": 0.7 if i == best else 0.1} for i in order][:top_k]
        out = "weather" in text
        intents = [] if out else [{"intent": LABELS[best], "confidence": 0.7}]
        return {"intent": "oos" if out else LABELS[best], "confidence": 0.7, "is_out_of_scope": out,
                "intents": intents, "top": top}  # fmt: skip

    def describe(self) -> dict[str, Any]:
        return {"labels": LABELS, "backbone": "fake", "runtime": "fake", "training": {"steps": 3},
                "intentune_version": "0.0"}  # fmt: skip


@contextmanager
def serving(predictor: Any = None, **settings: Any) -> Iterator[TestClient]:
    app = create_app(classifier=predictor or FakePredictor(), settings=ServeConfig(**settings))
    with TestClient(app) as client:
        yield client


def assert_error(response: Any, status: int, code: str, match: str = "") -> dict[str, Any]:
    """Every error has the one shape: {"error": {"code", "message", "details"}}."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    assert match in body["error"]["message"], body["error"]["message"]
    return body["error"]


# ------------------------------------------------------------------------------------------------ routes
def test_predict_returns_the_details_of_each_text_with_the_text() -> None:
    texts = ["where is my parcel??", "what's the weather", "hi"]
    with serving() as client:
        response = client.post("/v1/predict", json={"texts": texts, "top_k": 3})
    assert response.status_code == 200
    assert response.json() == {"predictions": [{"text": t, **FakePredictor.expected(t, 3)} for t in texts]}
    assert response.json()["predictions"][1]["is_out_of_scope"] is True


def test_top_k_defaults_to_one_and_is_capped_at_the_number_of_intents() -> None:
    with serving() as client:
        one = client.post("/v1/predict", json={"texts": ["hi"]}).json()["predictions"][0]
        capped = client.post("/v1/predict", json={"texts": ["hi"], "top_k": 50}).json()["predictions"][0]
    assert len(one["top"]) == 1
    assert [t["intent"] for t in capped["top"]] == [t["intent"] for t in FakePredictor.expected("hi", 4)["top"]]


def test_health_model_chat_page_and_openapi() -> None:
    with serving(max_texts_per_request=7, max_chars_per_text=20) as client:
        assert client.get("/health").json() == {"status": "ok", "intents": 4}
        assert client.get("/v1/model").json() == FakePredictor().describe()
        page = client.get("/")
        schema = client.get("/openapi.json").json()
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "<title>intentune chat demo</title>" in page.text and "/v1/predict" in page.text
    assert "http://" not in page.text and "https://" not in page.text  # nothing loaded from elsewhere
    assert set(schema["paths"]) == {"/v1/predict", "/v1/model", "/health"}
    body = schema["components"]["schemas"]["PredictRequest"]["properties"]
    assert body["texts"]["maxItems"] == 7 and body["texts"]["items"]["maxLength"] == 20
    assert schema["paths"]["/v1/predict"]["post"]["responses"]["422"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorResponse"
    }


def test_a_real_model_folder_loads_in_the_lifespan_and_predicts_like_the_classifier(
    fitted_encoder: Any, tmp_path: Path
) -> None:
    fitted_encoder.save(tmp_path / "model")
    texts = ["where is my order", "bye now", "price of the red jacket"]
    app = create_app(tmp_path / "model", settings=ServeConfig())
    assert not hasattr(app.state, "predictor")  # not loaded until the app starts
    with TestClient(app) as client:
        predictions = client.post("/v1/predict", json={"texts": texts, "top_k": 2}).json()["predictions"]
        info = client.get("/v1/model").json()
    assert predictions == [{"text": t, **d} for t, d in zip(texts, fitted_encoder.predict_details(texts, top_k=2))]
    assert [p["intent"] for p in predictions] == ["order_status", "goodbye", "product_info"]
    assert info["labels"] == fitted_encoder.classes_ and info["runtime"] == "torch"
    assert info["backbone"] == fitted_encoder.config.model.backbone and "intentune_version" in info


@pytest.mark.parametrize(
    ("page_url", "assets"),
    [
        ("/docs", {"swagger-ui-bundle.js": "SwaggerUIBundle", "swagger-ui.css": ".swagger-ui", "favicon.png": "PNG"}),
        ("/redoc", {"redoc.standalone.js": "Redoc", "favicon.png": "PNG"}),
    ],
)
def test_docs_pages_load_every_file_from_this_server(
    monkeypatch: pytest.MonkeyPatch, page_url: str, assets: dict[str, str]
) -> None:
    """The docs pages name no other host (so they work offline), and each script, style sheet and icon they name
    answers here; like /openapi.json they need no API key."""
    monkeypatch.setenv("INTENTUNE_API_KEY", "s3cret-key")
    with serving() as client:
        page = client.get(page_url)
        urls = re.findall(r'(?:src|href|spec-url)="([^"]*)"', page.text) + re.findall(r"url: '([^']*)'", page.text)
        fetched = {url: client.get(url) for url in urls}
        openapi = client.get("/openapi.json")
        redirect = client.get("/docs/oauth2-redirect")
    assert page.status_code == openapi.status_code == redirect.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "://" not in page.text and "://" not in redirect.text
    assert sorted(urls) == sorted([f"/docs/assets/{name}" for name in assets] + ["/openapi.json"])
    for name, marker in assets.items():
        response = fetched[f"/docs/assets/{name}"]
        assert response.status_code == 200 and marker.encode() in response.content[:200_000], name
    assert fetched["/docs/assets/favicon.png"].headers["content-type"] == "image/png"
    if page_url == "/redoc":  # ReDoc's script names its maker's logo on a CDN: the browser may not fetch it
        assert page.headers["content-security-policy"] == "img-src 'self' data:"


def test_a_missing_docs_file_is_a_404_in_the_error_shape() -> None:
    with serving() as client:
        assert_error(client.get("/docs/assets/nope.js"), 404, "not_found", "no route GET /docs/assets/nope.js")


# ------------------------------------------------------------------------------------------------ limits
@pytest.mark.parametrize(
    ("body", "field", "match"),
    [
        ({"texts": ["hi"] * 4}, "texts", "4 texts in one request; the limit is 3 (serve.max_texts_per_request)"),
        ({"texts": ["ok", "x" * 11]}, "texts.1", "11 characters; the limit is 10 (serve.max_chars_per_text)"),
        ({"texts": []}, "texts", "the list is empty; send at least one text"),
        ({"texts": ["hi"], "top_k": 0}, "top_k", "greater than or equal to 1"),
        ({"texts": ["hi"], "top_k": -3}, "top_k", "greater than or equal to 1"),
        ({"texts": ["hi"], "top_k": "many"}, "top_k", "valid integer"),
        ({"texts": ["   "]}, "texts.0", "text is empty or only white space or control characters"),
        ({"texts": ["ok", ""]}, "texts.1", "text is empty or only white space or control characters"),
        ({"texts": ["\x00\x01\x7f"]}, "texts.0", "text is empty or only white space or control characters"),
        ({"texts": [" \t\x1b\u3000\x85\u2028 "]}, "texts.0", "text is empty or only white space or control"),
        ({"texts": "hi"}, "texts", "valid list"),
        ({"text": ["hi"]}, "texts", "required"),
        ([1, 2], "body", "expected a JSON object"),
    ],
)
def test_limits_and_schema_errors_are_422_with_a_clear_message(body: Any, field: str, match: str) -> None:
    with serving(max_texts_per_request=3, max_chars_per_text=10) as client:
        error = assert_error(client.post("/v1/predict", json=body), 422, "validation_error", match)
    assert error["details"][0]["field"] == field
    assert error["message"].startswith(f"{field}: ")


def test_a_lone_surrogate_is_refused_not_a_crash() -> None:
    with serving() as client:
        response = client.post("/v1/predict", content=b'{"texts": ["ok \\ud800"]}', headers=JSON)
    assert_error(response, 422, "validation_error", "texts.0: text is not valid Unicode (it holds a lone surrogate)")


def test_the_schema_refuses_exactly_the_texts_the_server_refuses() -> None:
    """The text's pattern in /openapi.json is the server's rule (at least one character that is neither white space,
    by ``str.isspace``, nor a control character, Unicode category Cc), so a client generated from the schema and the
    server agree; the server enforces it through the same pattern."""
    every = [chr(c) for c in range(sys.maxunicode + 1) if not 0xD800 <= c <= 0xDFFF]
    blank = [c for c in every if c.isspace() or unicodedata.category(c) == "Cc"]
    with serving(max_chars_per_text=20, max_texts_per_request=len(blank)) as client:
        item = client.get("/openapi.json").json()["components"]["schemas"]["PredictRequest"]["properties"]["texts"]
        refused = client.post("/v1/predict", json={"texts": blank})
        answered = client.post("/v1/predict", json={"texts": [c + "a" + c for c in blank]})
        emoji = client.post("/v1/predict", json={"texts": ["\U0001f4e6"]})
    item = item["items"]
    assert (item["minLength"], item["maxLength"], item["pattern"]) == (1, 20, TEXT_PATTERN)
    assert re.findall(item["pattern"], "".join(every)) == [c for c in every if c not in set(blank)]
    error = assert_error(refused, 422, "validation_error", "texts.0: text is empty or only white space or control")
    assert [d["field"] for d in error["details"]] == [f"texts.{i}" for i in range(len(blank))]
    assert answered.status_code == emoji.status_code == 200


@pytest.mark.parametrize(
    ("content", "headers", "status", "code", "match"),
    [
        (b'{"texts": ["hi"', JSON, 400, "invalid_json", "not valid JSON: Expecting"),
        (b"", JSON, 422, "validation_error", "expected a JSON object"),
        (b'{"texts": ["hi"]}', {"content-type": "text/plain"}, 415, "unsupported_media_type", "found text/plain"),
        (b'{"texts": ["hi"]}', {}, 415, "unsupported_media_type", "expected Content-Type: application/json"),
        (b'{"texts": ["' + b"x" * 3000 + b'"]}', JSON, 413, "body_too_large", "over 2048 bytes"),
    ],
)
def test_bad_bodies(content: bytes, headers: dict[str, str], status: int, code: str, match: str) -> None:
    with serving(max_body_bytes=2048) as client:
        assert_error(client.post("/v1/predict", content=content, headers=headers), status, code, match)


def test_a_streamed_body_over_the_limit_is_413_too() -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"texts": ["'
        for _ in range(10):
            yield b"x" * 500
        yield b'"]}'

    with serving(max_body_bytes=2048) as client:
        assert_error(client.post("/v1/predict", content=chunks(), headers=JSON), 413, "body_too_large")


def test_unknown_route_and_wrong_method() -> None:
    with serving() as client:
        assert_error(client.get("/v2/predict"), 404, "not_found", "no route GET /v2/predict")
        response = client.get("/v1/predict")
        assert_error(response, 405, "method_not_allowed", "GET is not allowed on /v1/predict; use POST")
        assert response.headers["allow"] == "POST"
        assert_error(client.delete("/health"), 405, "method_not_allowed")


# --------------------------------------------------------------------------------------------- API key
@pytest.mark.parametrize(
    ("headers", "status", "match"),
    [
        ({}, 401, "no API key"),
        ({"Authorization": "Bearer wrong-key"}, 401, "wrong API key"),
        ({"X-API-Key": "wrong-key"}, 401, "wrong API key"),
        ({"Authorization": "Basic s3cret-key"}, 401, "wrong API key: send the key as 'Authorization: Bearer KEY'"),
        ({"Authorization": "Bearer wrong-key", "X-API-Key": "s3cret-key"}, 401, "wrong"),  # never outvoted
        ({"Authorization": "Bearer s3cret-key"}, 200, ""),
        ({"X-API-Key": "s3cret-key"}, 200, ""),
        ({"Authorization": "bearer  s3cret-key ", "X-API-Key": "s3cret-key"}, 200, ""),
    ],
)
def test_api_key(monkeypatch: pytest.MonkeyPatch, headers: dict[str, str], status: int, match: str) -> None:
    monkeypatch.setenv("INTENTUNE_API_KEY", "s3cret-key")
    with serving() as client:
        predict = client.post("/v1/predict", json={"texts": ["hi"]}, headers=headers)
        model = client.get("/v1/model", headers=headers)
        assert client.get("/health").status_code == 200  # probes need no key
        assert client.get("/").status_code == 200
        security = client.get("/openapi.json").json()["paths"]["/v1/predict"]["post"]["security"]
    assert predict.status_code == model.status_code == status
    assert security == [{"HTTPBearer": []}, {"APIKeyHeader": []}]
    if status == 401:
        assert_error(predict, 401, "unauthorized", match)
        assert predict.headers["www-authenticate"] == "Bearer"


def test_api_key_from_another_variable_and_none_without_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("INTENTUNE_API_KEY", raising=False)
    with serving() as client:
        assert client.post("/v1/predict", json={"texts": ["hi"]}).status_code == 200
        assert "security" not in client.get("/openapi.json").json()["paths"]["/v1/predict"]["post"]
    monkeypatch.setenv("SHOP_KEY", "k2")
    with serving(api_key_env="SHOP_KEY") as client:
        assert client.post("/v1/predict", json={"texts": ["hi"]}).status_code == 401
        assert client.post("/v1/predict", json={"texts": ["hi"]}, headers={"X-API-Key": "k2"}).status_code == 200


# ---------------------------------------------------------------------------------- micro-batching (HTTP)
def test_concurrent_requests_are_batched_and_each_gets_its_own_results() -> None:
    fake = FakePredictor(delay_s=0.02)
    requests = [[f"message {i}-{j} " + "x" * i for j in range(1 + i % 3)] for i in range(24)]
    with serving(fake, max_batch_size=16, batch_wait_ms=20) as client, ThreadPoolExecutor(12) as pool:
        responses = list(pool.map(lambda texts: client.post("/v1/predict", json={"texts": texts}), requests))
    for texts, response in zip(requests, responses):
        assert response.json()["predictions"] == [{"text": t, **FakePredictor.expected(t)} for t in texts]
    assert sorted(t for batch in fake.batches for t in batch) == sorted(t for texts in requests for t in texts)
    assert len(fake.batches) < len(requests)  # requests shared model calls
    assert max(len(batch) for batch in fake.batches) <= 16


def test_a_failing_batch_answers_500_in_the_error_shape_and_the_server_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with serving(FakePredictor(fail_on="boom")) as client:
        error = assert_error(client.post("/v1/predict", json={"texts": ["boom"]}), 500, "prediction_failed")
        assert "RuntimeError" in error["message"]
        assert client.post("/v1/predict", json={"texts": ["fine"]}).status_code == 200
    assert any("prediction failed on a batch of 1 texts" in r.getMessage() for r in caplog.records)


# ------------------------------------------------------------------------------------ the batcher itself
def _run_batcher(fake: FakePredictor, requests: list[tuple[list[str], int]], **kwargs: Any) -> list[Any]:
    async def main() -> list[Any]:
        batcher = MicroBatcher(lambda texts, k: fake.predict_details(texts, top_k=k), **kwargs)
        try:
            jobs = [batcher.predict(texts, top_k) for texts, top_k in requests]
            return await asyncio.gather(*jobs, return_exceptions=True)
        finally:
            await batcher.close()

    return asyncio.run(main())


def test_batcher_groups_requests_up_to_the_size_limit_in_arrival_order() -> None:
    fake = FakePredictor()
    requests = [([f"t{i}a", f"t{i}b", f"t{i}c"], 1 + i % 4) for i in range(10)]
    results = _run_batcher(fake, requests, max_batch_size=7, wait_ms=5)
    for (texts, top_k), result in zip(requests, results):
        assert result == [FakePredictor.expected(t, top_k) for t in texts]
    # 3 texts per request and at most 7 per batch: requests are never split, two per batch.
    assert [len(batch) for batch in fake.batches] == [6, 6, 6, 6, 6]
    assert [t for batch in fake.batches for t in batch] == [t for texts, _ in requests for t in texts]


def test_batcher_predicts_a_request_larger_than_the_batch_alone() -> None:
    fake = FakePredictor()
    requests = [(["a"], 1), ([f"big {i}" for i in range(10)], 2), (["b"], 1)]
    results = _run_batcher(fake, requests, max_batch_size=4, wait_ms=0)
    assert results[1] == [FakePredictor.expected(f"big {i}", 2) for i in range(10)]
    assert [len(batch) for batch in fake.batches] == [1, 10, 1]


def test_batcher_fails_only_the_requests_of_the_failing_batch() -> None:
    fake = FakePredictor(fail_on="boom")
    requests = [(["ok 1"], 1), (["boom"], 1), (["ok 2", "ok 3"], 1), (["ok 4"], 1)]
    results = _run_batcher(fake, requests, max_batch_size=2, wait_ms=5)
    assert isinstance(results[0], PredictionError) and isinstance(results[1], PredictionError)
    assert "prediction failed: RuntimeError" in str(results[1])
    assert results[2] == [FakePredictor.expected("ok 2"), FakePredictor.expected("ok 3")]
    assert results[3] == [FakePredictor.expected("ok 4")]


def test_batcher_close_fails_waiting_requests() -> None:
    async def main() -> Any:
        batcher = MicroBatcher(lambda texts, k: FakePredictor(delay_s=0.2).predict_details(texts), wait_ms=0)
        first = asyncio.ensure_future(batcher.predict(["slow"]))
        await asyncio.sleep(0.05)  # the first batch is running
        second = asyncio.ensure_future(batcher.predict(["queued"]))
        await asyncio.sleep(0)
        await batcher.close()
        return await asyncio.gather(first, second, return_exceptions=True)

    results = asyncio.run(main())
    assert all(isinstance(r, PredictionError) and "shutting down" in str(r) for r in results)


# ------------------------------------------------------------------------------------------- access log
def test_access_log_is_one_json_line_per_request_without_the_texts(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="intentune.access")
    with serving(max_body_bytes=2048) as client:
        client.post("/v1/predict", json={"texts": ["my secret parcel 4411", "another secret"]})
        client.get("/nowhere?q=secret")
        client.post("/v1/predict", content=b"x" * 5000, headers=JSON)
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "intentune.access"]
    assert [(x["method"], x["path"], x["status"], x["texts"]) for x in lines] == [
        ("POST", "/v1/predict", 200, 2),
        ("GET", "/nowhere", 404, 0),
        ("POST", "/v1/predict", 413, 0),
    ]
    assert all(set(x) == {"method", "path", "status", "duration_ms", "texts"} for x in lines)
    assert all(isinstance(x["duration_ms"], float) and x["duration_ms"] >= 0 for x in lines)
    assert not any("secret" in r.getMessage() for r in caplog.records)


# ------------------------------------------------------------------------------- bad model, settings, CLI
def test_a_bad_model_folder_fails_the_start_with_a_clear_error(tmp_path: Path) -> None:
    app = create_app(tmp_path / "missing", settings=ServeConfig())
    with pytest.raises(ModelError, match="missing"), TestClient(app):
        pass
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="empty"), TestClient(create_app(tmp_path / "empty")):
        pass
    with pytest.raises(ConfigError, match="no model to serve: pass a model folder, or set serve.model_dir"):
        create_app(settings=ServeConfig())


def test_environment_variables_override_the_serve_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"INTENTUNE_PORT": "9001", "INTENTUNE_HOST": "0.0.0.0", "INTENTUNE_MAX_TEXTS_PER_REQUEST": "5",
           "INTENTUNE_BATCH_WAIT_MS": "2", "INTENTUNE_MODEL_DIR": "runs/shop", "INTENTUNE_API_KEY": "k"}  # fmt: skip
    serve = Config().override_env(env).serve
    assert (serve.port, serve.host, serve.max_texts_per_request, serve.batch_wait_ms) == (9001, "0.0.0.0", 5, 2.0)
    assert serve.model_dir == "runs/shop"
    with pytest.raises(ConfigError, match="environment variable INTENTUNE_PORT: serve.port must be int, found 'x'"):
        Config().override_env({"INTENTUNE_PORT": "x"})
    with pytest.raises(ConfigError, match="serve.max_batch_size must be at least 1"):
        Config().override_env({"INTENTUNE_MAX_BATCH_SIZE": "0"})
    # create_app without settings reads them from the environment.
    monkeypatch.setenv("INTENTUNE_MAX_TEXTS_PER_REQUEST", "2")
    with TestClient(create_app(classifier=FakePredictor())) as client:
        assert_error(client.post("/v1/predict", json={"texts": ["a", "b", "c"]}), 422, "validation_error", "limit is 2")


def test_cli_serve_with_a_bad_folder_prints_one_red_line_and_exits_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uvicorn

    monkeypatch.setattr(uvicorn.Server, "run", lambda *a, **k: pytest.fail("uvicorn started"))
    result = CliRunner().invoke(cli_app, ["serve", str(tmp_path / "nope"), "--port", "0"])  # any free port
    assert result.exit_code == 1
    assert result.output.count("\n") == 1 and result.output.startswith("error: ") and "nope" in result.output


def test_cli_serve_applies_config_env_set_and_options(
    fitted_encoder: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uvicorn

    fitted_encoder.save(tmp_path / "run" / "model")
    started: dict[str, Any] = {}

    def run(server: uvicorn.Server, sockets: list[socket.socket]) -> None:
        started.update(config=server.config, address=sockets[0].getsockname())

    monkeypatch.setattr(uvicorn.Server, "run", run)
    port = free_port("127.0.0.2")
    monkeypatch.setenv("INTENTUNE_PORT", str(port))
    monkeypatch.setenv("INTENTUNE_MAX_CHARS_PER_TEXT", "5")
    args = ["serve", str(tmp_path / "run"), "--host", "127.0.0.2", "--set", "serve.max_texts_per_request=2"]
    result = CliRunner().invoke(cli_app, args)
    assert result.exit_code == 0, result.output
    config = started["config"]
    assert started["address"] == (config.host, config.port) == ("127.0.0.2", port)  # uvicorn gets the bound socket
    assert config.access_log is False
    with TestClient(config.app) as client:
        assert_error(client.post("/v1/predict", json={"texts": ["a", "b", "c"]}), 422, "validation_error", "is 2")
        assert_error(client.post("/v1/predict", json={"texts": ["abcdef"]}), 422, "validation_error", "is 5")
        assert client.post("/v1/predict", json={"texts": ["bye"]}).json()["predictions"][0]["intent"] in LABELS


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A loopback port another server listens on."""
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        yield other.getsockname()[1]


def test_cli_serve_on_a_busy_port_says_so_in_one_line_and_exits_1(
    fitted_encoder: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
    busy_port: int,
) -> None:  # fmt: skip
    import uvicorn

    caplog.set_level(logging.INFO, logger="intentune")
    fitted_encoder.save(tmp_path / "model")
    monkeypatch.setattr(uvicorn.Server, "run", lambda *a, **k: pytest.fail("uvicorn started"))
    result = CliRunner().invoke(cli_app, ["serve", str(tmp_path / "model"), "--port", str(busy_port)])
    assert result.exit_code == 1, result.output
    assert result.output == (
        f"error: port {busy_port} on 127.0.0.1 is in use: pass --port with a free port (or set serve.port or "
        "INTENTUNE_PORT), or stop the other server\n"
    )
    assert not any("serving" in record.getMessage() for record in caplog.records)  # nothing announced


def test_serve_checks_the_port_before_loading_the_model(tmp_path: Path, busy_port: int) -> None:
    with pytest.raises(ConfigError, match=f"port {busy_port} on 127.0.0.1 is in use"):
        serve(tmp_path / "not-loaded", ServeConfig(port=busy_port))  # a port error, not the folder's ModelError


def test_listen_on_an_address_of_another_machine_says_which_hosts_work() -> None:
    with pytest.raises(ConfigError, match=r"^192\.0\.2\.1 is not an address of this machine: pass --host 127\.0"):
        listen_on("192.0.2.1", 0)  # TEST-NET-1, never a local address
    # Port 0: the system picks a free one; the socket listens already.
    with listen_on("127.0.0.1", 0) as sock, socket.create_connection(sock.getsockname(), timeout=5):
        pass


# ------------------------------------------------------------------------------------------ fuzzing
FUZZ_KEY = "fuzz-key-123"


def _fuzz_app() -> Any:
    """The app under fuzzing: a fake predictor, small limits, and an API key (read when the app is built)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("INTENTUNE_FUZZ_KEY", FUZZ_KEY)
        settings = ServeConfig(max_texts_per_request=8, max_chars_per_text=40, api_key_env="INTENTUNE_FUZZ_KEY")
        return create_app(classifier=FakePredictor(), settings=settings)


# Loaded at collection: schemathesis's fixture-based loader (schemathesis.pytest.from_fixture) fails on pytest 9
# ('Function' object has no attribute '_nodeid'). Building the app loads no model; the fake predictor is instant.
schema = schemathesis.openapi.from_asgi("/openapi.json", _fuzz_app())


@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_fuzzed_requests_never_get_a_server_error(case: Any) -> None:
    """Generated requests, valid and invalid, get no 500; every response matches the documented schema and status
    codes; requests without the key, or with a wrong one, get 401 (schemathesis's default checks)."""
    case.call_and_validate(headers={"X-API-Key": FUZZ_KEY})
