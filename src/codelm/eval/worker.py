"""Parent-side handle on one sandbox worker process: start it, feed it jobs, replace it if it dies.

The worker (``jail/worker.py``) is a fresh interpreter started with an empty environment that
isolates itself once and then runs one job per request, each in a new child process. Jobs can be
pipelined (``submit`` ahead, ``collect`` in order) so the worker never idles while this process
is busy; results always come back in submission order. Also home of the execution opt-in gate.
"""

from __future__ import annotations

import base64
import collections
import dataclasses
import fcntl
import logging
import os
import select
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from .jail import protocol
from .jail.cgroup import WorkerCgroup
from .program import ExecResult, Isolation, Limits, Program, Status, base_env, job_message

log = logging.getLogger(__name__)


class CodeExecutionNotAllowed(PermissionError):
    """Raised when code execution was requested without the explicit opt-in."""


class SandboxUnavailable(RuntimeError):
    """A worker could not start, or lacks isolation that ``Isolation(require=True)`` demands."""


def require_opt_in(allow_code_execution: bool) -> None:
    """Refuse unless the caller explicitly opted in to executing untrusted code."""
    if allow_code_execution is not True:
        raise CodeExecutionNotAllowed(
            "Refusing to execute model-generated code: pass --allow-code-execution on the command line "
            "(allow_code_execution=True from Python) once you have read what the sandbox protects "
            "against in codelm/eval/sandbox.py and checked `sandbox_info()` on this machine."
        )


# The worker loads ``jail`` under a private name, so ``import codelm`` (and whatever the package
# imports) never happens in the process every sample is forked from.
_BOOTSTRAP = """\
import importlib.util, os, sys
init = sys.argv[1]
spec = importlib.util.spec_from_file_location(
    "_codelm_jail", init, submodule_search_locations=[os.path.dirname(init)])
module = importlib.util.module_from_spec(spec)
sys.modules["_codelm_jail"] = module
spec.loader.exec_module(module)
from _codelm_jail.worker import main
sys.dont_write_bytecode = True  # only the jail's own modules get cached bytecode, not samples'
main()
sys.stderr.flush()
os._exit(0)  # skip interpreter finalization: nothing is left to clean up, and it costs milliseconds
"""
_JAIL_INIT = Path(__file__).with_name("jail") / "__init__.py"
_STARTUP_TIMEOUT = 60.0
_REPLY_MARGIN = 30.0  # seconds a worker may take beyond a program's own timeouts
_PIPE_BYTES = 1 << 20  # asked-for pipe capacity: a queued job and a large reply both fit
_warned: set[str] = set()


class _Job:
    __slots__ = ("frame", "budget", "sent", "verify")

    def __init__(self, frame: bytes, budget: float, verify: Callable[[ExecResult], ExecResult] | None):
        self.frame, self.budget, self.sent, self.verify = frame, budget, False, verify


