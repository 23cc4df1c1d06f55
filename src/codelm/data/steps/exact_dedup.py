"""Exact deduplication by content hash (SHA-256 of the UTF-8 text, as Seed-Coder and OpenCoder do).

In-process (`run_pipeline`, or the step called on an iterator) it streams: the first copy seen
is kept and later copies are dropped as `exact_duplicate`, with `duplicate_of` naming the kept id
in their metadata (visible in the exclusion file). Readers yield in a sorted, stable order, so the
kept copy is the same on every run over the same input. Memory is one 32-byte digest plus the kept
id per distinct document. For repository-level dedup, run it on whole concatenated repositories.

Under an executor the corpus is split into shards and a copy may sit in another shard, so the
step runs as a `GlobalStep` (see `codelm.data.global_step`): each shard's digests and ids are
summarized, one process picks the copy to keep in every group, the **smallest id** (ties by shard
and position), and each shard drops the rest. The result does not depend on the number of shards
or workers; it may keep a different copy than the streaming mode, which keeps the first seen.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator, Sequence

import numpy as np

from codelm.data.document import Document
from codelm.data.global_step import (
    Arrays,
    GlobalStep,
    ShardDocs,
    check_position,
    global_order,
    split_by_shard,
)
from codelm.data.writers import JsonlWriter

_TRAILING_WS = re.compile(r"[ \t]+$", re.MULTILINE)


def content_hash(text: str, normalize_whitespace: bool = False) -> bytes:
    """SHA-256 digest of the text (optionally ignoring trailing spaces and line-ending style)."""
    if normalize_whitespace:
        text = _TRAILING_WS.sub("", text.replace("\r\n", "\n")).strip()
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


class ExactDedup(GlobalStep):
    """Drop documents whose content hash was already seen in this stream (or, sharded, corpus)."""

    def __init__(
        self,
        *,
        normalize_whitespace: bool = False,
        name: str | None = None,
        exclusion_writer: JsonlWriter | None = None,
    ) -> None:
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

    # -- sharded mode -------------------------------------------------------------------------
    def summarize(self, docs: Iterable[Document]) -> Arrays:
        digests, ids = [], []
        for doc in docs:  # streams: 32 bytes and the id per document
            digests.append(content_hash(doc.text, self.normalize_whitespace))
            ids.append(doc.id)
        return {
            "digests": np.frombuffer(b"".join(digests), dtype=np.uint8).reshape(len(ids), 32),
            "ids": np.array(ids, dtype=str) if ids else np.empty(0, dtype="<U1"),
        }

    def decide(self, summaries: Sequence[Arrays], shard_docs: ShardDocs) -> list[Arrays]:
        shard, pos = global_order(summaries)
        ids = np.concatenate([s["ids"] for s in summaries]) if summaries else np.empty(0, str)
        digests = np.concatenate([s["digests"] for s in summaries]) if summaries else np.empty((0, 32))
        order = np.lexsort((pos, shard, ids))  # smallest id first, then shard, then position
        keys = np.ascontiguousarray(digests[order]).view(np.dtype((np.void, 32))).ravel()
        _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
        kept = order[first[inverse]]  # global row kept for each row in sorted order
        dup = kept != order
        rows, kept_rows = order[dup], kept[dup]
        self.decide_counters = {"duplicate_groups": int(np.unique(kept_rows).size)}
        return split_by_shard(len(summaries), shard[rows], drop=pos[rows], duplicate_of=ids[kept_rows])

    def apply(self, docs: Iterator[Document], decision: Arrays, summary: Arrays) -> Iterator[Document]:
        dup_of = dict(zip(decision["drop"].tolist(), decision["duplicate_of"].tolist(), strict=True))
        for i, doc in enumerate(docs):
            check_position(self.name, summary, i, doc)
            if i in dup_of:
                doc.metadata["duplicate_of"] = dup_of[i]
                self.drop(doc, "exact_duplicate")
            else:
                yield self.keep(doc)
