"""How a list of steps becomes stages, and where every file of a sharded run lives.

The executor cuts the step list before every `GlobalStep` (exact/near dedup, quality percentile,
repo packing). Stage 0 runs the readers and the per-document steps after them on each shard;
every later stage starts with one global step's `apply` on the previous stage's shard, followed
by the local steps up to the next global step. Shard i of one stage feeds shard i of the next,
so the number of shards is fixed for a run (it is recorded in plan.json and checked on resume).

    OUT/plan.json                              shards, stages, step names, config fingerprint
    OUT/data/shard-00000.jsonl.gz              the output (or .parquet)
    OUT/stages/00-read/shard-00000.jsonl.gz    an intermediate stage's output
    OUT/stages/00-read/shard-00000.done.json   completion marker with the shard's stats
    OUT/stages/01-exact_dedup/summary-00000.npz, decision-00000.npz, decide.done.json
    OUT/excluded/00-shard-00000.jsonl.gz       dropped documents with their reason (opt-in)
    OUT/stats.json                             merged per-step stats and profiles
    OUT/timings.json                           wall time: the one file that differs between reruns
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from codelm.data.document import DataError
from codelm.data.executors.shard_io import FORMATS
from codelm.data.global_step import GlobalStep
from codelm.data.pipeline import PipelineStep, Step, StepFunction, as_step
from codelm.data.readers import Reader


@dataclass
class Stage:
    """One global step's apply (None in stage 0) followed by local steps."""

    index: int
    head: GlobalStep | None
    steps: list[PipelineStep] = field(default_factory=list)

    @property
    def name(self) -> str:
        label = self.head.name if self.head is not None else "read"
        return f"{self.index:02d}-{re.sub(r'[^A-Za-z0-9_.-]', '_', label)}"

    @property
    def step_names(self) -> list[str]:
        return ([self.head.name] if self.head else []) + [s.name for s in self.steps]


def unique_names(steps: list[PipelineStep]) -> None:
    """Give repeated step names a `#2`, `#3` suffix, as `run_pipeline` does within a pipeline."""
    seen: set[str] = set()
    for step in steps:
        name, n = step.name, 2
        while name in seen:
            name, n = f"{step.name}#{n}", n + 1
        step.name = name
        seen.add(name)


def plan_stages(steps: list[Step | StepFunction]) -> list[Stage]:
    """Cut `steps` into stages at every global step; the first step must be a reader."""
    counted = [as_step(s) for s in steps]
    if not counted or not isinstance(counted[0], Reader):
        raise DataError("a sharded run needs a reader as its first step (the executor shards its input)")
    unique_names(counted)
    stages = [Stage(0, None)]
    for step in counted:
        if isinstance(step, GlobalStep) and step.is_global:
            stages.append(Stage(len(stages), step))
        else:
            stages[-1].steps.append(step)
    return stages


@dataclass(frozen=True)
class Layout:
    """Paths of one run under `out`."""

    out: Path
    shards: int
    output_format: str = "jsonl.gz"

    def __post_init__(self) -> None:
        if self.shards < 1:
            raise DataError(f"shards must be >= 1, got {self.shards}")
        if self.output_format not in FORMATS:
            raise DataError(f"output_format must be one of {FORMATS}, got {self.output_format!r}")

    def stage_dir(self, stage: Stage) -> Path:
        return self.out / "stages" / stage.name

    def data(self, stage: Stage, shard: int, final: bool) -> Path:
        if final:
            return self.out / "data" / f"shard-{shard:05d}.{self.output_format}"
        return self.stage_dir(stage) / f"shard-{shard:05d}.jsonl.gz"

    def marker(self, stage: Stage, shard: int) -> Path:
        return self.stage_dir(stage) / f"shard-{shard:05d}.done.json"

    def summary(self, stage: Stage, shard: int) -> Path:
        return self.stage_dir(stage) / f"summary-{shard:05d}.npz"

    def decision(self, stage: Stage, shard: int) -> Path:
        return self.stage_dir(stage) / f"decision-{shard:05d}.npz"

    def decide_marker(self, stage: Stage) -> Path:
        return self.stage_dir(stage) / "decide.done.json"

    def excluded(self, stage: Stage, shard: int) -> Path:
        return self.out / "excluded" / f"{stage.index:02d}-shard-{shard:05d}.jsonl.gz"

    @property
    def plan(self) -> Path:
        return self.out / "plan.json"

    @property
    def timings(self) -> Path:
        return self.out / "timings.json"
