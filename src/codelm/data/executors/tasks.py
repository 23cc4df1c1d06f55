"""The units of work of a sharded run, as plain functions any executor can ship to a worker.

`run_shard` runs one stage on one shard and `summarize_shard` runs a global step's first phase;
`decide` (the global phase) runs once, in the driver. They take the `Stage` (its steps pickled
along, so each call works on its own copy) and the `Layout`, read their input from the previous
stage's files and write their output atomically, the completion marker last. They are idempotent:
running one twice gives the same files, which is what makes resuming after a crash safe.
"""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from codelm.data.document import Document
from codelm.data.executors.plan import Layout, Stage
from codelm.data.executors.shard_io import (
    commit,
    load_arrays,
    read_docs,
    read_json,
    save_arrays,
    write_docs,
    write_json,
)
from codelm.data.pipeline import PipelineStep, run_pipeline
from codelm.data.profile import Profile
from codelm.data.readers import Reader
from codelm.data.stats import PipelineStats
from codelm.data.writers import JsonlWriter

#: a worker's live-progress hook: called with a number of documents just written
ProgressHook = Callable[[int], None]


def _input(layout: Layout, stages: list[Stage], stage: Stage, shard: int) -> Iterator[Document] | None:
    if stage.index == 0:
        return None
    return read_docs(layout.data(stages[stage.index - 1], shard, final=False))


def _counted(docs: Iterable[Document], hook: ProgressHook | None, every: float = 0.5) -> Iterator[Document]:
    n, last = 0, time.monotonic()
    for doc in docs:
        n += 1
        yield doc
        if hook is not None and time.monotonic() - last >= every:
            hook(n)
            n, last = 0, time.monotonic()
    if hook is not None and n:
        hook(n)


def run_shard(
    layout: Layout,
    stages: list[Stage],
    index: int,
    shard: int,
    write_excluded: bool = False,
    hook: ProgressHook | None = None,
) -> dict[str, Any]:
    """Run stage `index` on `shard`: write its output, then its marker; returns the marker."""
    stage = copy.deepcopy(stages[index])  # a copy per shard: steps keep per-run state
    final = index == len(stages) - 1
    steps: list[PipelineStep] = list(stage.steps)
    for step in steps:
        if isinstance(step, Reader):
            step.rank, step.world_size = shard, layout.shards
    if stage.head is not None:
        summary = load_arrays(layout.summary(stage, shard))
        decision = load_arrays(layout.decision(stage, shard))
        steps.insert(0, stage.head.applier(decision, summary))
    writer, excluded = None, layout.excluded(stage, shard)
    if write_excluded:
        excluded.unlink(missing_ok=True)
        writer = JsonlWriter(
            excluded.with_name(excluded.name.replace(".jsonl.gz", f".tmp-{os.getpid()}.jsonl.gz"))
        )
        for step in steps:
            step.exclusion_writer = writer
    n_readers = 0
    while n_readers < len(steps) and isinstance(steps[n_readers], Reader):
        n_readers += 1
    profile_in, profile_out = Profile(), Profile()
    stream, stats = run_pipeline(steps[:n_readers], _input(layout, stages, stage, shard))
    if stage.index == 0:
        stream = profile_in.watch(stream)
    stream, rest = run_pipeline(steps[n_readers:], stream)
    stats.steps.update(rest.steps)
    if final:
        stream = profile_out.watch(stream)
    n_out = write_docs(
        _counted(stream, hook),
        layout.data(stage, shard, final),
        "jsonl.gz" if not final else layout.output_format,
    )
    if writer is not None:
        writer.close()
        if writer.path.exists():
            commit(writer.path, excluded)
    stats.check()
    marker = {
        "stage": stage.name,
        "shard": shard,
        "docs_out": n_out,
        "stats": stats.to_dict(),
        "profile_in": profile_in.to_dict() if stage.index == 0 else None,
        "profile_out": profile_out.to_dict() if final else None,
    }
    write_json(layout.marker(stage, shard), marker)
    return marker


def summarize_shard(layout: Layout, stages: list[Stage], index: int, shard: int) -> int:
    """Phase 1 of stage `index`'s global step on `shard`: save the summary; returns its rows."""
    stage = stages[index]
    assert stage.head is not None, f"stage {stage.name} has no global step"
    head = copy.deepcopy(stage.head)
    summary = head.summarize(_input(layout, stages, stage, shard) or iter(()))
    save_arrays(layout.summary(stage, shard), summary)
    return len(next(iter(summary.values()))) if summary else 0


def decide(layout: Layout, stages: list[Stage], index: int) -> dict[str, int]:
    """Phase 2 of stage `index`'s global step over all shards: save decisions, then the marker."""
    stage = stages[index]
    assert stage.head is not None, f"stage {stage.name} has no global step"
    head = copy.deepcopy(stage.head)
    summaries = [load_arrays(layout.summary(stage, s)) for s in range(layout.shards)]
    previous = stages[index - 1]
    decisions = head.decide(summaries, lambda s: read_docs(layout.data(previous, s, final=False)))
    for s, decision in enumerate(decisions):
        save_arrays(layout.decision(stage, s), decision)
    counters = {k: int(v) for k, v in getattr(head, "decide_counters", {}).items()}
    write_json(layout.decide_marker(stage), {"stage": stage.name, "counters": counters})
    return counters


def shard_done(layout: Layout, stage: Stage, shard: int) -> bool:
    return layout.marker(stage, shard).is_file()


def stage_stats(layout: Layout, stage: Stage) -> tuple[PipelineStats, Profile, Profile]:
    """Merged stats (with the global step's decide counters) and profiles of a finished stage."""
    stats, p_in, p_out = PipelineStats(), Profile(), Profile()
    for shard in range(layout.shards):
        marker = read_json(layout.marker(stage, shard))
        stats.merge(PipelineStats.from_dict(marker["stats"]))
        p_in.merge(Profile.from_dict(marker.get("profile_in")))
        p_out.merge(Profile.from_dict(marker.get("profile_out")))
    if stage.head is not None:
        counters = read_json(layout.decide_marker(stage)).get("counters", {})
        stats[stage.head.name].counters.update(counters)
    return stats, p_in, p_out


def intermediate_files(layout: Layout, stages: list[Stage]) -> list[Path]:
    """Shard data, summaries and decisions that the finished run no longer needs."""
    files: list[Path] = []
    for stage in stages:
        d = layout.stage_dir(stage)
        files += sorted(d.glob("shard-*.jsonl.gz")) + sorted(d.glob("summary-*.npz"))
        files += sorted(d.glob("decision-*.npz"))
    return files
