"""The sandbox's contract on ordinary programs: opt-in, verdicts, outputs, argv and compile steps."""

from __future__ import annotations

import os
import shutil
import signal
import sys
import time

import psutil
import pytest

from codelm.eval.program import Isolation, Limits, Program, Status
from codelm.eval.sandbox import CodeExecutionNotAllowed, SandboxUnavailable, SandboxWorker, run, sandbox_info

from .conftest import assert_no_strays


def test_execution_needs_explicit_opt_in():
    with pytest.raises(CodeExecutionNotAllowed, match="--allow-code-execution"):
        run(Program(source="print(1)"))
    with pytest.raises(CodeExecutionNotAllowed):
        SandboxWorker().run(Program(source="print(1)"))


def test_sandbox_info_reports_what_it_got(info):
    for key in (
        "user_namespace",
        "network_isolated",
        "readonly_root",
        "pid_namespace",
        "private_proc",
        "problems",
        "summary",
    ):
        assert key in info
    if not (info["network_isolated"] and info["readonly_root"] and info["pid_namespace"]):
        assert info["problems"], "degraded isolation must say why"
        assert info["summary"].startswith("DEGRADED")
    assert "scratch" not in info
    info["problems"].append("mutating a copy")
    assert "mutating a copy" not in sandbox_info()["problems"]


@pytest.mark.parametrize(
    ("source", "status", "returncode"),
    [
        ("print('hello')", Status.PASSED, 0),
        ("raise ValueError('boom')", Status.FAILED, 1),
        ("import sys; sys.exit(3)", Status.FAILED, 3),
        ("import sys; sys.exit(0)", Status.PASSED, 0),
        ("import os; os._exit(0)", Status.FAILED, 0),  # exited before the program finished
        ("def f(:\n    pass", Status.SYNTAX_ERROR, None),
        ("x = 'nul\0byte'", Status.SYNTAX_ERROR, None),
        ("import ctypes; ctypes.string_at(0)", Status.FAILED, -11),  # a real segfault
    ],
)
def test_python_verdicts(worker, source, status, returncode):
    result = worker.run(Program(source=source), Limits(timeout=10))
    assert result.status == status, result
    assert result.returncode == returncode
    assert result.passed == (status == Status.PASSED)
    if status != Status.PASSED:
        assert result.detail


def test_output_is_captured_and_traceback_points_at_the_sample(worker):
    source = "import sys\nprint('out')\nprint('err', file=sys.stderr)\n\ndef f():\n    1 / 0\nf()\n"
    result = worker.run(Program(source=source, filename="solution.py"))
    assert result.status == Status.FAILED
    assert result.stdout == "out\n"
    assert "err\n" in result.stderr
    assert 'solution.py", line 6, in f' in result.stderr
    assert "jail" not in result.stderr  # harness frames are not shown
    assert result.detail == "ZeroDivisionError: division by zero"


def test_exit_is_failure_when_the_program_must_run_to_the_end(worker):
    strict = Program(source="import sys\nsys.exit(0)\n", exit_ok=False)
    assert worker.run(strict).status == Status.FAILED


def test_run_name_none_skips_main_guard(worker):
    source = "x = 1\nif __name__ == '__main__':\n    raise SystemExit(1)\n"
    assert worker.run(Program(source=source, run_name=None)).passed
    assert not worker.run(Program(source=source)).passed


def test_files_cwd_home_and_tmpdir_are_the_work_directory(worker):
    source = (
        "import os, tempfile\nprint(open('data/in.txt').read())\n"
        "print(os.getcwd() == os.environ['HOME'] == tempfile.gettempdir())\n"
        "open('scratch.txt', 'w').write('x')\n"
    )
    result = worker.run(Program(source=source, files={"data/in.txt": "payload", "blob.bin": b"\x00\x01"}))
    assert result.status == Status.PASSED, result
    assert result.stdout == "payload\nTrue\n"


def test_work_directory_is_removed_afterwards(worker):
    first = worker.run(Program(source="import os\nopen('left.txt', 'w').write('x')\nprint(os.getcwd())"))
    workdir = first.stdout.strip()
    check = f"import os\nprint(os.path.exists({workdir!r}))"
    assert worker.run(Program(source=check)).stdout == "False\n"
    assert not os.path.exists(workdir)  # nor on the host (without a mount namespace it is there)


