"""The pipeline model: a plain list of steps, each an iterator of documents in and out.

Following datatrove, a step is any callable `step(docs) -> Iterator[Document]`; a plain generator
function is a valid step, and every step can be tested as `list(step(iter(docs)))`. The bases here
add what a corpus run needs to be auditable:

* `PipelineStep` counts documents in, kept and dropped by reason (`self.stats`), and writes the
  dropped ones to an optional `exclusion_writer` (a `JsonlWriter`) for inspection.
* `Filter` is the keep-or-drop-with-reason base: implement `filter(doc) -> True | "reason"`.
* `run_pipeline(steps)` chains the list and returns the output stream with the live
  `PipelineStats`; plain functions are wrapped in `CountedStep` so they are counted too.

Running the list over shards, in processes or on Ray, is an executor's job, never a step's: an
executor calls `run_pipeline` once per shard (on a copy of the steps) and merges the stats.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Protocol, runtime_checkable

from codelm.data.document import Document
from codelm.data.stats import PipelineStats, StepStats
from codelm.data.writers import JsonlWriter


@runtime_checkable
class Step(Protocol):
    """Anything that maps a stream of documents to a stream of documents."""

    def __call__(self, docs: Iterable[Document]) -> Iterator[Document]: ...


StepFunction = Callable[[Iterable[Document]], Iterable[Document]]


#: metadata key naming the reader a document came from, set when a pipeline has several readers
SOURCE_KEY = "source_reader"


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


class PipelineStep:
    """Base for counted steps: subclasses implement `run(docs)` and call `keep` / `drop`.

    `docs_in` is counted for them as documents are pulled from upstream.
    """

    def __init__(self, *, name: str | None = None, exclusion_writer: JsonlWriter | None = None) -> None:
        self.name = name or _snake(type(self).__name__)
        self.stats = StepStats()
        self.exclusion_writer = exclusion_writer

    def run(self, docs: Iterator[Document]) -> Iterator[Document]:
        raise NotImplementedError(f"{type(self).__name__} must implement run(docs)")

    def __call__(self, docs: Iterable[Document]) -> Iterator[Document]:
        try:
            yield from self.run(self._count_in(docs))
        finally:
            if self.exclusion_writer is not None:
                self.exclusion_writer.close()

    def _count_in(self, docs: Iterable[Document]) -> Iterator[Document]:
        for doc in docs:
            self.stats.docs_in += 1
            yield doc

    def keep(self, doc: Document) -> Document:
        self.stats.kept += 1
        return doc

    def drop(self, doc: Document, reason: str) -> None:
        self.stats.dropped[reason] += 1
        source = doc.metadata.get(SOURCE_KEY)
        if source is not None:
            self.stats.dropped_by_source[f"{source}: {reason}"] += 1
        if self.exclusion_writer is not None:
            doc.metadata["drop_reason"] = reason
            doc.metadata["dropped_by"] = self.name
            self.exclusion_writer.write(doc)


class Filter(PipelineStep):
    """Keep or drop each document independently: `filter` returns True, or the reason to drop."""

    def filter(self, doc: Document) -> bool | str:
        raise NotImplementedError(f"{type(self).__name__} must implement filter(doc)")

    def run(self, docs: Iterator[Document]) -> Iterator[Document]:
        for doc in docs:
            verdict = self.filter(doc)
            if verdict is True:
                yield self.keep(doc)
            else:
                self.drop(doc, verdict or self.name)


class CountedStep(PipelineStep):
    """Wrap a plain generator step so it is counted like the others.

    A plain function cannot say why it dropped a document, so the shortfall is counted as
    `dropped["unspecified"]`; a surplus (a splitter) as `created`. Settled when its stream ends.
    """

    def __init__(self, fn: StepFunction, name: str | None = None) -> None:
        super().__init__(name=name or getattr(fn, "name", None) or getattr(fn, "__name__", type(fn).__name__))
        self.fn = fn

    def run(self, docs: Iterator[Document]) -> Iterator[Document]:
        out = 0
        try:
            for doc in self.fn(docs):
                out += 1
                yield doc
        finally:
            self.stats.kept += out
            diff = self.stats.docs_in - self.stats.kept - self.stats.n_dropped + self.stats.created
            if diff > 0:
                self.stats.dropped["unspecified"] += diff
            elif diff < 0:
                self.stats.created += -diff


def as_step(step: Step | StepFunction) -> PipelineStep:
    """Return `step` itself if it already counts, else wrap it in a `CountedStep`."""
    return step if isinstance(step, PipelineStep) else CountedStep(step)


def run_pipeline(
    steps: Sequence[Step | StepFunction],
    docs: Iterable[Document] | None = None,
) -> tuple[Iterator[Document], PipelineStats]:
    """Chain `steps` over `docs` (empty when the first step is a reader).

    Returns the lazy output stream and the stats of this run (each step's stats are reset);
    the stats are complete once the stream is exhausted.
    """
    stream: Iterator[Document] = iter(docs if docs is not None else ())
    stats = PipelineStats()
    several_readers = sum(hasattr(s, "read") and hasattr(s, "source") for s in steps) > 1
    for step in steps:
        counted = as_step(step)
        counted.stats = StepStats()
        name, n = counted.name, 2
        while name in stats.steps:
            name, n = f"{counted.name}#{n}", n + 1
        stats.steps[name] = counted.stats
        if several_readers and hasattr(counted, "source"):
            counted.source = name  # its documents say where they came from: per-source funnels
        stream = counted(stream)
    return stream, stats
