"""Near-duplicate removal with MinHash + LSH over code-token shingles (see `codelm.data.minhash`).

Near-dup removal is a global operation: whether a file goes depends on files that may come later.
This step therefore holds its whole input (one shard, or a small corpus) in memory, computes
signatures in vectorized batches, clusters them (`codelm.data.lsh.cluster`) and then yields the
kept documents in their original order. In each cluster the copy with the smallest `key`
(default: `Document.id`) is kept, so the choice does not depend on input order; dropped copies
get `near_duplicate` with `duplicate_of` in their metadata.

For corpora larger than one process's memory an executor runs it as a `GlobalStep`
(`codelm.data.global_step`): `summarize` computes each shard's signatures (uint32, num_perm per
document: 512 bytes at the default 128 permutations) and keys, hashing the shard in 2 MB pieces;
`decide` clusters the concatenation of all shards in key order, re-reading only the candidate
documents' texts, a batch at a time, to verify pairs by exact Jaccard (their shingle sets spill to
a temporary file past 64 MB, see `codelm.data.lsh.SetStore`); `apply` drops each shard's
duplicates. Same kept copies as in-process, for any sharding. So the sharded path's memory is
O(documents) (signatures, ids, bucket keys, pairs: a few KB per document), not O(text): peak RSS
of `codelm data curate` grows from 153 to 200 MB between 3x and 10x the stdlib (94 -> 312 MB of
text; 247 -> 313 MB with the hashing before 2026-12-04, 357 -> 822 MB before the spill;
bench/dedup_memory.py). The in-process `run` holds its input, as any global step does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TypeVar

import numpy as np

from codelm.data.document import DataError, Document
from codelm.data.global_step import (
    Arrays,
    GlobalStep,
    ShardDocs,
    check_position,
    global_order,
    split_by_shard,
)
from codelm.data.lsh import cluster
from codelm.data.minhash import BATCH_BYTES, MinHashConfig, MinHasher
from codelm.data.writers import JsonlWriter

T = TypeVar("T")
TEXT_BATCH_BYTES = BATCH_BYTES  #: text per hashing batch in summarize and decide


def _text(doc: Document) -> str:
    return doc.text


def _by_id(doc: Document) -> str:
    return doc.id


def text_batches(
    items: Iterable[T], max_bytes: int | None = None, text: Callable[[T], str] = _text
) -> Iterator[list[T]]:
    """Lists of items holding about `max_bytes` of text (at least one item): a shard streams
    through `summarize` and `decide` in pieces, never whole (a count of documents bounds nothing)."""
    batch: list[T] = []
    size = 0
    for item in items:
        batch.append(item)
        size += len(text(item)) + 1
        if size >= (TEXT_BATCH_BYTES if max_bytes is None else max_bytes):
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


class NearDedup(GlobalStep):
    """Drop all but one document of each near-duplicate cluster (Jaccard >= config.threshold)."""

    config_class = MinHashConfig  # YAML settings of the step that are fields of this config

    def __init__(
        self,
        config: MinHashConfig | None = None,
        *,
        key: Callable[[Document], object] = _by_id,
        name: str | None = None,
        exclusion_writer: JsonlWriter | None = None,
    ) -> None:
        super().__init__(name=name, exclusion_writer=exclusion_writer)
        self.config = config or MinHashConfig()
        self.hasher = MinHasher(self.config)
        self.key = key

    def duplicates_of(self, docs: Sequence[Document]) -> dict[int, int]:
        """Map index of each document to drop -> index of the document kept in its cluster."""
        order = sorted(range(len(docs)), key=lambda i: (self.key(docs[i]), i))
        texts = [docs[i].text for i in order]
        sigs = self.hasher.signatures(texts)
        result = cluster(
            sigs,
            self.config,
            shingle_sets=lambda idx: zip(
                idx, self.hasher.shingler.iter_shingle_sets([texts[i] for i in idx]), strict=True
            ),
            valid=MinHasher.has_shingles(sigs),
        )
        for name, value in result.counters.items():
            self.stats.counters[name] += value
        self.stats.counters["clusters"] += int(np.unique(result.roots[result.duplicates]).size)
        return {order[int(d)]: order[int(result.roots[d])] for d in result.duplicates}

    def run(self, docs: Iterator[Document]) -> Iterator[Document]:
        batch = list(docs)
        dups = self.duplicates_of(batch)
        for i, doc in enumerate(batch):
            if i in dups:
                doc.metadata["duplicate_of"] = batch[dups[i]].id
                self.drop(doc, "near_duplicate")
            else:
                yield self.keep(doc)

    # -- sharded mode -------------------------------------------------------------------------
    def summarize(self, docs: Iterable[Document]) -> Arrays:
        sigs, ids, keys = [np.empty((0, self.config.num_perm), dtype=np.uint32)], [], []
        for batch in text_batches(docs):  # the shard streams; only signatures are kept
            sigs.append(self.hasher.signatures([d.text for d in batch]))
            ids.extend(d.id for d in batch)
            keys.extend(self.key(d) for d in batch)
        if keys and not all(isinstance(k, (str, int, float)) for k in keys):
            raise DataError(f"{self.name}: sharded near dedup needs a key of str or numbers, got {keys[0]!r}")
        return {
            "signatures": np.concatenate(sigs),
            "ids": np.array(ids, dtype=str) if ids else np.empty(0, dtype="<U1"),
            "keys": np.array(keys) if keys else np.empty(0, dtype="<U1"),
        }

    def decide(self, summaries: Sequence[Arrays], shard_docs: ShardDocs) -> list[Arrays]:
        shard, pos = global_order(summaries)
        if len(shard) == 0:
            self.decide_counters = {}
            return split_by_shard(len(summaries), shard, drop=pos, duplicate_of=pos.astype(str))
        keys = np.concatenate([s["keys"] for s in summaries])
        ids = np.concatenate([s["ids"] for s in summaries])
        order = np.lexsort((pos, shard, keys))  # smallest key first, as in-process
        sigs = np.concatenate([s["signatures"] for s in summaries])[order]

        def shingle_sets(idx: Sequence[int]) -> Iterator[tuple[int, np.ndarray]]:
            """Re-read the candidates' texts shard by shard, a batch of texts at a time."""
            wanted = {(int(shard[order[i]]), int(pos[order[i]])): i for i in idx}
            for s in sorted({k[0] for k in wanted}):
                found = ((wanted[(s, p)], doc) for p, doc in enumerate(shard_docs(s)) if (s, p) in wanted)
                for batch in text_batches(found, text=lambda item: item[1].text):
                    sets = self.hasher.shingler.iter_shingle_sets([doc.text for _, doc in batch])
                    yield from zip((i for i, _ in batch), sets, strict=True)

        result = cluster(sigs, self.config, shingle_sets=shingle_sets, valid=MinHasher.has_shingles(sigs))
        dups = result.duplicates
        rows, kept = order[dups], order[result.roots[dups]]
        self.decide_counters = {**result.counters, "clusters": int(np.unique(kept).size)}
        return split_by_shard(len(summaries), shard[rows], drop=pos[rows], duplicate_of=ids[kept])

    def apply(self, docs: Iterator[Document], decision: Arrays, summary: Arrays) -> Iterator[Document]:
        dup_of = dict(zip(decision["drop"].tolist(), decision["duplicate_of"].tolist(), strict=True))
        for i, doc in enumerate(docs):
            check_position(self.name, summary, i, doc)
            if i in dup_of:
                doc.metadata["duplicate_of"] = dup_of[i]
                self.drop(doc, "near_duplicate")
            else:
                yield self.keep(doc)
