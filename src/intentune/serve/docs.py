"""The API docs pages (Swagger UI at ``/docs``, ReDoc at ``/redoc``), served with their scripts from this server.

FastAPI's own pages load Swagger UI and ReDoc from a CDN (and ReDoc its fonts from Google), so on a machine without
internet they stay blank. These pages load the Swagger UI and ReDoc bundles and the favicon that the
``fastapi-offline`` package ships, from ``/docs/assets/``. Like FastAPI's pages (and ``/openapi.json``) they need no
API key: they show the schema, not predictions.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

DOCS_URL, REDOC_URL, OAUTH2_REDIRECT_URL, ASSETS_URL = "/docs", "/redoc", "/docs/oauth2-redirect", "/docs/assets"
# No validator badge: Swagger UI would send the schema's URL to validator.swagger.io for it.
SWAGGER_UI_PARAMETERS = {"validatorUrl": None}


def assets_folder() -> Path:
    """The folder of ``swagger-ui-bundle.js``, ``swagger-ui.css``, ``redoc.standalone.js`` and ``favicon.png``."""
    return Path(str(resources.files("fastapi_offline").joinpath("static")))


def add_docs_routes(app: FastAPI) -> None:
    """Add ``/docs``, ``/docs/oauth2-redirect``, ``/redoc`` and ``/docs/assets/`` to an app built with
    ``docs_url=None, redoc_url=None`` (so FastAPI's CDN pages are not there)."""
    app.mount(ASSETS_URL, StaticFiles(directory=assets_folder()), name="docs-assets")

    def prefix(request: Request) -> str:
        # Behind a proxy that mounts the app under a path, every URL in the pages starts with it (as in FastAPI's).
        return request.scope.get("root_path", "").rstrip("/")

    async def swagger_ui(request: Request) -> HTMLResponse:
        root = prefix(request)
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
            oauth2_redirect_url=f"{root}{OAUTH2_REDIRECT_URL}",
            swagger_ui_parameters=SWAGGER_UI_PARAMETERS,
        )

    async def oauth2_redirect(request: Request) -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    async def redoc(request: Request) -> HTMLResponse:
        root = prefix(request)
        page = get_redoc_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
            with_google_fonts=False,
        )
        # ReDoc's script shows its maker's logo from cdn.redoc.ly (and hides it when that fails); images from this
        # server only, so the browser never asks another host.
        page.headers["Content-Security-Policy"] = "img-src 'self' data:"
        return page

    # Plain routes, as FastAPI adds its own docs pages: outside the schema, and without the API key dependency.
    app.add_route(DOCS_URL, swagger_ui, include_in_schema=False)
    app.add_route(OAUTH2_REDIRECT_URL, oauth2_redirect, include_in_schema=False)
    app.add_route(REDOC_URL, redoc, include_in_schema=False)
