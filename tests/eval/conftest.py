"""Fixtures for the eval tests: a shared sandbox worker, the machine's isolation report, a check
that no sandboxed process outlives its test, and the benchmark files (never committed to the repo:
they are read from ../shared/data relative to the repository root)."""

from __future__ import annotations

import time
from pathlib import Path

import psutil
import pytest

from codelm.eval import jail
from codelm.eval.sandbox import SandboxWorker, sandbox_info

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
JAIL_MARKER = str(Path(jail.__file__))


@pytest.fixture(scope="session")
def info() -> dict:
    return sandbox_info()


@pytest.fixture(scope="module")
def worker():
    with SandboxWorker(allow_code_execution=True) as w:
        w.start()
        yield w


def leftovers(markers: tuple[str, ...] = ()) -> list[psutil.Process]:
    """Sandbox processes that should not exist between jobs.

    Python samples are forks of a worker that name themselves ``codelm-sample``: none may be left
    below this test process, and none anywhere may be orphaned (re-parented to init). Other test
    sessions may be running their own workers on this machine, so only those two cases count.
    Commands a sample exec'd are found by a ``marker`` unique to the calling test."""
    mine = {p.pid for p in psutil.Process().children(recursive=True)}
    found = []
    for proc in psutil.process_iter(["pid", "ppid", "name", "cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or ())
        if any(m in cmdline for m in markers):
            found.append(proc)
        elif JAIL_MARKER in cmdline:
            orphan = proc.info["ppid"] == 1
            if orphan or (proc.pid in mine and proc.info["name"] == "codelm-sample"):
                found.append(proc)
    return found


def assert_no_strays(markers: tuple[str, ...] = (), wait: float = 10.0) -> None:
    """No sample process (or ``markers`` process) survives, allowing ``wait`` s for kills to land."""
    deadline = time.monotonic() + wait
    while (strays := leftovers(markers)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not strays, f"stray sandbox processes: {[(p.pid, p.info['cmdline']) for p in strays]}"


@pytest.fixture(scope="session")
def humaneval_path() -> Path:
    path = SHARED_DATA / "HumanEval.jsonl.gz"
    if not path.exists():
        pytest.skip(f"benchmark data not found at {path} (it lives in ../shared/data, outside the repo)")
    return path
