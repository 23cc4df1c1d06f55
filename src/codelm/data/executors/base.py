"""What every executor does: plan stages, skip finished work, run the rest, merge the stats.

An executor is given the list of steps, never run by them. `Executor.run(steps)` cuts the list into
stages (`plan.plan_stages`), then for each stage in order:

1. if it starts with a global step: summarize every shard that has no summary yet (in parallel),
   then, unless its `decide.done.json` exists, decide over all summaries (in the driver);
2. run every shard that has no completion marker yet (in parallel).

Everything written is atomic and every unit is idempotent (see `shard_io`, `tasks`), so a run
killed at any point and started again with `resume=True` redoes only the unfinished units and
ends with the same files. Subclasses only say how to run a batch of units: `_map`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from codelm.data.document import DataError
from codelm.data.executors import tasks
from codelm.data.executors.plan import Layout, Stage, plan_stages
from codelm.data.executors.progress import Board
from codelm.data.executors.shard_io import read_json, remove_stale_tmp, write_json
from codelm.data.pipeline import Step, StepFunction
from codelm.data.profile import Profile
from codelm.data.stats import PipelineStats

log = logging.getLogger(__name__)

#: a unit of work: (function, positional args); functions are `tasks.run_shard` and friends
Job = tuple[Callable[..., Any], tuple[Any, ...]]


class Executor:
    """Run a list of steps over `shards` shards into `output_dir` (see the module docstring).

    shards: fixed for a run, whatever the number of workers; more shards = finer resume.
    output_format: "jsonl.gz" or "parquet" for the final output (intermediate stages: JSONL.gz).
    write_excluded: write every dropped document, with its reason, under OUT/excluded/.
    resume: continue a run in `output_dir` (else a non-empty run directory is an error).
    keep_intermediate: keep stage outputs, summaries and decisions after a successful run.
    fingerprint: identifies the configuration; resuming with a different one is refused.
    """

    kind = "base"
    live_progress = False  # True when workers report documents as they go

    def __init__(
        self,
        output_dir: str | Path,
        *,
        shards: int = 8,
        workers: int = 1,
        output_format: str = "jsonl.gz",
        write_excluded: bool = False,
        resume: bool = False,
        keep_intermediate: bool = False,
        progress: bool = False,
        fingerprint: str | None = None,
    ) -> None:
        if workers < 1:
            raise DataError(f"workers must be >= 1, got {workers}")
        self.layout = Layout(Path(output_dir), shards, output_format)
        self.workers = workers
        self.write_excluded = write_excluded
        self.resume = resume
        self.keep_intermediate = keep_intermediate
        self.board = Board(progress)
        self.fingerprint = fingerprint
        self.skipped: list[str] = []  # units found finished (resume), for logs and tests

    # -- subclass hook ----------------------------------------------------------------------------
    def _map(self, label: str, jobs: Sequence[Job], task: Any) -> list[Any]:
        """Run `jobs` (possibly in parallel) and return their results in order."""
        raise NotImplementedError

    # -- the run --------------------------------------------------------------------------------
    def run(self, steps: list[Step | StepFunction]) -> PipelineStats:
        stages = plan_stages(steps)
        self._prepare(stages)
        start = time.time()
        with self.board:
            for stage in stages:
                self._run_stage(stages, stage)
        stats, profiles = self._collect(stages)
        stats.check()
        document = {
            **stats.to_dict(),
            "executor": self.kind,
            "shards": self.layout.shards,
            "workers": self.workers,
            "stages": [s.name for s in stages],
            "output": str(self.layout.out / "data"),
            "profile": {k: p.to_dict() for k, p in profiles.items()},
        }
        write_json(self.layout.out / "stats.json", document)
        # the only wall-clock figure of a run, kept apart so every other output is reproducible
        write_json(self.layout.timings, {"wall_time_s": round(time.time() - start, 3)})
        if not self.keep_intermediate:
            for path in tasks.intermediate_files(self.layout, stages):
                path.unlink(missing_ok=True)
        return stats

    def _plan_record(self, stages: list[Stage]) -> dict[str, Any]:
        return {
            "shards": self.layout.shards,
            "output_format": self.layout.output_format,
            "stages": [{"name": s.name, "steps": s.step_names} for s in stages],
            "fingerprint": self.fingerprint,
        }

    def _prepare(self, stages: list[Stage]) -> None:
        out, record = self.layout.out, self._plan_record(stages)
        if self.layout.plan.is_file():
            if not self.resume:
                raise DataError(
                    f"{out} already holds a run (plan.json): continue it with --resume "
                    "(resume=True in Python), replace it with --overwrite, or choose another output directory"
                )
            old = read_json(self.layout.plan)
            if old != record:
                raise DataError(
                    f"cannot resume {out}: it was started with another plan "
                    f"(was {json.dumps(old)}, now {json.dumps(record)})"
                )
        elif out.is_dir() and any(out.iterdir()):
            raise DataError(f"{out} is not empty and holds no run (no plan.json): choose an empty directory")
        out.mkdir(parents=True, exist_ok=True)
        write_json(self.layout.plan, record)
        for d in [out / "data", out / "excluded", *(self.layout.stage_dir(s) for s in stages)]:
            remove_stale_tmp(d)

    def _pending(self, done: Callable[[int], bool], what: str) -> list[int]:
        todo = [s for s in range(self.layout.shards) if not done(s)]
        if len(todo) < self.layout.shards:
            self.skipped.append(f"{what}: {self.layout.shards - len(todo)} shard(s) already done")
            self.board.log(f"resume: {self.skipped[-1]}")
        return todo

    def _run_stage(self, stages: list[Stage], stage: Stage) -> None:
        n, layout = self.layout.shards, self.layout
        if all(tasks.shard_done(layout, stage, s) for s in range(n)):
            # finished: its global phases are not needed again (their inputs may be deleted)
            self.skipped.append(f"{stage.name}: all {n} shards done")
            self.board.log(f"resume: {self.skipped[-1]}")
            return
        if stage.head is not None:
            todo = self._pending(lambda s: layout.summary(stage, s).is_file(), f"{stage.name} summarize")
            task = self.board.phase(f"{stage.name}: summarize", n, n - len(todo))
            self._map(
                "summarize", [(tasks.summarize_shard, (layout, stages, stage.index, s)) for s in todo], task
            )
            if layout.decide_marker(stage).is_file():
                self.skipped.append(f"{stage.name} decide")
            else:
                task = self.board.phase(f"{stage.name}: decide", 1)
                tasks.decide(layout, stages, stage.index)
                self.board.shard_done(task)
        todo = self._pending(lambda s: tasks.shard_done(layout, stage, s), f"{stage.name} run")
        task = self.board.phase(f"{stage.name}: run {len(stage.step_names)} step(s)", n, n - len(todo))
        kwargs = (self.write_excluded,)
        self._map("run", [(tasks.run_shard, (layout, stages, stage.index, s, *kwargs)) for s in todo], task)

    def _collect(self, stages: list[Stage]) -> tuple[PipelineStats, dict[str, Profile]]:
        merged = PipelineStats()
        profiles = {"input": Profile(), "output": Profile()}
        for stage in stages:
            stats, p_in, p_out = tasks.stage_stats(self.layout, stage)
            merged.steps.update(stats.steps)
            profiles["input"].merge(p_in)
            profiles["output"].merge(p_out)
        return merged, profiles


def fingerprint_of(obj: Any) -> str:
    """A short stable hash of a JSON-able configuration."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def remove_run(output_dir: str | Path) -> None:
    """Delete a previous run directory (refuses a directory that is not a run)."""
    out = Path(output_dir)
    if out.exists():
        if not (out / "plan.json").is_file():
            raise DataError(f"refusing to delete {out}: it holds no plan.json, so it is not a data run")
        shutil.rmtree(out)
