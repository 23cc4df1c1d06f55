"""Hostile samples: each must be contained, the run must complete, and nothing may outlive it.

What a test can honestly demand depends on what the kernel granted (``sandbox_info()``); where a
protection is missing the test is skipped with the reason, never silently weakened.
"""

from __future__ import annotations

import os
import socket
import tempfile
import time
from pathlib import Path

import pytest

from codelm.eval.program import Limits, Program, Status
from codelm.eval.sandbox import SandboxWorker

from .conftest import assert_no_strays

MiB = 1 << 20


def run_contained(worker: SandboxWorker, source: str, limits: Limits, markers: tuple[str, ...] = ()):
    """Run a hostile sample; it must come back (well within its limits) and leave nothing behind."""
    start = time.monotonic()
    result = worker.run(Program(source=source), limits)
    assert time.monotonic() - start < limits.timeout + 60, "the sandbox did not stop the sample"
    assert_no_strays(markers)
    follow_up = worker.run(Program(source="print('still serving')"))
    assert follow_up.status == Status.PASSED and follow_up.stdout == "still serving\n", follow_up
    return result


def test_fork_bomb(worker):
    source = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    result = run_contained(worker, source, Limits(timeout=2, max_processes=32))
    assert result.status in (Status.TIMEOUT, Status.FAILED), result


def test_memory_bomb(worker):
    source = "chunks = []\nwhile True:\n    chunks.append(bytearray(64 * 1024 * 1024))\n"
    result = run_contained(worker, source, Limits(timeout=20, memory_bytes=512 * MiB))
    assert result.status == Status.FAILED and "MemoryError" in result.stderr, result


def test_infinite_loop(worker):
    result = run_contained(worker, "while True:\n    pass\n", Limits(timeout=1))
    assert result.status == Status.TIMEOUT and result.returncode == -9


def test_busy_loop_ignoring_sigterm_and_sigint(worker):
    source = (
        "import signal\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "signal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass\n"
    )
    result = run_contained(worker, source, Limits(timeout=1))
    assert result.status == Status.TIMEOUT


def test_cpu_time_limit_backs_up_the_wall_clock(worker):
    result = run_contained(worker, "while True:\n    pass\n", Limits(timeout=60, cpu_seconds=1))
    assert result.status == Status.TIMEOUT and "CPU" in result.detail, result


def test_network_connect_fails(worker, info):
    if not info["network_isolated"]:
        pytest.skip(f"no network namespace on this machine: {info['problems']}")
    with socket.socket() as server:  # a service on the host's loopback the sample must not reach
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        server.setblocking(False)
        port = server.getsockname()[1]
        source = (
            "import socket\nresults = []\n"
            f"for target in [('127.0.0.1', {port}), ('1.1.1.1', 53), ('8.8.8.8', 443)]:\n"
            "    s = socket.socket()\n    s.settimeout(3)\n"
            "    try:\n        s.connect(target)\n        results.append('CONNECTED')\n"
            "    except OSError as exc:\n        results.append(type(exc).__name__)\n"
            "try:\n    socket.getaddrinfo('example.com', 80)\n    results.append('RESOLVED')\n"
            "except OSError as exc:\n    results.append(type(exc).__name__)\nprint(results)\n"
        )
        result = run_contained(worker, source, Limits(timeout=30))
        assert result.status == Status.PASSED, result
        assert "CONNECTED" not in result.stdout and "RESOLVED" not in result.stdout, result.stdout
        with pytest.raises(BlockingIOError):
            server.accept()


def test_cannot_delete_or_change_files_outside_its_directory(worker, info, tmp_path):
    if not info["readonly_root"]:
        pytest.skip(
            "no read-only mount namespace here: rlimits alone cannot stop a sample deleting "
            f"the user's files ({info['problems']})"
        )
    canaries = [tmp_path / "canary.txt"]  # under /tmp, which the sandbox hides
    shared_tmp = Path("/var/tmp")
    visible = None
    if shared_tmp.is_dir() and os.access(shared_tmp, os.W_OK):  # visible to the sample, read-only
        visible = Path(tempfile.mkdtemp(dir=shared_tmp, prefix="codelm-canary-"))
        canaries.append(visible / "canary.txt")
    try:
        for canary in canaries:  # writable by anyone: only the read-only mount may save it
            canary.write_text("precious")
            canary.chmod(0o666)
            canary.parent.chmod(0o777)
        attacks = "".join(
            f"for attack in (lambda: os.remove({str(c)!r}), lambda: shutil.rmtree({str(c.parent)!r}),\n"
            f"               lambda: open({str(c)!r}, 'w').write('gone'),\n"
            f"               lambda: os.rename({str(c)!r}, {str(c)!r} + '.moved')):\n"
            "    try:\n        attack()\n        print('SUCCEEDED')\n"
            "    except OSError as exc:\n        print(type(exc).__name__)\n"
            for c in canaries
        )
        result = run_contained(worker, "import os, shutil\n" + attacks, Limits(timeout=30))
        assert result.status == Status.PASSED, result
        assert "SUCCEEDED" not in result.stdout, result.stdout
        for canary in canaries:
            assert canary.read_text() == "precious"
    finally:
        if visible is not None:
            for path in visible.iterdir():
                path.unlink()
            visible.rmdir()


