"""Assemble the FastAPI app: routes, error handlers, API key, metrics, over one backend.

    app = create_app(LocalEngineClient(engine), "my-model", api_key="secret")

The app owns the backend from then on: shutting the app down closes it (stops the scheduler's
worker thread, or the gateway's HTTP client).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from fastapi import FastAPI

from codelm.serve import errors
from codelm.serve.auth import APIKeyMiddleware
from codelm.serve.engine_client import Backend
from codelm.serve.metrics import Metrics
from codelm.serve.routes import router
from codelm.serve.serving import Serving


def create_app(
    backend: Backend, model_name: str, *, api_key: str | None = None, aliases: Sequence[str] = ()
) -> FastAPI:
    """The server for `backend`, reporting `model_name` (and accepting `aliases` as model names)."""

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
    errors.install(app)
    app.include_router(router)
    if api_key:
        app.add_middleware(APIKeyMiddleware, api_key=api_key)
    return app


def _reader(backend: Backend, name: str):
    return lambda: float(backend.load().get(name, 0))