class SandboxWorker:
    """One pre-started, isolated worker process; each program runs in a fresh child of it.

    A worker that dies or stops answering is killed and replaced; the program it was running gets
    an ``ERROR`` verdict rather than a wrong pass/fail, and queued programs go to the new worker.
    """

    def __init__(self, isolation: Isolation | None = None, *, allow_code_execution: bool = False) -> None:
        self.isolation = isolation or Isolation()
        self.allow_code_execution = allow_code_execution
        self.info: dict = {}
        self._proc: subprocess.Popen | None = None
        self._stderr = None
        self._queue: collections.deque[_Job] = collections.deque()
        self._pipeline_bytes = 0  # largest frame that may wait in the pipe while a job runs
        self._cgroup: WorkerCgroup | None = None
        self._launches = 0

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def launch(self) -> None:
        """Start the worker process without waiting for it to be ready (``start`` waits)."""
        if self._proc is not None:
            return
        iso = self.isolation
        self._stderr = tempfile.TemporaryFile()
        self._launches += 1
        if iso.memory_cgroup:
            cgroup, why = WorkerCgroup.create(f"codelm-{os.getpid()}-{id(self):x}-{self._launches}")
        else:  # the caller chose the worker's own accounting (no problem to report)
            cgroup, why = None, ""
        self._cgroup = cgroup
        self._proc = subprocess.Popen(
            [sys.executable, "-E", "-s", "-c", _BOOTSTRAP, str(_JAIL_INIT)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            bufsize=0,
            env={"PATH": base_env()["PATH"], "LANG": "C.UTF-8"},
            cwd="/",
            start_new_session=True,
            pass_fds=tuple(cgroup.fds.values()) if cgroup else (),
        )
        capacity = min(_pipe_size(self._proc.stdin.fileno()), _pipe_size(self._proc.stdout.fileno()))
        self._pipeline_bytes = capacity // 2
        memory = None
        if cgroup is not None:
            try:  # the worker waits for its config before forking anything, so all samples land in it
                cgroup.add(self._proc.pid)
                memory = cgroup.config()
            except OSError as exc:
                why = f"cannot move the worker into {cgroup.path} ({exc.strerror})"
        config = {
            "isolate": iso.enabled,
            "view": iso.view,
            "hide": iso.hidden_paths(),
            "keep": iso.kept_paths(),
            "scratch_bytes": iso.scratch_bytes,
            "preload": list(iso.preload),
            "max_tasks": iso.max_tasks,
            "map_root_to": iso.root_maps_to,
            "memory": memory,
            "memory_problem": why if memory is None else "",
        }
        try:
            protocol.write_frame(self._proc.stdin.fileno(), config)
        except OSError as exc:
            tail = self._kill()
            raise SandboxUnavailable(f"sandbox worker failed to start: {exc}\n{tail}") from exc

    def start(self) -> dict:
        """Start the worker (if not running), wait until it is isolated, and say how."""
        if self._proc is not None and self.info:
            return self.info
        self.launch()
        try:
            ready = self._read_reply(_STARTUP_TIMEOUT)
        except (OSError, protocol.ProtocolError, TimeoutError) as exc:
            tail = self._kill()
            raise SandboxUnavailable(f"sandbox worker failed to start: {exc}\n{tail}") from exc
        self.info = ready["info"]
        self._check_isolation()
        return self.info

    def _check_isolation(self) -> None:
        problems = "; ".join(self.info.get("problems", []))
        degraded = not (self.info.get("network_isolated") and self.info.get("readonly_root"))
        if degraded and self.isolation.require:
            self.close()
            raise SandboxUnavailable(f"sandbox isolation required but unavailable: {problems}")
        if problems and problems not in _warned:
            _warned.add(problems)
            log.warning("codelm sandbox: %s", problems)

    def run(self, program: Program, limits: Limits | None = None) -> ExecResult:
        """Execute ``program`` in a fresh sandboxed process and return its verdict."""
        if self._queue:
            raise RuntimeError("collect() the submitted programs before calling run()")
        self.submit(program, limits)
        return self.collect()

    def submit(self, program: Program, limits: Limits | None = None) -> None:
        """Queue ``program``; it is sent at once if that cannot block this process."""
        require_opt_in(self.allow_code_execution)
        job = job_message(program, limits or Limits())
        budget = sum(step["timeout"] for step in (job["run"], job.get("compile")) if step) + _REPLY_MARGIN
        entry = _Job(protocol.encode_frame(job), budget, program.verify)
        self._queue.append(entry)
        if len(self._queue) == 1:
            self._deliver(entry)
        elif (
            all(j.sent for j in self._queue if j is not entry)
            and len(entry.frame) <= self._pipeline_bytes
            and self._proc is not None
            and self._proc.poll() is None
        ):
            try:  # fits in the pipe, so at worst this waits for the worker to read the job before
                protocol.write_all(self._proc.stdin.fileno(), entry.frame)
                entry.sent = True
            except BrokenPipeError:
                log.debug("worker gone; the job is re-sent when it reaches the head of the queue")

    def collect(self) -> ExecResult:
        """Wait for the verdict of the oldest submitted program."""
        if not self._queue:
            raise RuntimeError("no program was submitted")
        head = self._queue[0]
        if not head.sent:
            self._deliver(head)
        try:
            reply = self._read_reply(head.budget)
        except (OSError, protocol.ProtocolError, TimeoutError) as exc:
            tail = self._kill()
            self._queue.popleft()
            for entry in self._queue:  # they went to the dead worker: send them to the next one
                entry.sent = False
            result = ExecResult(Status.ERROR, None, 0.0, detail=f"sandbox worker lost: {exc}; {tail}"[:2000])
        else:
            self._queue.popleft()
            data = reply.get("data")
            result = ExecResult(
                status=Status(reply["status"]),
                returncode=reply["returncode"],
                runtime=reply["runtime"],
                stdout=reply["stdout"],
                stderr=reply["stderr"],
                detail=reply["detail"],
                truncated=reply["truncated"],
                memory_cap=reply.get("memory_cap"),
                memory_cap_by=reply.get("memory_cap_by"),
                data=base64.b64decode(data) if data is not None else None,
            )
            if head.verify is not None and result.passed:
                result = _verified(head.verify, result)
        if self._queue and not self._queue[0].sent:
            self._deliver(self._queue[0])
        return result

    def _deliver(self, entry: _Job) -> None:
        """Send the job at the head of the queue, replacing a worker found dead before it started."""
        for attempt in (1, 2):
            if self._proc is not None and self._proc.poll() is not None:
                log.warning("sandbox worker had exited (%s); starting a new one", self._kill() or "no output")
            self.start()
            try:
                protocol.write_all(self._proc.stdin.fileno(), entry.frame)
                entry.sent = True
                return
            except BrokenPipeError:
                tail = self._kill()  # reaps it, so the next attempt starts a new worker
                if attempt == 2:
                    raise SandboxUnavailable(f"sandbox worker exits on start: {tail}") from None
                log.warning("sandbox worker had exited (%s); starting a new one", tail or "no output")

    def _read_reply(self, timeout: float) -> dict:
        fd = self._proc.stdout.fileno()
        ready, _, _ = select.select([fd], [], [], timeout)
        if not ready:
            raise TimeoutError(f"no answer from the sandbox worker within {timeout:.0f}s")
        reply = protocol.read_frame(fd)
        if reply is None:
            raise protocol.ProtocolError("the sandbox worker exited")
        return reply

    def _stderr_tail(self) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        text = self._stderr.read()[-4000:].decode("utf-8", "replace").strip()
        self._stderr.close()
        self._stderr = None
        return text

    def _kill(self) -> str:
        """Kill the worker's process group (its samples die with it); return its stderr tail."""
        if self._proc is not None:
            try:
                os.killpg(self._proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                log.debug("sandbox worker %d already gone", self._proc.pid)
            self._proc.wait()
            for pipe in (self._proc.stdin, self._proc.stdout):
                pipe.close()
            self._proc = None
        self.info = {}
        self._remove_cgroup()
        return self._stderr_tail()

    def _remove_cgroup(self) -> None:
        if self._cgroup is not None:
            try:
                self._cgroup.remove()
            except OSError as exc:  # it stays behind, empty; worth a line, not a failed run
                log.warning("could not remove the sandbox's memory cgroup %s: %s", self._cgroup.path, exc)
            self._cgroup = None

    def request_stop(self) -> None:
        """Ask the worker to exit after its current job (end of input), without waiting."""
        if self._proc is not None and not self._proc.stdin.closed:
            self._proc.stdin.close()

    def close(self) -> None:
        """Stop the worker: end of input makes it exit; kill it if it does not within 10 s."""
        self._queue.clear()
        if self._proc is None:
            return
        self.request_stop()
        try:
            self._proc.wait(timeout=10)
            self._proc.stdout.close()
            self._proc, self.info = None, {}
            self._remove_cgroup()
            tail = self._stderr_tail()
        except subprocess.TimeoutExpired:
            tail = self._kill()
        if tail:
            log.warning("codelm sandbox worker said: %s", tail)

    def __enter__(self) -> SandboxWorker:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _verified(verify: Callable[[ExecResult], ExecResult], result: ExecResult) -> ExecResult:
    """The task's parent-side verdict; a bug in it is the harness's failure, not the model's."""
    try:
        return verify(result)
    except Exception as exc:
        log.exception("verifying a sandbox result failed")
        return dataclasses.replace(result, status=Status.ERROR, detail=f"verify failed: {exc!r}"[:2000])


def _pipe_size(fd: int) -> int:
    """Grow a pipe to ``_PIPE_BYTES`` if the system allows; return its capacity."""
    try:
        return fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, _PIPE_BYTES)
    except OSError:  # above /proc/sys/fs/pipe-max-size: keep the default
        return fcntl.fcntl(fd, fcntl.F_GETPIPE_SZ)
