"""Plain helpers for codelm.data tests (fixtures live in conftest.py)."""

from __future__ import annotations

from pathlib import Path

from codelm.data import Document, run_pipeline


def write_tree(root: Path, files: dict[str, str | bytes]) -> Path:
    """Create files under root (str is written as UTF-8, bytes as is); returns root."""
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    return root


def doc(text: str, id: str = "d", language: str | None = "python", **kw) -> Document:
    """A document of repo "r" whose path is its id."""
    return Document(
        text=text, id=id, repo=kw.pop("repo", "r"), path=kw.pop("path", id), language=language, **kw
    )


def read_all(reader):
    """Every document a reader yields, and its stats (the pipeline's counts checked)."""
    out, stats = run_pipeline([reader])
    docs = list(out)
    stats.check()
    return docs, stats[reader.name]
