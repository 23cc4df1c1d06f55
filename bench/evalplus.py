"""HumanEval+ scoring: codelm against evalplus 0.3.1 on the 164 canonical solutions, one samples file.

The anchor is the reference as users run it: ``python -m evalplus.evaluate --dataset humaneval
--samples FILE --parallel W`` with ``HUMANEVAL_OVERRIDE_PATH`` pointing at the same v0.1.10 file
and an empty cache, so it computes the ground truth (outputs and per-input times), as codelm does in
every run. codelm is ``codelm eval --samples FILE --tasks humaneval-plus --workers W``: ground truth
in the sandbox, timeout calibration, every sample's base and plus check. Both are timed end to end
as subprocesses (wall clock, and CPU of the whole process tree once reaped); their base/plus
verdicts are compared sample by sample. Target: >= 3x wall.

    python bench/evalplus.py [--workers 2] [--repeats 1] [--data ../shared/data/HumanEvalPlus.jsonl.gz]

Needs the bench extra (``pip install 'codelm[bench]'``: evalplus 0.3.1).
"""

from __future__ import annotations

import argparse
import gzip
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

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "HumanEvalPlus.jsonl.gz"
# evalplus 0.3.1 fails every solution of HumanEval/32: its find_zero oracle `continue`s before the
# input is counted as passed (docs/eval.md, "HumanEval+"); codelm applies the oracle
KNOWN = {"HumanEval/32"}


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


def evalplus_run(samples: Path, data: Path, workers: int, tmp: Path) -> tuple[float, float, dict]:
    cache = Path(tempfile.mkdtemp(dir=tmp))  # empty: the ground truth is computed, not loaded
    env = os.environ | {"HUMANEVAL_OVERRIDE_PATH": str(data), "XDG_CACHE_HOME": str(cache)}
    argv = [sys.executable, "-m", "evalplus.evaluate", "--dataset", "humaneval", "--samples", str(samples)]
    wall, cpu = timed([*argv, "--parallel", str(workers), "--i_just_wanna_run"], env)
    results = json.loads(samples.with_name(samples.stem + "_eval_results.json").read_text())["eval"]
    verdicts = {
        t: (rs[0]["base_status"] == "pass", rs[0]["base_status"] == rs[0]["plus_status"] == "pass")
        for t, rs in results.items()
    }
    return wall, cpu, verdicts


def codelm_run(samples: Path, data: Path, workers: int, tmp: Path) -> tuple[float, float, dict]:
    out = Path(tempfile.mkdtemp(dir=tmp)) / "run"
    argv = [sys.executable, "-m", "codelm.eval.cli", "--samples", str(samples), "--tasks", "humaneval-plus"]
    argv += ["--data", f"humaneval-plus={data}", "--allow-code-execution", "--workers", str(workers)]
    wall, cpu = timed([*argv, "--output", str(out), "--no-progress"], dict(os.environ))
    verdicts = {}
    for line in (out / "samples.jsonl").read_text().splitlines():
        r = json.loads(line)
        verdicts[r["task_id"]] = (
            r["checks"]["base"]["status"] == "passed",
            r["checks"]["plus"]["status"] == "passed",
        )
    return wall, cpu, verdicts


def cpu_model() -> str:
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass  # no lscpu: the architecture below says what it can
    return platform.processor() or platform.machine()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--data", default=str(DEFAULT_DATA))
    ap.add_argument("--results", default=str(Path(__file__).with_name("RESULTS.md")))
    args = ap.parse_args()
    data = Path(args.data)
    with gzip.open(data, "rt") if data.suffix == ".gz" else open(data) as f:
        records = [json.loads(line) for line in f if line.strip()]
    load = os.getloadavg()[0]
    runs: dict[str, list[tuple[float, float]]] = {"evalplus": [], "codelm": []}
    verdicts: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        samples = Path(tmp) / "samples.jsonl"
        samples.write_text(
            "".join(
                json.dumps({"task_id": r["task_id"], "completion": r["canonical_solution"]}) + "\n"
                for r in records
            )
        )
        for _ in range(args.repeats):  # interleaved, so machine load hits both alike
            for name, run in (("evalplus", evalplus_run), ("codelm", codelm_run)):
                wall, cpu, verdicts[name] = run(samples, data, args.workers, Path(tmp))
                runs[name].append((wall, cpu))
    differ = sorted(t for t in verdicts["codelm"] if verdicts["codelm"][t] != verdicts["evalplus"][t])
    unexplained = [t for t in differ if t not in KNOWN]
    (a, a_cpu), (o, o_cpu) = (
        (statistics.median(w for w, _ in r), statistics.median(c for _, c in r)) for r in runs.values()
    )
    ratio = statistics.median(x[0] / y[0] for x, y in zip(runs["evalplus"], runs["codelm"], strict=True))
    counts = {
        name: (sum(b for b, _ in v.values()), sum(p for _, p in v.values())) for name, v in verdicts.items()
    }
    for name in runs:
        walls = ", ".join(f"{w:.1f}" for w, _ in runs[name])
        print(f"{name:9s} wall runs {walls} s; base {counts[name][0]}/164, plus {counts[name][1]}/164")
    print(f"speed-up {ratio:.2f}x wall, {a_cpu / o_cpu:.2f}x CPU; load average {load:.2f}")
    print(f"verdicts differ on {differ or 'none'}; unexplained: {unexplained or 'none'}")
    machine = f"{cpu_model()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}"
    machine += f", Python {platform.python_version()}"
    section = (
        f"\n## evalplus (HumanEval+), {date.today()}\n\n"
        f"Machine: {machine}; load average before the run {load:.2f} (other jobs share it). The "
        f"{len(records)} HumanEval+ v0.1.10 canonical solutions, one samples file, scored end to end "
        f"(subprocesses, ground truth computed in both: evalplus with an empty cache), {args.workers} "
        f"workers, {args.repeats} interleaved run(s), ratio = median of per-pair wall ratios. CPU = the "
        f"whole process tree. Command: `python bench/evalplus.py`.\n\n"
        f"| | anchor: `python -m evalplus.evaluate` (evalplus 0.3.1) | `codelm eval --samples` "
        f"| ratio | target |\n"
        f"|---|---|---|---|---|\n"
        f"| wall | {a:.1f} s | {o:.1f} s | {ratio:.2f} | >= 3 |\n"
        f"| CPU | {a_cpu:.1f} s | {o_cpu:.1f} s | {a_cpu / o_cpu:.2f} | |\n"
        f"| base / plus passed | {counts['evalplus'][0]} / {counts['evalplus'][1]} | "
        f"{counts['codelm'][0]} / {counts['codelm'][1]} | | |\n\n"
        f"Verdicts differ on: {', '.join(differ) or 'none'} (HumanEval/32: evalplus 0.3.1's find_zero "
        f"oracle bug, docs/eval.md); unexplained: {', '.join(unexplained) or 'none'}.\n"
    )
    path = Path(args.results)
    with path.open("a") as f:
        f.write(section)
    print(f"RESULT name=evalplus ratio={ratio:.2f} target=3")


if __name__ == "__main__":
    main()
