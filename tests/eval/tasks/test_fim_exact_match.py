"""fim-exact-match: the single-line infilling problems scored by an exact first-line match in the
parent (no sandbox, no opt-in), on problems spread over the file as the tiny recipe picks them."""

from __future__ import annotations

import json

import pytest

from codelm.eval.backends.samples import SamplesBackend
from codelm.eval.program import Status
from codelm.eval.runner import EvalOptions, run_eval, select
from codelm.eval.tasks import executes_code, get_task
from codelm.eval.tasks.data import resolve_source
from codelm.eval.tasks.humaneval_infilling import Problem


def test_verdict_is_the_trimmed_first_line():
    task = get_task("fim-exact-match")
    problem = Problem("SingleLineInfilling/HumanEval/0/L0", "f", "def f(x):\n", "", "    return x\n", "")
    assert task.local_verdict(problem, "return x  \nmore lines").passed
    assert task.local_verdict(problem, "    return x\n").passed
    wrong = task.local_verdict(problem, "return y\n")
    assert wrong.status is Status.FAILED and "'return x'" in wrong.detail
    assert not task.local_verdict(problem, "\nreturn x").passed  # only the first line counts
    assert task.local and task.checks == ("exact_match",) and task.kind == "infill"
    assert not executes_code("fim-exact-match,perplexity") and executes_code("fim-exact-match,humaneval")


def test_spread_limit():
    rows = list(range(1033))
    assert select(rows, 4, spread=False) == [0, 1, 2, 3]
    assert select(rows, 4, spread=True) == [0, 258, 516, 774]
    assert select(rows, 200, spread=True) == [rows[int(i * 1033 / 200)] for i in range(200)]
    assert select(rows, 2000, spread=True) == rows and select(rows, None, spread=True) == rows


def test_scored_without_execution(tmp_path):
    """Canonical middles for half of 20 spread problems, a wrong line for the rest: pass@1 = 0.5,
    the problems are the recipe's, and nothing was calibrated or executed."""
    task = get_task("fim-exact-match")
    problems = task.load(resolve_source(task))  # the copy codelm ships
    assert len(problems) == 1033
    chosen = [problems[int(i * len(problems) / 20)] for i in range(20)]
    samples = tmp_path / "samples.jsonl"
    with open(samples, "w") as f:
        for i, p in enumerate(chosen):
            completion = p.canonical_solution if i % 2 else "    pass  # not it\n"
            f.write(json.dumps({"task_id": p.task_id, "completion": completion}) + "\n")
    options = EvalOptions(
        tasks=("fim-exact-match",), output=tmp_path / "run", limit=20, spread=True, progress=False
    )
    entry = run_eval(options, SamplesBackend(samples))["fim-exact-match"]  # no allow_code_execution
    assert entry["pass@1"] == pytest.approx(0.5) and entry["counts"] == {"passed": 10, "failed": 10}
    records = [json.loads(line) for line in (tmp_path / "run" / "samples.jsonl").read_text().splitlines()]
    assert [r["task_id"] for r in records] == [p.task_id for p in chosen]
    assert (tmp_path / "run" / "calibration.jsonl").read_text() == ""
    executions = (tmp_path / "run" / "executions.jsonl").read_text().splitlines()
    assert {json.loads(line)["check"] for line in executions} == {"exact_match"} and len(executions) == 20
