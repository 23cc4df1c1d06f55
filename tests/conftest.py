"""Shared fixtures: tiny checkpoints of every family, built once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

FAMILIES = ["codegen1", "codegemma", "stablecode", "seedcoder", "llama"]
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("tiny")


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_root):
    """tiny_checkpoint(family) -> directory of a tiny checkpoint (built on first use)."""
    from codelm.models.tiny import make_tiny

    built: dict[str, Path] = {}

    def get(family: str) -> Path:
        if family not in built:
            built[family] = make_tiny(family, tiny_root / family, corpus_bytes=1_000_000)
        return built[family]

    return get


@pytest.fixture(scope="session")
def tiny_engine(tiny_checkpoint):
    """tiny_engine(family) -> a loaded Engine on that family's tiny checkpoint (cached)."""
    from codelm.engine import Engine

    engines: dict = {}

    def get(family: str):
        if family not in engines:
            engines[family] = Engine.from_pretrained(str(tiny_checkpoint(family)))
        return engines[family]

    return get
