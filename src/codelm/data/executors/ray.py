"""Run a pipeline's shards as Ray tasks: the same units, files and results as the local executor.

`RayExecutor(out, workers=N)` connects to a running cluster (`address="auto"` or a URL) or starts
a local one with N CPUs, and runs every unit of a phase (see `base`) as a Ray task of one CPU; the
global `decide` phase runs in the driver. Units read and write OUT directly, so on more than one
machine OUT must be on storage every node sees (NFS, a mounted bucket). The stage list is put in
the object store once per phase, not shipped with every task. Progress advances per finished
shard (workers do not stream document counts back).

Needs `pip install 'codelm[ray]'` (ray; its wheel is about 80 MB, 240 MB installed).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from codelm.data.document import DataError
from codelm.data.executors.base import Executor, Job


def _import_ray() -> Any:
    try:
        import ray
    except ImportError as e:
        raise DataError("the ray executor needs ray: pip install 'codelm[ray]'") from e
    return ray


def _call(fn: Any, stages: Any, args: tuple[Any, ...]) -> Any:
    layout, _, *rest = args
    return fn(layout, stages, *rest)


class RayExecutor(Executor):
    """Shards as Ray tasks on a local or existing cluster (see the module docstring)."""

    kind = "ray"

    def __init__(self, output_dir: str | Path, *, address: str | None = None, **kwargs: Any) -> None:
        super().__init__(output_dir, **kwargs)
        self.address = address
        self._started = False

    def _ray(self) -> Any:
        ray = _import_ray()
        if not ray.is_initialized():
            if self.address:
                ray.init(address=self.address, log_to_driver=False)
            else:
                ray.init(num_cpus=self.workers, include_dashboard=False, log_to_driver=False)
            self._started = True
        return ray

    def _map(self, label: str, jobs: Sequence[Job], task: Any) -> list[Any]:
        if not jobs:
            return []
        ray = self._ray()
        remote = ray.remote(num_cpus=1, max_retries=0)(_call)
        stages_ref = ray.put(jobs[0][1][1])  # every job of a phase carries the same stage list
        refs = [remote.remote(fn, stages_ref, args) for fn, args in jobs]
        index = {ref: i for i, ref in enumerate(refs)}
        results: dict[int, Any] = {}
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                result = ray.get(ref)  # re-raises a task's error (RayTaskError wraps the original)
                results[index[ref]] = result
                if isinstance(result, dict) and "docs_out" in result:
                    self.board.docs(task, result["docs_out"])
                self.board.shard_done(task)
        return [results[i] for i in range(len(jobs))]

    def run(self, steps: Any) -> Any:
        try:
            return super().run(steps)
        finally:
            if self._started:
                _import_ray().shutdown()
                self._started = False
