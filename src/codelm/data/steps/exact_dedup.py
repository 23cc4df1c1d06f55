"""Exact deduplication by content hash (SHA-256 of the UTF-8 text, as Seed-Coder and OpenCoder do).

Streaming: the first copy seen is kept and later copies are dropped as `exact_duplicate`, with
`duplicate_of` naming the kept id in their metadata (visible in the exclusion file). Readers
yield in a sorted, stable order, so the kept copy is the same on every run over the same input.
Memory is one 32-byte digest plus the kept id per distinct document. For repository-level
dedup, run it on documents that are whole concatenated repositories.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator

from codelm.data.document import Document
from codelm.data.pipeline import PipelineStep
from codelm.data.writers import JsonlWriter

_TRAILING_WS = re.compile(r"[ \t]+$", re.MULTILINE)


def content_hash(text: str, normalize_whitespace: bool = False) -> bytes:
    """SHA-256 digest of the text (optionally ignoring trailing spaces and line-ending style)."""
    if normalize_whitespace:
        text = _TRAILING_WS.sub("", text.replace("\r\n", "\n")).strip()
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


class ExactDedup(PipelineStep):
    """Drop documents whose content hash was already seen in this stream."""

    def __init__(self, *, normalize_whitespace: bool = False, name: str | None = None,
                 exclusion_writer: JsonlWriter | None = None) -> None:
        super().__init__(name=name, exclusion_writer=exclusion_writer)
        self.normalize_whitespace = normalize_whitespace

    def run(self, docs: Iterator[Document]) -> Iterator[Document]:
        seen: dict[bytes, str] = {}
        for doc in docs:
            digest = content_hash(doc.text, self.normalize_whitespace)
            kept_id = seen.get(digest)
            if kept_id is None:
                seen[digest] = doc.id
                yield self.keep(doc)
            else:
                doc.metadata["duplicate_of"] = kept_id
                self.drop(doc, "exact_duplicate")
