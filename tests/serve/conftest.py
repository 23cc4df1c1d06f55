"""Fixtures for the server tests: real uvicorn servers on free loopback ports, in-process threads.

`server(family)` is one shared server per family (session-scoped, over the cached tiny engine).
Tests that slow the model down or hold it at a gate get their own engine (`own_engine`), so the
shared one is never touched.
"""

from __future__ import annotations

import pytest

from codelm.serve.app import create_app
from codelm.serve.engine_client import LocalEngineClient
from codelm.serve.launch import ServerThread


@pytest.fixture(scope="session")
def server(tiny_engine):
    """server(family, api_key=None) -> a running ServerThread serving that family as `family`."""
    running: dict[tuple, ServerThread] = {}

    def get(family: str, api_key: str | None = None) -> ServerThread:
        key = (family, api_key)
        if key not in running:
            app = create_app(LocalEngineClient(tiny_engine(family)), family, api_key=api_key)
            running[key] = ServerThread(app).start()
        return running[key]

    yield get
    for s in running.values():
        s.stop()


@pytest.fixture
def own_engine(tiny_checkpoint):
    """own_engine(family) -> a freshly loaded Engine this test may tamper with."""
    from codelm.engine import Engine

    def load(family: str):
        return Engine.from_pretrained(str(tiny_checkpoint(family)))

    return load


@pytest.fixture
def start_server():
    """start_server(backend, name, **create_app_kwargs) -> a ServerThread stopped after the test."""
    started: list[ServerThread] = []

    def start(backend, name: str = "model", **kwargs) -> ServerThread:
        s = ServerThread(create_app(backend, name, **kwargs)).start()
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()
