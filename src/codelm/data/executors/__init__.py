"""Executors: run a list of steps over shards, in local processes or on Ray, resumably.

    from codelm.data.executors import LocalExecutor
    stats = LocalExecutor("runs/x", shards=8, workers=2).run(steps)

`base` (stages, resume, stats), `plan` (stages and file layout), `tasks` (the units of work),
`shard_io` (atomic files), `local` (process pool), `ray` (Ray tasks), `progress` (rich bars).
"""

from __future__ import annotations

from typing import Any

from codelm.data.document import DataError
from codelm.data.executors.base import Executor, fingerprint_of, remove_run
from codelm.data.executors.local import LocalExecutor
from codelm.data.executors.plan import Layout, Stage, plan_stages

EXECUTORS = ("local", "ray")


def make_executor(kind: str, output_dir: str, **kwargs: Any) -> Executor:
    """`local` or `ray` executor; Ray is imported only when a Ray run starts."""
    if kind == "local":
        kwargs.pop("address", None)
        return LocalExecutor(output_dir, **kwargs)
    if kind == "ray":
        from codelm.data.executors.ray import RayExecutor

        return RayExecutor(output_dir, **kwargs)
    raise DataError(f"unknown executor {kind!r}; choose one of {EXECUTORS}")


__all__ = [
    "EXECUTORS",
    "Executor",
    "Layout",
    "LocalExecutor",
    "Stage",
    "fingerprint_of",
    "make_executor",
    "plan_stages",
    "remove_run",
]
