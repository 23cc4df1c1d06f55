"""What the sandbox runs and what it reports: programs, resource limits, isolation, verdicts.

Plain frozen dataclasses validated on construction, shared by ``sandbox`` (one program) and
``execution`` (a pool). They carry no benchmark knowledge: a task module turns its problems into
``Program``s (Python source run in a forked interpreter, or a command such as a compiled binary,
with an optional compile step) and reads back ``ExecResult``s.
"""

from __future__ import annotations

import base64
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

GiB, MiB, KiB = 1 << 30, 1 << 20, 1 << 10


class Status(StrEnum):
    """Outcome of one program. Only ``PASSED`` counts as correct."""

    PASSED = "passed"
    FAILED = "failed"  # ran and did not succeed (non-zero exit, exception, signal, output flood)
    TIMEOUT = "timeout"  # wall-clock or CPU-time limit hit: kept apart from failures on purpose
    SYNTAX_ERROR = "syntax_error"  # Python source did not compile
    COMPILE_ERROR = "compile_error"  # the compile step of a compiled-language program failed
    ERROR = "error"  # the harness could not run the program (missing compiler, worker crash)


@dataclass(frozen=True)
class Limits:
    """Per-sample resource limits, applied as rlimits in the sample's own process."""

    timeout: float = 10.0  # wall-clock seconds per step; the process tree is SIGKILLed after it
    cpu_seconds: int | None = None  # RLIMIT_CPU; None: int(timeout) + 2, a backstop behind the wall clock
    memory_bytes: int | None = 4 * GiB  # RLIMIT_AS (virtual address space) per process; None: unlimited
    # All of the sample's processes together (resident memory, its /tmp files included), enforced
    # by the worker's memory cgroup where the machine allows one, else by the worker's per-sample
    # accounting (``ExecResult.memory_cap`` and ``memory_cap_by``)
    memory_total_bytes: int | None = 4 * GiB
    file_size_bytes: int = 64 * MiB  # RLIMIT_FSIZE: largest file the sample may write
    max_processes: int | None = 64  # RLIMIT_NPROC, counted on top of the harness's own processes
    max_open_files: int = 256  # RLIMIT_NOFILE
    keep_output_bytes: int = 64 * KiB  # stdout/stderr kept in the result, per stream
    max_output_bytes: int = 64 * MiB  # total output after which the sample is killed (failed)

    def __post_init__(self) -> None:
        if not self.timeout > 0:
            raise ValueError(f"timeout must be positive, got {self.timeout}")
        for name in ("cpu_seconds", "memory_bytes", "memory_total_bytes", "max_processes"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be positive or None, got {value}")
        for name in ("file_size_bytes", "max_open_files", "keep_output_bytes", "max_output_bytes"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")

    def rlimits(self, timeout: float) -> dict:
        """The rlimit values a step with this wall-clock ``timeout`` runs under."""
        cpu = self.cpu_seconds if self.cpu_seconds is not None else int(timeout) + 2
        return {
            "cpu_seconds": cpu,
            "memory_bytes": self.memory_bytes,
            "nproc": self.max_processes,
            "file_size_bytes": self.file_size_bytes,
            "max_open_files": self.max_open_files,
        }


@dataclass(frozen=True)
class Program:
    """One sample to run: Python ``source`` (forked interpreter) or an ``argv`` command.

    ``files`` are written into the sample's fresh work directory first (which is its cwd, HOME
    and TMPDIR); ``compile_argv`` runs before ``argv`` in the same directory, and its failure is
    reported as ``COMPILE_ERROR``.
    """

    source: str | None = None
    argv: tuple[str, ...] | None = None
    files: Mapping[str, str | bytes] = field(default_factory=dict)
    compile_argv: tuple[str, ...] | None = None
    filename: str = "main.py"  # where ``source`` is written (tracebacks show its lines)
    run_name: str | None = "__main__"  # ``__name__`` for source; None runs it in an empty dict
    exit_ok: bool = True  # source only: may ``sys.exit(0)`` count as success?
    env: Mapping[str, str] = field(default_factory=dict)  # added to the minimal environment
    timeout: float | None = None  # overrides ``Limits.timeout`` for the run step
    compile_timeout: float | None = None  # overrides ``Limits.timeout`` for the compile step
    # Ground truth judged outside the sandbox: a file the program writes in its work directory
    # comes back as ``ExecResult.data`` (only when it passed), and ``verify`` (run in this
    # process on the result, never inside the sandbox) gives the final verdict. The sample
    # cannot reach what ``verify`` compares against.
    result_file: str | None = None
    verify: Callable[[ExecResult], ExecResult] | None = field(default=None, compare=False)
    # Run instead when ``verify`` cannot tell (``ExecResult.undecided``: MBPP+'s digests differ);
    # the checks the first run settled stand
    fallback: Program | None = field(default=None, compare=False, repr=False)
    cost: float = 0.0  # expected seconds, if known: the pool starts the costliest programs first

    def __post_init__(self) -> None:
        for name in ("argv", "compile_argv"):  # accept lists, keep the dataclass immutable
            value = getattr(self, name)
            if value is not None and not isinstance(value, tuple):
                object.__setattr__(self, name, tuple(value))
        if (self.source is None) == (self.argv is None):
            raise ValueError("a Program needs exactly one of source= (Python) or argv= (a command)")
        if self.argv is not None and not self.argv:
            raise ValueError("argv must not be empty")
        if self.compile_argv is not None and self.source is not None:
            raise ValueError("compile_argv only applies to argv programs")
        for timeout in (self.timeout, self.compile_timeout):
            if timeout is not None and not timeout > 0:
                raise ValueError(f"timeouts must be positive, got {timeout}")
        if self.verify is not None and self.result_file is None:
            raise ValueError("verify needs a result_file to judge")
        for name in [*self.files, self.filename, *([self.result_file] if self.result_file else [])]:
            norm = os.path.normpath(name)
            if os.path.isabs(name) or norm == "." or norm.startswith(".."):
                raise ValueError(f"file name {name!r} must be a relative path inside the work directory")


@dataclass(frozen=True)
class ExecResult:
    """Verdict for one program; ``stdout``/``stderr`` are cut at ``Limits.keep_output_bytes``."""

    status: Status
    returncode: int | None  # exit code, or -signal like subprocess; None if it never ran
    runtime: float  # seconds of wall time the sample's process lived
    stdout: str = ""
    stderr: str = ""
    detail: str = ""  # a one-line reason for anything but PASSED
    truncated: bool = False  # some output was dropped
    memory_cap: int | None = None  # bytes all its processes could use together; None: not enforced
    memory_cap_by: str | None = None  # how: "cgroup v2", "cgroup v1" or "accounting" (jail/accounting.py)
    data: bytes | None = None  # the program's ``result_file`` (see ``Program.verify``)
    # Verdicts of other checks of the same sample that this run settled too (``Program.verify`` may
    # judge several on one run's outputs: MBPP+'s base inputs are the first of its plus run's)
    settles: Mapping[str, ExecResult] = field(default_factory=dict, compare=False, repr=False)
    undecided: bool = False  # ``verify`` could not tell: the program's ``fallback`` decides (else an error)

    @property
    def passed(self) -> bool:
        return self.status is Status.PASSED


# Imported once per worker so samples find them loaded. Each module also makes every per-sample fork
# slower (fork copies the worker's page tables), so only what benchmark programs commonly import.
DEFAULT_PRELOAD = (
    "collections",
    "copy",
    "functools",
    "heapq",
    "itertools",
    "math",
    "random",
    "re",
    "string",
    "typing",
)


@dataclass(frozen=True)
class Isolation:
    """How sandbox workers isolate themselves (see ``codelm.eval.sandbox`` for the guarantees)."""

    enabled: bool = True  # False: rlimits and a scrubbed env only (for debugging)
    # True: samples see only /usr (and /bin, /lib* links), a few /etc files, the interpreter and
    # ``keep``; False (or if the kernel refuses): the whole host read-only, minus ``hide``
    view: bool = True
    hide: tuple[str, ...] | None = None  # without a view: covered by empty tmpfs; None: $HOME and /run
    keep: tuple[str, ...] = ()  # also visible to samples (e.g. ~/.rustup toolchains, caches)
    scratch_bytes: int = 256 * MiB  # each sample's fresh /tmp, /dev/shm and work directory (tmpfs)
    max_tasks: int = 512  # processes per worker via its PID namespace's pid_max (binds root too)
    # When codelm runs as root, uid 0 inside the sandbox is this host uid (nobody) instead of root:
    # no root file permissions for samples, and RLIMIT_NPROC applies. None keeps host root.
    root_maps_to: int | None = 65534
    preload: tuple[str, ...] = DEFAULT_PRELOAD  # imported once per worker, before any fork
    require: bool = False  # raise SandboxUnavailable if network or filesystem isolation is off
    # False: make no memory cgroup; the worker caps each sample's total by reading its processes'
    # memory every 25 ms instead (jail/accounting.py). For tests, and machines whose cgroups misbehave.
    memory_cgroup: bool = True

    def __post_init__(self) -> None:
        if self.scratch_bytes < 16 * MiB:
            raise ValueError(f"scratch_bytes must be at least 16 MiB, got {self.scratch_bytes}")
        if self.max_tasks < 301:
            raise ValueError(f"max_tasks must be >= 301 (the kernel's pid_max floor), got {self.max_tasks}")

    def hidden_paths(self) -> list[str]:
        """Directories the worker covers with an empty tmpfs (``~`` expanded)."""
        paths = self.hide if self.hide is not None else (os.path.expanduser("~"), "/run")
        return [os.path.expanduser(p) for p in paths if os.path.expanduser(p) not in ("/", "")]

    def kept_paths(self) -> list[str]:
        """Paths bound back inside hidden directories: the interpreter's, then ``keep``."""
        interpreter = [
            sys.prefix,
            sys.base_prefix,
            sys.exec_prefix,
            os.path.dirname(sys.executable),
            os.path.dirname(os.path.realpath(sys.executable)),
        ]
        return list(dict.fromkeys([*interpreter, *(os.path.expanduser(p) for p in self.keep)]))


def base_env() -> dict[str, str]:
    """The whole environment a sample starts from (the worker adds HOME, TMPDIR and PWD)."""
    path = os.pathsep.join(
        dict.fromkeys([os.path.dirname(sys.executable), "/usr/local/bin", "/usr/bin", "/bin"])
    )
    return {"PATH": path, "LANG": "C.UTF-8"}


def job_message(program: Program, limits: Limits) -> dict:
    """``program`` as the JSON job a sandbox worker executes (see ``jail/worker.py``)."""
    env = {**base_env(), **program.env}
    common = {
        "env": env,
        "keep_output_bytes": limits.keep_output_bytes,
        "max_output_bytes": limits.max_output_bytes,
        "memory_total_bytes": limits.memory_total_bytes,
    }
    timeout = program.timeout or limits.timeout
    run_step = {**common, "timeout": timeout, "limits": limits.rlimits(timeout)}
    files = dict(program.files)
    if program.source is not None:  # the worker writes it to program.filename itself
        run_step.update(
            source=program.source,
            filename=program.filename,
            run_name=program.run_name,
            exit_ok=program.exit_ok,
        )
    else:
        run_step["argv"] = list(program.argv or ())
    job = {
        "run": run_step,
        "files": [
            [name, base64.b64encode(data.encode() if isinstance(data, str) else data).decode()]
            for name, data in files.items()
        ],
    }
    if program.result_file:
        job["result_file"] = program.result_file
    if program.compile_argv:
        compile_timeout = program.compile_timeout or limits.timeout
        job["compile"] = {
            **common,
            "argv": list(program.compile_argv),
            "timeout": compile_timeout,
            "limits": limits.rlimits(compile_timeout),
        }
    return job
