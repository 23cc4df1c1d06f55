"""Near-duplicate removal with MinHash + LSH over code-token shingles (see `codelm.data.minhash`).

Near-dup removal is a global operation: whether a file goes depends on files that may come later.
This step therefore holds its whole input (one shard, or a small corpus) in memory, computes
signatures in vectorized batches, clusters them (`codelm.data.lsh.cluster`) and then yields the
kept documents in their original order. In each cluster the copy with the smallest `key`
(default: `Document.id`) is kept, so the choice does not depend on input order; dropped copies
get `near_duplicate` with `duplicate_of` in their metadata.

For corpora larger than memory an executor runs the same pieces in stages: `MinHasher.signatures`
per shard (saved as .npy), `cluster` over all signatures, then a filter on the removed ids.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np

from codelm.data.document import Document
from codelm.data.lsh import cluster
from codelm.data.minhash import MinHashConfig, MinHasher
from codelm.data.pipeline import PipelineStep
from codelm.data.writers import JsonlWriter


def _by_id(doc: Document) -> str:
    return doc.id


class NearDedup(PipelineStep):
    """Drop all but one document of each near-duplicate cluster (Jaccard >= config.threshold)."""

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
            shingle_sets=lambda idx: self.hasher.shingler.shingle_sets([texts[i] for i in idx]),
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
