"""Score files for quality and drop the worst, as Seed-Coder does with its LLM-labelled scorer.

* `QualityScorer` annotates every document with `metadata["quality"]` (0-10) and keeps it.
* `QualityFilter` drops the bottom `drop_fraction` of documents by score (Seed-Coder: about
  10%), reason `low_quality`; or, with `threshold`, every document scoring below it.

The scorer is `heuristic` (rules over code features, no model: `quality.heuristic`) or the path
of a model trained on oracle labels (`quality.train`, `quality.regression`). Scoring runs in
batches of `batch_size` documents, and the scorer is loaded in each process that scores.

Dropping a percentile is a two-pass operation: every score must be known before the cut-off is.
In-process (`run_pipeline`, or the step on an iterator) the step holds its input, scores it all,
and cuts at the percentile of *that stream*: run per shard by hand, each shard loses its own
bottom X%. Under an executor it is a global step: each shard's scores are summarized, the
cut-off is the percentile of *all* scores (ties broken by id, so exactly floor(X% of N) go),
and each shard drops its documents below it: the same documents for any number of shards. With
an absolute `threshold` the step needs no global pass and streams.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from codelm.data.document import DataError, Document
from codelm.data.global_step import (
    Arrays,
    GlobalStep,
    ShardDocs,
    batched,
    check_position,
    global_order,
    split_by_shard,
)
from codelm.data.pipeline import PipelineStep
from codelm.data.writers import JsonlWriter


class _Scoring:
    """Lazy scorer loading and batched scoring, shared by both steps."""

    scorer_spec: str
    batch_size: int
    _scorer: Any = None

    def scores(self, docs: Sequence[Document]) -> np.ndarray:
        if self._scorer is None:
            from codelm.data.quality.regression import load_scorer

            self._scorer = load_scorer(self.scorer_spec)
        parts = [
            self._scorer.score(docs[i : i + self.batch_size]) for i in range(0, len(docs), self.batch_size)
        ]
        return np.concatenate(parts) if parts else np.empty(0)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_scorer": None}  # each worker loads its own (models are big)


def _batches(docs: Iterable[Document], size: int) -> Iterator[list[Document]]:
    batch: list[Document] = []
    for doc in docs:
        batch.append(doc)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


class QualityScorer(_Scoring, PipelineStep):
    """Annotate `metadata["quality"]` (0-10) on every document; drops nothing."""

    def __init__(
        self,
        scorer: str = "heuristic",
        *,
        batch_size: int = 256,
        name: str | None = None,
        exclusion_writer: JsonlWriter | None = None,
    ) -> None:
        super().__init__(name=name, exclusion_writer=exclusion_writer)
        self.scorer_spec, self.batch_size = scorer, batch_size

    def run(self, docs: Iterator[Document]) -> Iterator[Document]:
        for batch in _batches(docs, self.batch_size):
            for doc, score in zip(batch, self.scores(batch).tolist(), strict=True):
                doc.metadata["quality"] = round(float(score), 4)
                yield self.keep(doc)


class QualityFilter(_Scoring, GlobalStep):
    """Drop the lowest-scoring `drop_fraction` of documents, or those below `threshold`."""

    def __init__(
        self,
        drop_fraction: float | None = 0.1,
        *,
        threshold: float | None = None,
        scorer: str = "heuristic",
        batch_size: int = 256,
        name: str | None = None,
        exclusion_writer: JsonlWriter | None = None,
    ) -> None:
        super().__init__(name=name, exclusion_writer=exclusion_writer)
        if threshold is not None:
            drop_fraction = None
        if drop_fraction is None and threshold is None:
            raise DataError("quality_filter needs drop_fraction or threshold")
        if drop_fraction is not None and not 0.0 <= drop_fraction < 1.0:
            raise DataError(f"quality_filter drop_fraction must be in [0, 1), got {drop_fraction}")
        self.drop_fraction, self.threshold = drop_fraction, threshold
        self.scorer_spec, self.batch_size = scorer, batch_size

    @property
    def is_global(self) -> bool:
        return self.threshold is None

    def run(self, docs: Iterator[Document]) -> Iterator[Document]:
        if self.is_global:
            yield from super().run(docs)
            return
        for batch in _batches(docs, self.batch_size):
            for doc, score in zip(batch, self.scores(batch).tolist(), strict=True):
                doc.metadata["quality"] = round(float(score), 4)
                if score < float(self.threshold or 0.0):
                    self.drop(doc, "low_quality")
                else:
                    yield self.keep(doc)

    def summarize(self, docs: Iterable[Document]) -> Arrays:
        scores, ids = [np.empty(0)], []
        for batch in batched(docs, self.batch_size):  # the shard streams; only scores are kept
            scores.append(self.scores(batch))
            ids.extend(d.id for d in batch)
        return {
            "scores": np.concatenate(scores),
            "ids": np.array(ids, dtype=str) if ids else np.empty(0, "<U1"),
        }

    def decide(self, summaries: Sequence[Arrays], shard_docs: ShardDocs) -> list[Arrays]:
        shard, pos = global_order(summaries)
        scores = np.concatenate([s["scores"] for s in summaries]) if summaries else np.empty(0)
        ids = np.concatenate([s["ids"] for s in summaries]) if summaries else np.empty(0, str)
        n_drop = math.floor(float(self.drop_fraction or 0.0) * len(scores))
        order = np.lexsort((pos, shard, ids, scores))  # lowest score first; ties by id
        rows = order[:n_drop]
        cutoff = float(scores[order[n_drop]]) if n_drop < len(scores) else float("inf")
        self.decide_counters = {
            "scored": len(scores),
            "cutoff_score_x100": int(round(cutoff * 100)) if math.isfinite(cutoff) else -1,
        }
        return split_by_shard(len(summaries), shard[rows], drop=pos[rows])

    def apply(self, docs: Iterator[Document], decision: Arrays, summary: Arrays) -> Iterator[Document]:
        drop = set(decision["drop"].tolist())
        scores = summary["scores"]
        for i, doc in enumerate(docs):
            check_position(self.name, summary, i, doc)
            doc.metadata["quality"] = round(float(scores[i]), 4)
            if i in drop:
                self.drop(doc, "low_quality")
            else:
                yield self.keep(doc)