def test_rejects_bad_programs():
    with pytest.raises(ValueError, match="exactly one"):
        Program()
    with pytest.raises(ValueError, match="relative path"):
        Program(source="", files={"../escape": "x"})
    with pytest.raises(ValueError, match="relative path"):
        Program(source="", filename="/etc/passwd")
    with pytest.raises(ValueError):
        Limits(timeout=0)


def test_argv_program_and_missing_command(worker):
    ok = worker.run(Program(argv=[sys.executable, "-c", "print('via argv')"]))
    assert ok.status == Status.PASSED and ok.stdout == "via argv\n"
    missing = worker.run(Program(argv=("no-such-command-anywhere",)))
    assert missing.status == Status.ERROR and "cannot execute" in missing.detail


@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not installed")
def test_compile_then_run(worker):
    source = '#include <stdio.h>\nint main(void) { printf("%d\\n", 6 * 7); return 0; }\n'
    build = ("gcc", "main.c", "-o", "prog")
    program = Program(argv=("./prog",), compile_argv=build, files={"main.c": source})
    result = worker.run(program, Limits(timeout=60))
    assert result.status == Status.PASSED, result
    assert result.stdout == "42\n"
    broken = Program(argv=("./prog",), compile_argv=build, files={"main.c": "int x("})
    result = worker.run(broken, Limits(timeout=60))
    assert result.status == Status.COMPILE_ERROR and "error" in result.detail


def test_worker_that_died_between_jobs_is_replaced():
    with SandboxWorker(allow_code_execution=True) as worker:
        worker.start()
        os.killpg(worker.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while psutil.Process(worker.pid).status() != psutil.STATUS_ZOMBIE and time.monotonic() < deadline:
            time.sleep(0.01)
        result = worker.run(Program(source="print('fresh')"))
        assert result.status == Status.PASSED and result.stdout == "fresh\n"
        assert_no_strays()
    assert_no_strays()


def test_unisolated_mode_still_limits_and_scrubs(monkeypatch):
    monkeypatch.setenv("CODELM_TEST_SECRET", "do-not-leak")
    with SandboxWorker(Isolation(enabled=False), allow_code_execution=True) as worker:
        assert worker.start()["user_namespace"] is False
        env = worker.run(Program(source="import os; print(sorted(os.environ))"))
        assert env.passed and "CODELM_TEST_SECRET" not in env.stdout
        loop = worker.run(Program(source="while True: pass"), Limits(timeout=1))
        assert loop.status == Status.TIMEOUT
        assert_no_strays()


def test_require_refuses_degraded_isolation():
    with pytest.raises(SandboxUnavailable, match="required"):
        SandboxWorker(Isolation(enabled=False, require=True)).start()
    assert_no_strays()


def test_ordinary_programs_still_work_inside(worker):
    source = (
        "import multiprocessing, subprocess, sys, tempfile\n"
        "print(subprocess.run(['echo', 'child'], capture_output=True, text=True).stdout.strip())\n"
        "with multiprocessing.Pool(2) as pool:\n    print(sum(pool.map(abs, [-1, -2, 3])))\n"
        "with tempfile.NamedTemporaryFile() as f:\n    f.write(b'x')\n"
        "print('naïve ✓')\n"
    )
    result = worker.run(Program(source=source), Limits(timeout=30))
    assert result.status == Status.PASSED, result
    assert result.stdout == "child\n6\nnaïve ✓\n"
    assert_no_strays()


def test_sample_has_no_capabilities_and_cannot_remount(info):
    # Isolation(root_maps_to=None) takes the path an unprivileged user gets: the sample keeps uid 0
    # of its namespace, so only the dropped capabilities keep it from remounting the host writable.
    source = (
        "import ctypes, os\n"
        "caps = {l.split(':')[0]: l.split()[1] for l in open('/proc/self/status') if l.startswith('Cap')}\n"
        "print(caps['CapEff'], caps['CapPrm'], caps['CapBnd'])\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "print(libc.mount(None, b'/', None, 32 | 4096, None), ctypes.get_errno())\n"  # MS_REMOUNT|MS_BIND
    )
    if not info["user_namespace"]:
        pytest.skip(f"no user namespace here: {info['problems']}")
    with SandboxWorker(Isolation(root_maps_to=None), allow_code_execution=True) as worker:
        result = worker.run(Program(source=source))
    zero = "0" * 16
    assert result.status == Status.PASSED, result
    assert result.stdout == f"{zero} {zero} {zero}\n-1 1\n"  # EPERM
