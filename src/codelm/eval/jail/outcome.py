"""Watching one sample run: drain its output, enforce the wall clock, and name the outcome.

``collect`` reads the sample's stdout/stderr while it runs (so it never blocks on a full pipe),
keeps the first ``keep_output_bytes`` of each, SIGKILLs the process group (the whole PID namespace
when the sample is its init) at the deadline, past ``max_output_bytes`` or, given a memory meter
(``accounting``, where no cgroup caps the sample), once the sample's processes together hold more
than its cap, and reaps it via a pidfd. ``verdict`` turns exit status, kill reason, the OOM
counter, the harness markers written by ``child`` before the sample's code runs ("R" = started,
"E" = exec failed) and, for Python source, whether the proof of completion matched the sample's
secret into one of passed / failed / timeout / error.
"""

from __future__ import annotations

import os
import select
import signal
import time

from .accounting import INTERVAL, Meter

_EXIT_GRACE = 0.5  # seconds to keep reading after the sample exited or was killed


def kill(pid: int) -> None:
    """SIGKILL the sample's process group (with a PID namespace: everything in it)."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:  # before setsid() the child is not yet a group leader
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return  # it already exited: nothing left to kill


def read_available(fd: int) -> bytes:
    """Read what a pipe holds without waiting, then close it."""
    os.set_blocking(fd, False)
    chunks = []
    try:
        while True:
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:  # a writer escaped the kill (no PID namespace): take what is there
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks)


def watch(fds: dict[int, str]) -> dict:
    """Everything ``collect`` needs, made before the fork: each page the worker writes while the
    sample lives is copied (copy-on-write), so the worker does as little as possible then."""
    poller = select.poll()
    for fd in fds:
        poller.register(fd, select.POLLIN)
    return {
        "fds": fds,
        "poller": poller,
        "data": {name: bytearray() for name in fds.values()},
        "total": {name: 0 for name in fds.values()},
    }


def collect(pid: int, watched: dict, start: float, step: dict, meter: Meter | None = None) -> dict:
    """Drain the sample's pipes until they close, killing it on timeout, runaway output or, with
    ``meter``, memory past its limit (read every ``accounting.INTERVAL`` s while it lives)."""
    fds, poller, data, total = watched["fds"], watched["poller"], watched["data"], watched["total"]
    keep, limit = int(step["keep_output_bytes"]), int(step["max_output_bytes"])
    deadline = start + float(step["timeout"])
    killed, status, give_up_at, wall, usage = None, None, None, 0.0, None
    next_reading = start + INTERVAL if meter is not None else None
    pidfd = os.pidfd_open(pid) if hasattr(os, "pidfd_open") else None
    if pidfd is not None:
        poller.register(pidfd, select.POLLIN)
    while fds or status is None:
        now = time.monotonic()
        if killed is None and now >= deadline:
            kill(pid)
            killed, give_up_at = "timeout", now + _EXIT_GRACE
        metering = next_reading is not None and killed is None and status is None
        if metering and now >= next_reading:
            if meter.exceeded(pid):
                kill(pid)
                killed, give_up_at = "memory", now + _EXIT_GRACE
            next_reading = time.monotonic() + INTERVAL
        if give_up_at is not None and now >= give_up_at:
            break  # only processes that escaped the kill (no PID namespace) still hold the pipes
        stop = give_up_at if give_up_at is not None else deadline
        if metering and killed is None:
            stop = min(stop, next_reading)
        wait = max(0.0, stop - now) if pidfd is not None else min(0.02, max(0.0, stop - now))
        for fd, _ in poller.poll(wait * 1000 + 1):
            if fd == pidfd:
                poller.unregister(pidfd)
                _, status, usage = os.wait4(pid, 0)
                wall = time.monotonic() - start
                give_up_at = give_up_at or time.monotonic() + _EXIT_GRACE
                continue
            name = fds[fd]
            chunk = os.read(fd, 65536)
            if not chunk:
                poller.unregister(fd)
                os.close(fd)
                del fds[fd]
                continue
            total[name] += len(chunk)
            if len(data[name]) < keep:
                data[name] += chunk[: keep - len(data[name])]
            if killed is None and total["out"] + total["err"] > limit:
                kill(pid)
                killed, give_up_at = "output", time.monotonic() + _EXIT_GRACE
        if pidfd is None and status is None:
            reaped, wait_status, usage = os.wait4(pid, os.WNOHANG)
            if reaped:
                wall = time.monotonic() - start
                status, give_up_at = wait_status, give_up_at or time.monotonic() + _EXIT_GRACE
    for fd in fds:
        os.close(fd)
    if status is None:
        if fds:
            kill(pid)
        _, status, usage = os.wait4(pid, 0)
        wall = time.monotonic() - start
    if pidfd is not None:
        os.close(pidfd)
    return {
        "data": data,
        "total": total,
        "killed": killed,
        "wait_status": status,
        "wall": wall,
        "cpu": usage.ru_utime + usage.ru_stime if usage else 0.0,
        "memory_held": meter.held() if meter is not None else None,
    }


def verdict(c: dict, step: dict) -> dict:
    data, markers = c["data"], c["marker"]
    stdout, stderr = (bytes(data[k]).decode("utf-8", "replace") for k in ("out", "err"))
    truncated = any(c["total"][k] > len(data[k]) for k in ("out", "err"))
    ws, runtime, detail = c["wait_status"], c["wall"], ""
    returncode = -os.WTERMSIG(ws) if os.WIFSIGNALED(ws) else os.WEXITSTATUS(ws)
    if c["killed"] == "timeout":
        status, detail = "timeout", f"wall-clock limit of {step['timeout']:g}s"
    elif c["killed"] == "output":
        status, detail = "failed", f"output limit of {step['max_output_bytes']} bytes exceeded"
    elif c["killed"] == "memory":
        status = "failed"
        detail = (
            f"out of memory: the sample's processes together held {c['memory_held']} bytes, over "
            f"its cap of {step.get('memory_total_bytes')} (killed by per-sample accounting)"
        )
    elif markers.startswith(b"RE"):
        status, detail = "error", markers[2:].decode("utf-8", "replace")
    elif not markers.startswith(b"R"):
        status = "error"
        detail = "the sandbox failed before running the program: " + (stderr.strip()[-2000:] or "no output")
    elif returncode in (-signal.SIGXCPU, -signal.SIGKILL) and c["cpu"] >= step["limits"]["cpu_seconds"]:
        # SIGXCPU at the soft limit; as PID 1 of its namespace the sample ignores that, and the
        # kernel SIGKILLs it at the hard limit one second later. Either way it ran out of CPU time.
        status, detail = "timeout", f"CPU-time limit of {step['limits']['cpu_seconds']}s"
    elif c.get("oom"):
        status = "failed"
        cap = step.get("memory_total_bytes")
        detail = f"out of memory: the sample's processes together exceeded {cap} bytes (OOM kill)"
    elif returncode == 0 and ("argv" in step or c["proved"]):
        status = "passed"
    else:
        status = "failed"
        if returncode < 0:
            detail = f"killed by signal {-returncode} ({signal.strsignal(-returncode)})"
        elif returncode == 0:
            detail = "exited before the program finished"
        else:
            last = stderr.strip().splitlines()[-1:] or [f"exit code {returncode}"]
            detail = last[0][:500]
    return {
        "status": status,
        "returncode": returncode,
        "runtime": runtime,
        "stdout": stdout,
        "stderr": stderr,
        "detail": detail,
        "truncated": truncated,
    }
