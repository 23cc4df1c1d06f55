"""Run a pipeline's shards in local worker processes.

`LocalExecutor(out, workers=N)` runs the units of each phase (see `base`) on a pool of N spawned
processes (spawn, not fork: a forked copy of a process that already started threads, as torch
and tokenizers do, can deadlock). Workers send "n documents written" through a queue that the
driver drains into the progress bars. Each worker asks the kernel to kill it when the driver
dies (Linux `PR_SET_PDEATHSIG`), so `kill -9` of the driver leaves no orphan writing shards; were
one to survive, atomic writes still keep every file whole. With workers=1 the units run in the
driver process, one after the other (simplest to debug).
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing as mp
import queue
import signal
import sys
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any

from codelm.data.executors import tasks
from codelm.data.executors.base import Executor, Job

log = logging.getLogger(__name__)

_QUEUE: Any = None  # the worker's progress queue, set by _init_worker
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    if not sys.platform.startswith("linux"):
        return  # elsewhere an orphan finishes its unit; atomic writes keep the files whole
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        log.warning(
            "prctl(PR_SET_PDEATHSIG) failed (errno %d): workers may outlive a killed driver",
            ctypes.get_errno(),
        )


def _init_worker(progress: Any) -> None:
    global _QUEUE
    _QUEUE = progress
    _die_with_parent()


def _call(job: Job) -> Any:
    fn, args = job
    if fn is tasks.run_shard and _QUEUE is not None:
        return fn(*args, hook=_QUEUE.put)
    return fn(*args)


class LocalExecutor(Executor):
    """Shards on a pool of `workers` local processes (see the module docstring)."""

    kind = "local"
    live_progress = True

    def __init__(self, output_dir: Any, **kwargs: Any) -> None:
        super().__init__(output_dir, **kwargs)
        self._pool: ProcessPoolExecutor | None = None
        self._queue: Any = None

    def run(self, steps: Any) -> Any:
        try:
            return super().run(steps)
        finally:  # one pool per run: spawning workers costs about a second each time
            if self._pool is not None:
                self._pool.shutdown(cancel_futures=True)
                self._pool = None

    def _workers(self) -> ProcessPoolExecutor:
        if self._pool is None:
            ctx = mp.get_context("spawn")
            self._queue = ctx.Queue()
            self._pool = ProcessPoolExecutor(
                self.workers, mp_context=ctx, initializer=_init_worker, initargs=(self._queue,)
            )
        return self._pool

    def _map(self, label: str, jobs: Sequence[Job], task: Any) -> list[Any]:
        if not jobs:
            return []
        if self.workers == 1:
            return [self._run_inline(job, task) for job in jobs]
        pool = self._workers()
        futures: dict[Future[Any], int] = {pool.submit(_call, job): i for i, job in enumerate(jobs)}
        results: dict[int, Any] = {}
        pending = set(futures)
        try:
            while pending:
                done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                self._drain(task)
                for future in done:
                    results[futures[future]] = future.result()  # re-raises a worker's error
                    self.board.shard_done(task)
        except BaseException:
            for future in pending:
                future.cancel()
            raise
        self._drain(task)
        return [results[i] for i in range(len(jobs))]

    def _run_inline(self, job: Job, task: Any) -> Any:
        fn, args = job
        if fn is tasks.run_shard:
            result = fn(*args, hook=lambda n: self.board.docs(task, n))
        else:
            result = fn(*args)
        self.board.shard_done(task)
        return result

    def _drain(self, task: Any) -> None:
        while True:
            try:
                n = self._queue.get_nowait()
            except queue.Empty:
                return
            self.board.docs(task, n)
