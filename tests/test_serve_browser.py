"""The chat demo page end to end: a real uvicorn server on a free loopback port, driven by headless Chromium through
Playwright. One server serves a tiny model trained on the toy shop data; another a fake model with other intents,
an out-of-scope answer and an API key; it also serves the docs pages, which must render with no other host reachable.

Chromium comes from `make install` (Debian's `chromium` package; Playwright uses it, it downloads no browser);
without it these tests fail, on purpose, unless INTENTUNE_SKIP_BROWSER=1 is set.
"""

from __future__ import annotations

import threading
import time
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from intentune import ServeConfig, create_app

from conftest import find_chromium

pytestmark = pytest.mark.browser

FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]  # fmt: skip


@contextmanager
def running(app: Any) -> Iterator[str]:
    """Serve ``app`` with uvicorn in a thread on a free loopback port; yield its base URL."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the server did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    chromium = find_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=FLAGS)
        yield browser
        browser.close()


def _send(page: Any, text: str) -> Any:
    """Type a message, press Enter, and return the bot bubble that answers it."""
    answers = page.locator(".bot .meta")
    before = answers.count()
    page.fill("#message", text)
    page.press("#message", "Enter")
    page.wait_for_function(f"document.querySelectorAll('.bot .meta').length > {before}", timeout=20_000)
    return page.locator(".bot").filter(has=page.locator(".meta")).last


def _assert_not_blank(shot: Path) -> None:
    from PIL import Image

    pixels = np.asarray(Image.open(shot).convert("RGB"))
    colours = len(np.unique(pixels.reshape(-1, 3), axis=0))
    not_white = float((pixels.min(axis=2) < 240).mean())
    assert colours > 100, f"only {colours} distinct colours: the page looks blank"
    assert not_white > 0.05, f"only {not_white:.1%} of the pixels are not white: the page looks blank"


def test_chat_page_shows_intent_confidence_and_reply_from_a_real_model(
    browser: Any, fitted_encoder: Any, tmp_path: Path
) -> None:
    fitted_encoder.save(tmp_path / "model")
    with running(create_app(tmp_path / "model", settings=ServeConfig())) as url:
        page = browser.new_page(viewport={"width": 900, "height": 700})
        page.goto(url + "/")
        page.wait_for_selector("text=Welcome to the shop", timeout=20_000)  # the shop intents were recognised
        assert "4 intents" in page.inner_text("#model-info")
        answer = _send(page, "where is my order")
        assert answer.locator(".intent").get_attribute("data-intent") == "order_status"
        assert "What is the order number?" in answer.inner_text()
        assert answer.locator(".confidence").inner_text().strip().endswith("%")
        assert answer.locator(".chip").count() == 3  # the top 3 intents
        answer = _send(page, "bye now")
        assert answer.locator(".intent").get_attribute("data-intent") == "goodbye"
        shot = tmp_path / "chat.png"
        page.screenshot(path=str(shot))
        page.close()
    _assert_not_blank(shot)


class OtherIntents:
    """A model that is not the shop assistant: generic replies, and texts about the weather are out of scope."""

    classes_ = ["book_flight", "cancel_flight"]

    def predict_details(self, texts: list[str], *, top_k: int = 1) -> list[dict[str, Any]]:
        def one(text: str) -> dict[str, Any]:
            best = "cancel_flight" if "cancel" in text else "book_flight"
            top = [{"intent": best, "confidence": 0.8}, {"intent": "other", "confidence": 0.2}][:top_k]
            if "weather" in text:
                return {"intent": "oos", "confidence": 0.3, "is_out_of_scope": True, "intents": [], "top": top}
            found = [{"intent": best, "confidence": 0.8}]
            if " and " in text:  # a message with two intents, as a multi-label model answers it
                found = [{"intent": "book_flight", "confidence": 0.9}, {"intent": "cancel_flight", "confidence": 0.7}]
            return {"intent": found[0]["intent"], "confidence": 0.8, "is_out_of_scope": False, "intents": found,
                    "top": top}  # fmt: skip

        return [one(text) for text in texts]

    def describe(self) -> dict[str, Any]:
        return {"labels": self.classes_, "backbone": "fake", "runtime": "fake"}


def test_chat_page_with_other_intents_out_of_scope_and_an_api_key(
    browser: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INTENTUNE_API_KEY", "page-key")
    with running(create_app(classifier=OtherIntents(), settings=ServeConfig())) as url:
        page = browser.new_page(viewport={"width": 900, "height": 700})
        page.goto(url + "/")
        page.wait_for_selector("#key-form.shown", timeout=20_000)  # /v1/model answered 401
        page.fill("#api-key", "page-key")
        page.press("#api-key", "Enter")
        page.wait_for_selector("text=This model knows 2 intents: book_flight, cancel_flight", timeout=20_000)
        answer = _send(page, "please cancel my trip")
        assert "Detected intent: cancel_flight" in answer.inner_text()
        answer = _send(page, "cancel the old one and book a new one")
        assert answer.locator(".intent").get_attribute("data-intents") == "book_flight cancel_flight"
        assert answer.locator(".intent").inner_text() == "book_flight + cancel_flight"
        assert "Detected intent: book_flight Detected intent: cancel_flight" in answer.inner_text()
        answer = _send(page, "what's the weather like")
        assert answer.locator(".intent").get_attribute("data-intent") == "oos"
        assert answer.inner_text().startswith("Sorry, I did not understand that.\n")  # not the shop's fallback
        assert page.inner_text("#title") == "Chat demo"
        assert "(out of scope)" in answer.locator(".intent").inner_text()
        page.screenshot(path=str(tmp_path / "chat-other.png"))
        page.close()
    _assert_not_blank(tmp_path / "chat-other.png")


# Every BMP character (surrogates aside) that the text pattern of /openapi.json refuses, by JavaScript's RegExp: the
# ECMA-262 dialect that JSON Schema's ``pattern`` and generated clients use.
REFUSED_IN_JS = r"""async () => {
    const schema = await (await fetch("/openapi.json")).json();
    const pattern = new RegExp(schema.components.schemas.PredictRequest.properties.texts.items.pattern);
    const refused = [];
    for (let c = 0; c <= 0xffff; c++) {
        if ((c < 0xd800 || c > 0xdfff) && !pattern.test(String.fromCharCode(c))) refused.push(c);
    }
    return {refused, astral: pattern.test("\u{1f4e6}")};
}"""


def test_docs_pages_render_offline_and_the_text_pattern_means_the_same_in_javascript(browser: Any) -> None:
    """/docs (Swagger UI) and /redoc render the schema with every request answered by the server itself (the page
    may reach no other host), and the browser's RegExp refuses exactly the characters the server calls blank."""
    with running(create_app(classifier=OtherIntents(), settings=ServeConfig())) as url:
        context = browser.new_context()
        elsewhere: list[str] = []

        def only_here(route: Any) -> None:
            if route.request.url.startswith(url + "/"):
                route.continue_()
            else:  # as on a machine without internet
                elsewhere.append(route.request.url)
                route.abort()

        context.route("**/*", only_here)
        page = context.new_page()
        page.goto(url + "/docs")
        page.wait_for_selector(".swagger-ui .opblock-summary-path[data-path='/v1/predict']", timeout=20_000)
        assert "intentune" in page.inner_text(".swagger-ui .info .title")
        result = page.evaluate(REFUSED_IN_JS)
        page.goto(url + "/redoc")
        page.wait_for_selector("h1:has-text('intentune')", timeout=20_000)
        context.close()
    assert elsewhere == []
    blank = [c for c in range(0x10000) if chr(c).isspace() or unicodedata.category(chr(c)) == "Cc"]
    assert result == {"refused": blank, "astral": True}
