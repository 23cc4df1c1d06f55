"""Per-sample memory accounting: the cap on a sample's total where no memory cgroup can be made.

Without a cgroup (no cgroupfs, a container without delegation, or ``Isolation(memory_cgroup=False)``)
RLIMIT_AS still caps each process, but a sample that forks spreads past it. Here the worker itself
measures, every ``INTERVAL`` seconds while a sample runs (from its wait loop in ``outcome.collect``:
no thread, since the worker forks), the resident memory of all the sample's processes together and
SIGKILLs the sample's PID namespace (its init, so every process in it) once the total passes
``memory_total_bytes``.

What is counted, per process, is ``RssAnon + RssShmem`` from ``/proc/<pid>/status`` (readable
without ptrace rights, which a worker lacks on its non-dumpable samples, so no PSS), plus the
bytes in use on the sample's own /tmp tmpfs (its files, /dev/shm included), as a memory cgroup
charges them. Shared pages count once per process that maps them, so the total errs high: a
forked process still sharing its parent's pages counts them again. The first process of a Python
sample is a fork of the worker, so the limit is the worker's own resident size at the fork plus
the cap, as the cgroup's limit is (``cgroup.Memory.prepare``).

Which processes: with a per-sample PID namespace and the worker's private /proc, every process in
that /proc but the worker (it runs one sample at a time, and orphans stay in the namespace);
otherwise the sample's descendants through ``/proc/<pid>/task/<tid>/children`` (a process that
escaped to another parent is then missed). Limits of the method: a sample can overshoot the cap
by what it allocates within one interval (tens of MB), and one that peaks between two readings
is not caught; RLIMIT_AS per process stays the backstop. Cost: a reading of a five-process sample
takes about 0.3 ms of the worker's CPU, some 1.5% of a core while a sample runs (measured on a
loaded 2-core VM); samples that end within one interval are never read. Stdlib only: the worker
imports it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

INTERVAL = 0.025  # seconds between two readings while a sample runs
_FIELDS = (b"\nRssAnon:", b"\nRssShmem:")  # in kB; zombies and kernel threads have neither


def _read(path: str) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return os.read(fd, 8192)
    finally:
        os.close(fd)


def resident(pid: int | str) -> int:
    """Anonymous plus shared-memory resident bytes of one process; 0 once it is gone or a zombie."""
    try:
        status = _read(f"/proc/{pid}/status")
    except (FileNotFoundError, ProcessLookupError):  # exited between listing and reading
        return 0
    total = 0
    for name in _FIELDS:  # two finds, not a parse of all ~55 lines: this runs 40 times a second
        start = status.find(name)
        if start >= 0:
            total += int(status[start + len(name) : status.index(b"kB", start)])
    return total << 10


def _namespace_pids(pid: int) -> list[str]:
    own = str(os.getpid())
    return [name for name in os.listdir("/proc") if name.isdigit() and name != own]


def _descendants(pid: int) -> list[int]:
    found, stack = [], [pid]
    while stack:
        process = stack.pop()
        found.append(process)
        try:
            threads = os.listdir(f"/proc/{process}/task")
        except FileNotFoundError:  # exited meanwhile; its children now belong to someone else
            continue
        for thread in threads:
            try:
                stack.extend(int(child) for child in _read(f"/proc/{process}/task/{thread}/children").split())
            except (FileNotFoundError, ProcessLookupError):  # the thread ended meanwhile
                continue
    return found


@dataclass
class Meter:
    """Worker side: one reading per ``INTERVAL`` while a sample runs, against its limit."""

    mode: str  # "namespace" (all of the worker's /proc but itself) or "descendants"
    scratch: str | None  # the sample's own tmpfs, whose files count too; None if it is shared
    baseline: int = 0  # the worker's own resident bytes at the fork, which its fork shares
    limit: int = 0
    used: int = 0  # the last reading, in bytes

    @classmethod
    def create(cls, info: dict) -> tuple[Meter | None, str]:
        """The meter this worker can run (``info`` is its isolation report), or (None, why not)."""
        scratch = "/tmp" if info.get("fresh_scratch") else None
        if info.get("pid_namespace") and info.get("private_proc"):
            return cls("namespace", scratch), ""
        if os.path.exists(f"/proc/self/task/{os.getpid()}/children"):
            return cls("descendants", scratch), ""
        return None, "no per-sample memory accounting (/proc shows no process tree)"

    def prepare(self, total: int | None) -> int | None:
        """Call just before the fork: the limit is this worker's resident size plus ``total``."""
        if total is not None:
            self.baseline, self.used = resident("self"), 0
            self.limit = self.baseline + int(total)
        return total

    def reading(self, pid: int) -> int:
        """Bytes the sample whose first process is ``pid`` holds now."""
        pids = _namespace_pids(pid) if self.mode == "namespace" else _descendants(pid)
        used = sum(resident(p) for p in pids)
        if self.scratch is not None:
            fs = os.statvfs(self.scratch)
            used += (fs.f_blocks - fs.f_bfree) * fs.f_frsize
        return used

    def exceeded(self, pid: int) -> bool:
        """Take one reading; True when it is over the limit (the caller kills the sample)."""
        self.used = self.reading(pid)
        return self.used > self.limit

    def held(self) -> int:
        """The sample's share of the last reading: what it holds beyond the worker's own pages."""
        return max(0, self.used - self.baseline)
