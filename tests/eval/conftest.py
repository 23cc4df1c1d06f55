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


@pytest.fixture(scope="session", autouse=True)
def truth_cache(tmp_path_factory) -> Path:
    """The tests' own ground-truth cache, so they never read or fill the user's."""
    root = tmp_path_factory.mktemp("truth-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CODELM_EVAL_CACHE", str(root))
        yield root


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


@pytest.fixture
def full_sweep(request) -> None:
    """Full canonical sweeps take minutes on two busy cores: they run only when asked for (-m slow)."""
    expr = request.config.getoption("markexpr") or ""
    if "slow" not in expr or "not slow" in expr:
        pytest.skip("full canonical sweep: run with -m slow")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """../shared/data, or a skip saying where the benchmark files were expected."""
    if not SHARED_DATA.is_dir():
        pytest.skip(
            f"benchmark data not found at {SHARED_DATA} (it lives in ../shared/data, outside the repo)"
        )
    return SHARED_DATA


def load_task(name: str, data_dir: Path) -> tuple:
    """(task, problems) of a registered task, skipping when its data file is absent."""
    from codelm.eval.tasks import get_task

    task = get_task(name)
    if not any((data_dir / f).exists() for f in task.file_names):
        pytest.skip(f"{task.file_names[0]} not found in {data_dir}")
    from codelm.eval.tasks.data import resolve_source

    return task, task.load(resolve_source(task, data_dir))


def score_samples(
    name: str, records: list[dict], data_dir: Path, out: Path, limit: int | None = None
) -> tuple[dict, list[dict]]:
    """``codelm eval --samples`` on ``records`` ({"task_id", "completion"}) with default settings
    (calibrated timeouts included); returns the task's summary entry and the scored samples."""
    import json

    from codelm.eval.backends.samples import SamplesBackend
    from codelm.eval.runner import EvalOptions, run_eval

    out.mkdir(parents=True, exist_ok=True)
    samples = out / "samples.jsonl"
    samples.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    options = EvalOptions(
        tasks=(name,),
        output=out / "run",
        limit=limit,
        data_dir=data_dir,
        allow_code_execution=True,
        progress=False,
    )
    entry = run_eval(options, SamplesBackend(samples))[name]
    scored = (out / "run" / "samples.jsonl").read_text(encoding="utf-8").splitlines()
    return entry, [json.loads(line) for line in scored]


def score_canonical(name: str, data_dir: Path, out: Path, limit: int | None = None) -> dict:
    """``codelm eval --samples`` on the canonical completions of a task; returns the task's summary
    entry with the failing samples under ``failing``."""
    task, problems = load_task(name, data_dir)
    records = [{"task_id": p.task_id, "completion": task.reference(p)} for p in problems[:limit]]
    entry, scored = score_samples(name, records, data_dir, out, limit)
    entry["failing"] = [(r["task_id"], r["status"], r["error"]) for r in scored if not r["passed"]]
    return entry


def assert_all_pass(entry: dict, checks: tuple[str, ...] = ()) -> None:
    """Every sample of every check passed, and the summary says so."""
    for metrics in [entry, *(entry[c] for c in checks)]:
        failures = {k: v for k, v in metrics["counts"].items() if k != "passed"}
        assert not failures, (failures, entry["failing"][:10], entry.get("reference_failures"))
        assert metrics["pass@1"] == 1.0 and metrics["counts"]["passed"] == metrics["samples"]
