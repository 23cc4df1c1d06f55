"""The LiveCodeBench check program: runs inside the sandbox as ``check.py`` (stdlib only, no codelm).

It runs the candidate (``solution.py``) on every test input of ``tests.json``
(``{"mode": "stdin" | "call", "fn_name": str | None, "inputs": [str]}``), each under the
per-test wall-clock limit of ``limits.json`` (``{"test_timeout": seconds}``, default 6),
and writes what happened to ``outputs.json``: per test a status (``ok``, ``timeout``, ``error``),
the candidate's output (stdout for ``stdin`` problems; the return value as JSON for ``call``
problems), its seconds and the tail of its stderr. It knows no expected output and decides no
verdict: the parent compares the outputs (``livecodebench.verify``), so nothing the candidate does
in here can turn a wrong answer into a pass. Like LiveCodeBench's ``run_test`` it stops at the first
test that times out or fails to run (a wrong answer cannot be told apart here, so those run on).

Each test runs in a fresh fork of this process, never in it: the candidate cannot patch this code.
This process is PID 1 of the sample's PID namespace (``codelm.eval.jail.child``), so the
candidate cannot kill or stop it (the kernel ignores SIGKILL/SIGSTOP sent to a namespace's init from
inside), and before reading a test's output it SIGKILLs every other process of the namespace, so a
daemonised child can neither outlive its test's time limit nor write into a later result. The
per-test limit is wall-clock time from fork to exit, measured here. Candidates get LiveCodeBench's
prelude (the star imports of ``testing_util.import_string``, recursion limit 50000, integers of up
to 50000 digits as text); ``stdin`` programs run as a script (``__name__ == "__main__"``), ``call``
programs as a module (``class Solution`` instantiated, else a top-level function named ``fn_name``),
called with the JSON values of the input's lines as arguments.
"""

import builtins
import json
import os
import signal
import sys
import time
import traceback

PRELUDE = (
    "from string import *\nfrom re import *\nfrom datetime import *\nfrom collections import *\n"
    "from heapq import *\nfrom bisect import *\nfrom copy import *\nfrom math import *\n"
    "from random import *\nfrom statistics import *\nfrom itertools import *\nfrom functools import *\n"
    "from operator import *\nfrom io import *\nfrom sys import *\nfrom json import *\n"
    "from builtins import *\nfrom typing import *\n"
    "import string, re, datetime, collections, heapq, bisect, copy, math, random, statistics\n"
    "import itertools, functools, operator, io, sys, json\n"
)
OUTPUT_CAP = 32 << 20  # bytes of one test's output kept (more: an error, no judge wants it)
TOTAL_CAP = 48 << 20  # bytes of output of all tests (the result file comes back whole)
STDERR_TAIL = 1000
TEST_TIMEOUT = 6.0  # LiveCodeBench's --timeout default


def _open(name):
    return os.open(name, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)


def _stream(fd, mode, errors="strict"):
    """A standard stream as ``python main.py`` has it (``mode``, ``buffer``, ``fileno``: fast-IO
    templates use them)."""
    return open(fd, mode, encoding="utf-8", errors=errors, closefd=False)


def _child(code, spec, fds, inp):
    """The forked test run (never returns): stdin from the input, stdout/stderr/return value into
    the files this process reads afterwards."""
    status = 1
    try:
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
        sys.stdin, sys.stdout = _stream(0, "r"), _stream(1, "w")
        sys.stderr = _stream(2, "w", "backslashreplace")
        namespace = dict(BASE)
        namespace["__builtins__"] = builtins
        if spec["mode"] == "stdin":
            namespace["__name__"] = "__main__"
            try:
                exec(code, namespace)
            except SystemExit:  # LiveCodeBench's call_method ignores it: the output is judged
                pass
        else:
            namespace["__name__"] = "solution"
            exec(code, namespace)
            target = namespace["Solution"]() if "Solution" in namespace else None
            method = getattr(target, spec["fn_name"]) if target is not None else namespace[spec["fn_name"]]
            args = [json.loads(line) for line in inp.split("\n")]
            value = method(*args)
            os.write(3, json.dumps(list(value) if isinstance(value, tuple) else value).encode())
        status = 0
    except BaseException:
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except BaseException:
            status = 1
        os._exit(status)


