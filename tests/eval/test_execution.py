"""The execution pool: ordering, mixed outcomes, recovery from a lost worker, timeout calibration."""

from __future__ import annotations

import os
import signal
import threading

import psutil
import pytest

from codelm.eval.execution import ExecutionPool, calibrate_timeouts, status_counts
from codelm.eval.program import Limits, Program, Status
from codelm.eval.sandbox import CodeExecutionNotAllowed

from .conftest import assert_no_strays


@pytest.fixture(scope="module")
def pool():
    with ExecutionPool(2, Limits(timeout=10), allow_code_execution=True) as p:
        p.start()
        yield p
    assert_no_strays()


def test_pool_needs_opt_in():
    with pytest.raises(CodeExecutionNotAllowed):
        ExecutionPool(2)


def test_map_keeps_input_order_and_separates_statuses(pool):
    programs = [Program(source=f"print({i})") for i in range(20)]
    programs += [
        Program(source="raise SystemExit(2)"),
        Program(source="while True: pass", timeout=0.5),
        Program(source="def ("),
        Program(argv=("no-such-binary-here",)),
    ]
    results = pool.map(programs)
    assert [r.stdout for r in results[:20]] == [f"{i}\n" for i in range(20)]
    assert [r.status for r in results[20:]] == [
        Status.FAILED,
        Status.TIMEOUT,
        Status.SYNTAX_ERROR,
        Status.ERROR,
    ]
    counts = status_counts(results)
    assert counts == {
        "passed": 20,
        "failed": 1,
        "timeout": 1,
        "syntax_error": 1,
        "compile_error": 0,
        "error": 1,
    }


def test_imap_unordered_can_stop_early(pool):
    seen = []
    for index, result in pool.imap_unordered(Program(source=f"print({i})") for i in range(10)):
        seen.append(index)
        assert result.stdout == f"{index}\n"
        if len(seen) == 3:
            break
    assert pool.map([Program(source="print('again')")])[0].stdout == "again\n"


def test_costliest_first_and_nothing_queued_behind_a_long_program(monkeypatch):
    """Programs that say what they cost start longest first, and a worker running one expected to
    take long gets no second job queued behind it (it would be captive there while another worker
    ran dry); short ones still keep two in flight, so a worker never waits for its thread. One
    worker, so that the order of its submits is the order of the queue."""
    import collections

    from codelm.eval import execution

    long = execution._PIPELINE_MAX_COST * 4
    costs = [0.0] * 10 + [long, 0.0, long / 2, long / 3] + [0.0] * 10
    submitted: list[float] = []
    queued_behind: list[tuple[float, ...]] = []  # the costs in flight at each submit
    in_flight: collections.deque = collections.deque()
    with ExecutionPool(1, Limits(timeout=10), allow_code_execution=True) as pool:
        worker = pool._workers[0]

        def submit(program, limits, _submit=worker.submit):
            queued_behind.append(tuple(p.cost for p in in_flight))
            submitted.append(program.cost)
            in_flight.append(program)
            return _submit(program, limits)

        def collect(_collect=worker.collect):
            result = _collect()
            in_flight.popleft()
            return result

        monkeypatch.setattr(worker, "submit", submit)
        monkeypatch.setattr(worker, "collect", collect)
        results = pool.map([Program(source=f"print({i})", cost=cost) for i, cost in enumerate(costs)])
    assert [r.stdout for r in results] == [f"{i}\n" for i in range(len(costs))]
    assert submitted == sorted(costs, reverse=True)  # longest first, the rest in their order
    assert queued_behind[:3] == [(), (), ()]  # nothing queued behind the three long ones
    assert all(cost <= execution._PIPELINE_MAX_COST for ahead in queued_behind for cost in ahead)
    assert any(ahead for ahead in queued_behind)  # short programs are still pipelined
    assert_no_strays()


def _kill_workers_running_a_sample(pool: ExecutionPool, times: int, stop: threading.Event) -> None:
    """SIGKILL the pool's worker whenever a sample is running, ``times`` times."""
    killed = 0
    while killed < times and not stop.is_set():
        worker_pid = pool._workers[0].pid
        try:
            running = worker_pid and any(
                p.name() == "codelm-sample" for p in psutil.Process(worker_pid).children(recursive=True)
            )
        except psutil.NoSuchProcess:
            running = False
        if running:
            os.killpg(worker_pid, signal.SIGKILL)
            killed += 1
        stop.wait(0.05)


def test_lost_worker_gives_error_after_one_retry_and_the_pool_recovers():
    with ExecutionPool(1, allow_code_execution=True) as pool:
        pool.start()
        worker_pid = pool._workers[0].pid
        # Samples cannot reach their worker (see test_sandbox_hostile), but an operator or the OOM
        # killer can: the sample is run once more; lost twice, it comes back as ERROR, never as a
        # verdict, and the queued one still runs.
        stop = threading.Event()
        killer = threading.Thread(target=_kill_workers_running_a_sample, args=(pool, 2, stop))
        killer.start()
        try:
            programs = [Program(source="import time\ntime.sleep(30)"), Program(source="print('queued')")]
            results = pool.map(programs, Limits(timeout=60))
        finally:
            stop.set()
            killer.join()
        assert results[0].status == Status.ERROR and "worker lost" in results[0].detail
        assert "after one retry" in results[0].detail
        assert results[1].status == Status.PASSED and results[1].stdout == "queued\n"
        assert pool._workers[0].pid != worker_pid
    assert_no_strays()


def test_a_lost_worker_once_costs_nothing_but_time():
    with ExecutionPool(1, allow_code_execution=True) as pool:
        pool.start()
        stop = threading.Event()
        killer = threading.Thread(target=_kill_workers_running_a_sample, args=(pool, 1, stop))
        killer.start()
        try:
            result = pool.map([Program(source="import time\ntime.sleep(1)\nprint('done')")])[0]
        finally:
            stop.set()
            killer.join()
        assert result.status == Status.PASSED and result.stdout == "done\n", result
    assert_no_strays()


def test_calibrated_timeouts_scale_with_the_reference(pool):
    references = {"fast": Program(source="x = 1"), "slow": Program(source="import time\ntime.sleep(0.3)")}
    timeouts = calibrate_timeouts(pool, references, floor=0.5, factor=4.0)
    assert timeouts["fast"] >= 0.5  # the floor wins for a fast reference
    assert timeouts["slow"] >= 4.0 * 0.3  # never below factor x the reference's runtime
    with pytest.raises(ValueError):
        calibrate_timeouts(pool, references, floor=0)


def test_failing_reference_is_logged(pool, caplog):
    timeouts = calibrate_timeouts(pool, {"broken": Program(source="raise ValueError")}, floor=1.0)
    assert timeouts == {"broken": 1.0}
    assert "did not pass" in caplog.text
