"""Shared fixtures for codelm.data tests: real code from the stdlib, small repos built in tmp dirs."""

from __future__ import annotations

import sysconfig
from pathlib import Path

import pytest

from codelm.data import Document

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
STDLIB = Path(sysconfig.get_paths()["stdlib"])


def stdlib_py_files(n: int, *, max_bytes: int = 40_000) -> list[Path]:
    """`n` stdlib .py files spread over the whole tree (every k-th in sorted order), not too big."""
    files = sorted(p for p in STDLIB.glob("*.py") if p.is_file() and 200 < p.stat().st_size <= max_bytes)
    step = max(1, len(files) // n)
    return files[::step][:n]


@pytest.fixture(scope="session")
def stdlib_docs() -> list[Document]:
    """About 60 real Python modules of the standard library as documents."""
    docs = []
    for p in stdlib_py_files(60):
        docs.append(Document(p.read_text("utf-8"), f"stdlib/{p.name}", "stdlib", p.name, "python"))
    assert len(docs) >= 40, f"too few stdlib files found under {STDLIB}"
    return docs


@pytest.fixture(scope="session")
def benchmark_dir() -> Path:
    """The benchmark files of shared/data (not committed); tests using it skip when absent."""
    if not (SHARED_DATA / "HumanEval.jsonl.gz").is_file():
        pytest.skip(f"benchmark files not found in {SHARED_DATA} (see shared/data/SOURCES.md)")
    return SHARED_DATA
