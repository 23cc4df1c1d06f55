"""Steps whose decision depends on the whole corpus: dedup, percentile thresholds, repo packing.

A per-document filter can run on each shard alone; exact and near dedup cannot (a copy may sit in
another shard), nor can "drop the bottom 10% by score". Such a step is a `GlobalStep`, written
as three phases so that an executor can place a stage boundary around it:

1. `summarize(docs)`, once per shard, in parallel: a small summary of the shard (content hashes,
   MinHash signatures, scores), a dict of numpy arrays that the executor saves as `.npz`;
2. `decide(summaries, shard_docs)`, once, over every shard's summary: one decision per shard
   (which positions to drop and why), again dicts of arrays; `shard_docs(i)` re-reads shard i
   for the rare step that needs more than its summary (near dedup verifying candidate pairs);
3. `apply(docs, decision, summary)`, once per shard, in parallel: keep or drop each document of
   the shard (in the same order as summarized), counted by the usual `keep` / `drop`.

Run in-process (`run_pipeline`, or a step called on an iterator) a `GlobalStep` is the same three
phases over one shard holding its whole input, so every executor and a plain call agree.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from codelm.data.document import DataError, Document
from codelm.data.pipeline import PipelineStep

Arrays = dict[str, np.ndarray]
ShardDocs = Callable[[int], Iterator[Document]]


class GlobalStep(PipelineStep):
    """Base of corpus-wide steps; see the module docstring for the three phases."""

    #: counters of the last `decide`, merged into the step's stats by the executor
    decide_counters: dict[str, int]

    @property
    def is_global(self) -> bool:
        """False when this instance's settings make it a per-document step (no stage boundary)."""
        return True

    def summarize(self, docs: Iterable[Document]) -> Arrays:
        raise NotImplementedError(f"{type(self).__name__} must implement summarize(docs)")

    def decide(self, summaries: Sequence[Arrays], shard_docs: ShardDocs) -> list[Arrays]:
        raise NotImplementedError(f"{type(self).__name__} must implement decide(summaries, shard_docs)")

    def apply(self, docs: Iterator[Document], decision: Arrays, summary: Arrays) -> Iterator[Document]:
        raise NotImplementedError(f"{type(self).__name__} must implement apply(docs, decision, summary)")

    def run(self, docs: Iterator[Document]) -> Iterator[Document]:
        batch = list(docs)
        summary = self.summarize(batch)
        [decision] = self.decide([summary], lambda shard: iter(batch))
        for name, value in getattr(self, "decide_counters", {}).items():
            self.stats.counters[name] += value
        yield from self.apply(iter(batch), decision, summary)

    def applier(self, decision: Arrays, summary: Arrays) -> PipelineStep:
        """A counted step for `run_pipeline` that applies `decision` to one shard's stream."""
        return _Applier(self, decision, summary)


class _Applier(PipelineStep):
    """Phase 3 of a global step as an ordinary step, sharing the step's name and counts."""

    def __init__(self, step: GlobalStep, decision: Arrays, summary: Arrays) -> None:
        super().__init__(name=step.name, exclusion_writer=step.exclusion_writer)
        self.step, self.decision, self.summary = step, decision, summary

    def run(self, docs: Iterator[Document]) -> Iterator[Document]:
        self.step.stats = self.stats  # the step's keep/drop now count here
        self.step.exclusion_writer = self.exclusion_writer
        yield from self.step.apply(docs, self.decision, self.summary)


def positions_mask(n: int, positions: np.ndarray) -> np.ndarray:
    """Boolean mask of length n, True at `positions`."""
    mask = np.zeros(n, dtype=bool)
    mask[np.asarray(positions, dtype=np.int64)] = True
    return mask


def global_order(summaries: Sequence[Arrays], key: str = "ids") -> tuple[np.ndarray, np.ndarray]:
    """(shard, position) of every summarized document, concatenated over shards in shard order."""
    shard = np.concatenate(
        [np.full(len(s[key]), i, dtype=np.int64) for i, s in enumerate(summaries)] or [np.empty(0, np.int64)]
    )
    pos = np.concatenate(
        [np.arange(len(s[key]), dtype=np.int64) for s in summaries] or [np.empty(0, np.int64)]
    )
    return shard, pos


def split_by_shard(n_shards: int, shard: np.ndarray, **columns: np.ndarray) -> list[Arrays]:
    """Per-shard decisions from global rows: `columns` restricted to each shard's rows."""
    return [{name: col[shard == i] for name, col in columns.items()} for i in range(n_shards)]


def check_position(step: str, summary: Arrays, position: int, doc: Document) -> None:
    """Raise if a shard re-read for `apply` is not the shard that was summarized."""
    ids = summary["ids"]
    if position >= len(ids) or str(ids[position]) != doc.id:
        raise DataError(
            f"{step}: shard changed between summarize and apply (position {position}: {doc.id!r}); "
            "its input must be re-read identically"
        )


def batched(docs: Iterable[Document], size: int = 4096) -> Iterator[list[Document]]:
    """Lists of up to `size` documents: summaries stream a shard instead of holding it."""
    batch: list[Document] = []
    for doc in docs:
        batch.append(doc)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def ids_array(docs: Iterable[Document]) -> np.ndarray:
    """Document ids as a numpy unicode array (saved in summaries without pickling)."""
    ids = [d.id for d in docs]
    return np.array(ids, dtype=str) if ids else np.empty(0, dtype="<U1")


def as_int_list(values: Any) -> list[int]:
    return [int(v) for v in np.asarray(values).tolist()]
