"""One memory cgroup per sandbox worker, so a sample's processes are capped together.

RLIMIT_AS caps each process; a sample that forks spreads past it. The parent
(``codelm.eval.worker``) makes a child cgroup of its own for every worker (cgroup v2 when its
hierarchy has the memory controller, else the v1 memory hierarchy), moves the worker into it
and hands the worker open descriptors of the limit, usage and OOM-event files (a worker in its
own mount namespace cannot reach ``/sys`` afterwards). A worker runs one sample at a time, so
its cgroup holds the worker plus that sample: before each sample the worker sets the limit to
its own usage at start-up plus the sample's ``memory_total_bytes``, and after it reads the OOM
kill counter. At the limit the kernel kills the process with the most memory, which is the
sample's (the worker is a few tens of MB; it also asks to be spared, ``oom_score_adj`` -1000,
where it has CAP_SYS_RESOURCE), and PID 1 of a sample's namespace takes the rest with it.
Where no cgroup can be made, ``accounting`` caps a sample's total instead.
Stdlib only: the worker imports this module too.
"""

from __future__ import annotations

import errno
import os
import time
from dataclasses import dataclass

_V1_ROOT = "/sys/fs/cgroup/memory"
_V2_ROOTS = ("/sys/fs/cgroup", "/sys/fs/cgroup/unified")
_FILES = {  # kind -> (limit, usage, events, swap limit or "")
    "v2": ("memory.max", "memory.current", "memory.events", "memory.swap.max"),
    "v1": (
        "memory.limit_in_bytes",
        "memory.usage_in_bytes",
        "memory.oom_control",
        "memory.memsw.limit_in_bytes",
    ),
}


def _own_path(controller: str) -> str | None:
    """This process's cgroup path in the hierarchy with ``controller`` ("" for v2)."""
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, names, path = line.rstrip("\n").split(":", 2)
            if (controller in names.split(",")) if controller else names == "":
                return path
    return None


def _v2_parent() -> str | None:
    path = _own_path("")
    for root in _V2_ROOTS:
        directory = root + (path or "")
        try:
            with open(os.path.join(directory, "cgroup.controllers")) as f:
                if "memory" in f.read().split():
                    with open(os.path.join(directory, "cgroup.subtree_control"), "w") as g:
                        g.write("+memory")  # refused when this cgroup also holds processes
                    return directory
        except OSError:
            continue  # not this root, or not delegated to us: try the next, then v1
    return None


class WorkerCgroup:
    """Parent side: the cgroup of one worker (``create`` returns None where none can be made)."""

    def __init__(self, kind: str, path: str) -> None:
        self.kind, self.path = kind, path
        names = _FILES[kind]
        self.fds = {
            "limit": os.open(os.path.join(path, names[0]), os.O_WRONLY | os.O_CLOEXEC),
            "usage": os.open(os.path.join(path, names[1]), os.O_RDONLY | os.O_CLOEXEC),
            "events": os.open(os.path.join(path, names[2]), os.O_RDONLY | os.O_CLOEXEC),
        }
        swap = os.path.join(path, names[3])
        if os.path.exists(swap):
            self.fds["swap"] = os.open(swap, os.O_WRONLY | os.O_CLOEXEC)

    @classmethod
    def create(cls, name: str) -> tuple[WorkerCgroup | None, str]:
        """A new cgroup below this process's own; (None, why) when the machine does not allow it."""
        parent, kind = _v2_parent(), "v2"
        if parent is None:
            own = _own_path("memory")
            parent, kind = (_V1_ROOT + own if own is not None else None), "v1"
        if parent is None or not os.path.isdir(parent):
            return None, "no memory cgroup hierarchy is visible"
        path = os.path.join(parent, name)
        try:
            os.mkdir(path)
            return cls(kind, path), ""
        except OSError as exc:
            if os.path.isdir(path):
                os.rmdir(path)
            return None, f"cannot create a memory cgroup in {parent} ({exc.strerror})"

    def add(self, pid: int) -> None:
        with open(os.path.join(self.path, "cgroup.procs"), "w") as f:
            f.write(str(pid))

    def config(self) -> dict:
        """What the worker needs (descriptors it inherits, see ``Memory.from_config``)."""
        return {"kind": self.kind, **self.fds}

    def remove(self) -> None:
        """Close the descriptors and delete the cgroup once its processes are gone."""
        for fd in self.fds.values():
            os.close(fd)
        self.fds = {}
        deadline = time.monotonic() + 5
        while True:
            try:
                os.rmdir(self.path)
                return
            except OSError as exc:  # EBUSY while the killed worker's processes are being reaped
                if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)


@dataclass
class Memory:
    """Worker side: set the limit per sample, read usage and the OOM kill counter."""

    kind: str
    limit_fd: int
    usage_fd: int
    events_fd: int
    swap_fd: int | None = None
    baseline: int = 0  # the worker's own usage, measured once it is isolated
    limit: int | None = None
    kills: int = 0

    @classmethod
    def from_config(cls, config: dict) -> Memory:
        fds = (config["limit"], config["usage"], config["events"])
        return cls(config["kind"], *fds, swap_fd=config.get("swap"))

    def usage(self) -> int:
        return int(os.pread(self.usage_fd, 64, 0))

    def _kills(self) -> int:
        for line in os.pread(self.events_fd, 4096, 0).decode().splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
        return 0

    def prepare(self, total: int | None) -> int | None:
        """Cap the next sample's processes together at ``total`` bytes (None: no cap); returns it."""
        limit = None if total is None else self.baseline + int(total)
        if limit != self.limit:
            text = (str(limit) if limit is not None else ("max" if self.kind == "v2" else "-1")).encode()
            # v1 wants memsw >= the limit at all times: raise it first, lower it last
            raising = limit is None or (self.limit is not None and limit > self.limit)
            for fd in [self.swap_fd, self.limit_fd] if raising else [self.limit_fd, self.swap_fd]:
                if fd is not None:
                    os.pwrite(fd, text, 0)
            self.limit = limit
        self.kills = self._kills()
        return total

    def oom_killed(self) -> bool:
        """Did the OOM killer act in this cgroup since ``prepare``?"""
        return self._kills() > self.kills