def test_cannot_read_the_parents_environment(monkeypatch, info):
    secret = "codelm-secret-4f1c2b"
    monkeypatch.setenv("CODELM_TEST_TOKEN", secret)
    scan_proc = bool(info["private_proc"])  # else /proc shows the test runner's own environment
    source = (
        "import os\nseen = repr(dict(os.environ))\n"
        + (
            "for pid in os.listdir('/proc'):\n    try:\n"
            "        seen += open(f'/proc/{pid}/environ', 'rb').read().decode('latin-1')\n"
            "    except (OSError, ValueError):\n        pass\n"
            if scan_proc
            else ""
        )
        + f"print('LEAKED' if {secret!r} in seen else 'clean')\n"
    )
    with SandboxWorker(allow_code_execution=True) as worker:  # started after the secret was set
        result = run_contained(worker, source, Limits(timeout=30))
    assert result.status == Status.PASSED and result.stdout == "clean\n", result


def test_killing_its_parent_does_not_hurt_the_worker(worker, info):
    pid_before = worker.pid
    source = "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\nprint('after kill')\n"
    run_contained(worker, source, Limits(timeout=10))
    if info["pid_namespace"]:  # the worker is invisible to the sample: it was never hit
        assert worker.pid == pid_before


def test_killing_everything_it_can_see(worker, info):
    if not info["pid_namespace"]:
        pytest.skip("without a PID namespace kill(-1) would reach every process of this user")
    pid_before = worker.pid
    source = (
        "import os, signal\ntry:\n    os.kill(-1, signal.SIGKILL)\n"
        "except ProcessLookupError:\n    print('nothing else visible')\n"
    )
    result = run_contained(worker, source, Limits(timeout=10))
    assert result.status == Status.PASSED and result.stdout == "nothing else visible\n", result
    assert worker.pid == pid_before


def test_daemons_and_double_forks_do_not_outlive_the_sample(worker, info):
    if not info["pid_namespace"]:
        pytest.skip("without a PID namespace a setsid'd grandchild escapes the process-group kill")
    marker = f"9{os.getpid():08d}"  # an unlikely sleep length, unique to this test run
    source = (
        "import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
        "        time.sleep(1000)\n    os._exit(0)\n"
        f"import subprocess\nsubprocess.Popen(['sleep', '{marker}'], start_new_session=True)\n"
        "print('parent done')\n"
    )
    result = run_contained(worker, source, Limits(timeout=10), markers=(marker,))
    assert result.status == Status.PASSED and result.stdout == "parent done\n", result


def test_huge_output_is_capped_and_stopped(worker):
    flood = "import sys\nchunk = 'x' * 65536\nwhile True:\n    sys.stdout.write(chunk)\n"
    limits = Limits(timeout=30, keep_output_bytes=4096, max_output_bytes=8 * MiB)
    result = run_contained(worker, flood, limits)
    assert result.status == Status.FAILED and "output limit" in result.detail
    assert result.truncated and len(result.stdout) == 4096
    finite = worker.run(Program(source="print('y' * 2_000_000)"), limits)
    assert finite.status == Status.PASSED and finite.truncated and len(finite.stdout) == 4096


def test_reading_stdin_gets_end_of_file(worker):
    result = run_contained(worker, "import sys\nprint(repr(sys.stdin.read()))\n", Limits(timeout=10))
    assert result.status == Status.PASSED and result.stdout == "''\n"
    result = run_contained(worker, "input()\n", Limits(timeout=10))
    assert result.status == Status.FAILED and "EOFError" in result.detail


def test_file_size_and_open_file_limits(worker):
    big = run_contained(
        worker, "open('big', 'wb').write(b'x' * (8 * 1024 * 1024))\n", Limits(timeout=10, file_size_bytes=MiB)
    )
    assert big.status == Status.FAILED and "File too large" in big.stderr, big
    many = run_contained(
        worker, "files = [open('/dev/null') for _ in range(1000)]\n", Limits(timeout=10, max_open_files=64)
    )
    assert many.status == Status.FAILED and "Too many open files" in many.stderr, many