def _kill_others(group=None):
    """SIGKILL every other process of the namespace (as its init), else the test's process group
    (without a PID namespace a child that calls setsid escapes it: the sandbox's own limits remain)."""
    try:
        if os.getpid() == 1:
            os.kill(-1, signal.SIGKILL)
        elif group:
            os.killpg(group, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    while True:  # reap, so zombies do not count against the process limit
        try:
            if os.waitpid(-1, os.WNOHANG)[0] == 0:
                break
        except ChildProcessError:
            break


def _wait(pid, limit):
    """(exit status or None on timeout, seconds) of the test's process."""
    start = time.monotonic()
    pause = 0.0005
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        elapsed = time.monotonic() - start
        if done:
            return status, elapsed
        if elapsed > limit:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return None, elapsed
        time.sleep(min(pause, limit - elapsed + 0.001))
        pause = min(pause * 2, 0.01)


def _read(fd, cap):
    data = os.pread(fd, cap + 1, 0)
    return data[:cap].decode("utf-8", errors="replace"), len(data) > cap


def run(code, spec):
    fds = [_open(name) for name in ("stdin.txt", "stdout.txt", "stderr.txt", "return.json")]
    results, total = [], 0
    for inp in spec["inputs"]:
        for fd in fds:
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
        if spec["mode"] == "stdin":
            os.pwrite(fds[0], inp.encode(), 0)
        pid = os.fork()
        if pid == 0:
            if os.getpid() != 1:
                os.setpgid(0, 0)
            _child(code, spec, fds, inp)
        status, seconds = _wait(pid, spec["test_timeout"])
        _kill_others(pid)
        stderr = os.pread(fds[2], 1 << 20, 0)[-STDERR_TAIL:].decode("utf-8", errors="replace")
        output, over = _read(fds[3] if spec["mode"] == "call" else fds[1], OUTPUT_CAP)
        total += len(output)
        result = {"status": "ok", "output": output, "seconds": round(seconds, 4), "stderr": stderr}
        if status is None:
            result["status"] = "timeout"
        elif os.waitstatus_to_exitcode(status) != 0:
            result["status"] = "error"
            result["exit"] = os.waitstatus_to_exitcode(status)
        elif over or total > TOTAL_CAP:
            result.update(status="error", stderr=f"output over {OUTPUT_CAP if over else TOTAL_CAP} bytes")
        if result["status"] != "ok":
            result["output"] = ""
        results.append(result)
        if result["status"] != "ok":
            break
    return results


def main():
    with open("tests.json", encoding="utf-8") as f:
        spec = json.load(f)
    with open("limits.json", encoding="utf-8") as f:
        spec["test_timeout"] = float(json.load(f).get("test_timeout", TEST_TIMEOUT))
    with open("solution.py", encoding="utf-8") as f:
        source = f.read()
    code = compile(source, "solution.py", "exec", dont_inherit=True)  # a SyntaxError ends it here
    sys.setrecursionlimit(50000)
    sys.set_int_max_str_digits(50000)
    results = run(code, spec)
    _kill_others()
    if os.path.lexists("outputs.json"):  # whatever a candidate left there (a link, a file)
        os.unlink("outputs.json")
    fd = os.open("outputs.json", os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with open(fd, "w", encoding="utf-8") as f:
        json.dump({"tests": results}, f, ensure_ascii=False)


BASE = {}
exec(PRELUDE, BASE)  # the prelude's names, copied into every test's namespace
BASE.pop("__builtins__", None)

if __name__ == "__main__":
    main()
