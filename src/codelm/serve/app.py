"""Assemble the FastAPI app: routes, error handlers, API key, metrics, over one backend.

    app = create_app(LocalEngineClient(engine), "my-model", api_key="secret")

Each client is bounded (serve/limits.py): bodies over `max_body_bytes` get 413 before they are
parsed, and a request whose head or body takes longer than `client_timeout_s` to arrive gets 408.

The app owns the backend from then on: shutting the app down closes it (stops the scheduler's
worker thread, or the gateway's HTTP client).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from codelm.engine.params import SEED_MAX, SEED_MIN
from codelm.errors import CodelmError
from codelm.serve import errors
from codelm.serve.auth import APIKeyMiddleware
from codelm.serve.engine_client import Backend
from codelm.serve.limits import DEFAULT_CLIENT_TIMEOUT_S, DEFAULT_MAX_BODY_BYTES, RequestGuard
from codelm.serve.metrics import Metrics
from codelm.serve.routes import router
from codelm.serve.serving import Serving


def create_app(
    backend: Backend,
    model_name: str,
    *,
    api_key: str | None = None,
    aliases: Sequence[str] = (),
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    client_timeout_s: float = DEFAULT_CLIENT_TIMEOUT_S,
) -> FastAPI:
    """The server for `backend`, reporting `model_name` (and accepting `aliases` as model names).

    `api_key=None` serves without authentication; an empty key is refused rather than taken to
    mean the same (an unset secret must not open the server silently)."""
    if api_key is not None and not api_key.strip():
        raise CodelmError("the API key is empty; pass a key, or none to serve without authentication")
    if api_key is not None and api_key != api_key.strip():
        raise CodelmError("the API key starts or ends with whitespace, which clients cannot send")
    if max_body_bytes < 1 or client_timeout_s <= 0:
        raise CodelmError("max_body_bytes and client_timeout_s must be positive")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await backend.aclose()

    # no /docs or /redoc: their pages load scripts from a CDN, and the server must work offline
    app = FastAPI(title="codelm", lifespan=lifespan, docs_url=None, redoc_url=None)
    gauges = {name: _reader(backend, name) for name in backend.load()}
    app.state.metrics = Metrics(gauges)
    app.state.serving = Serving(backend, model_name, app.state.metrics, aliases)
    app.state.backend = backend
    app.state.client_timeout_s = client_timeout_s  # ServerThread and serve time out request heads
    errors.install(app)
    app.include_router(router)
    app.add_middleware(RequestGuard, max_body_bytes=max_body_bytes, client_timeout_s=client_timeout_s)
    _exact_seed_bounds(app)
    if api_key is not None:  # added last: runs first, so a keyless client's body is never read
        app.add_middleware(APIKeyMiddleware, api_key=api_key)
    return app


def _exact_seed_bounds(app: FastAPI) -> None:
    """FastAPI's OpenAPI model stores bounds as floats, and 2**63 - 1 is no float: put the exact
    integers back so the published schema does not admit 2**63."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        schema = build()  # cached by FastAPI: patching it once patches what it serves
        for name in ("CompletionRequest", "ChatCompletionRequest"):
            seed = schema["components"]["schemas"][name]["properties"]["seed"]
            seed.update(minimum=SEED_MIN, maximum=SEED_MAX)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _reader(backend: Backend, name: str):
    return lambda: float(backend.load().get(name, 0))
