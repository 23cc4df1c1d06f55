"""Verifiable rewards for the `rl` stage: run the completion's code against the problem's tests.

    reward = test reward (rl.reward) + rl.format_reward x format reward

Test rewards run in the eval sandbox (`codelm.eval.execution.ExecutionPool`: the isolation of
`codelm eval`, see eval/sandbox.py for what it does and does not protect against):

* `pass`: 1 when every test passes in one program, else 0 (DeepSeekMath's and DAPO's rule reward);
* `fraction`: the share of tests passed, each test its own program, so a sample can only earn a test
  by passing it (a count written by the sample itself could be forged);
* `module:function`: any callable `f(problem: dict, completion: str) -> float`, given the JSON
  record and the completion; it replaces the test reward (and runs in this process: it is the
  user's code, not the model's).

Asserts run as a script without `SystemExit(0)` counting (a sample that calls `exit(0)` before the
asserts fails); stdin/stdout tests go through SAFIM's checker (eval/tasks/safim_check.py, ExecEval's
output comparison); doctest problems through the `docstring-to-function` eval task's program (the
reference's doctest run against the candidate). The format reward is 1 when the completion follows
the reasoning template, `<think>` reasoning `</think>` then a non-empty answer (DeepSeek-R1's format
reward), else 0; code is always taken from the answer, never from the reasoning. Both use the
thinking parser of codelm.models.reasoning, with the family's markers.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from codelm.errors import CodelmError
from codelm.eval.program import Limits, Program
from codelm.eval.prompts import extract_code
from codelm.models.reasoning import THINK, split_reasoning
from codelm.models.registry import ReasoningSpec
from codelm.train.rl_data import Problem


def format_reward(text: str, spec: ReasoningSpec = THINK) -> float:
    """1.0 when `text` is a closed thinking block followed by a non-empty answer, else 0.0."""
    reasoning, answer = split_reasoning(text, spec)
    closed = reasoning is not None and spec.end in text
    return float(closed and bool(answer.strip()) and spec.start not in answer)


def _doctest_problem(problem: Problem) -> Any:
    from codelm.eval.tasks.docstring_to_function import problem_from_record

    try:
        return problem_from_record(problem.record, 0)
    except ValueError as exc:
        raise CodelmError(f"rl.data: {exc}") from None


def prompt_text(problem: Problem, prompt_format: str) -> str:
    """What the model continues: the prompt, or for doctest problems in completion format the
    function's stub (signature + instruction as docstring), as the docstring-to-function task does."""
    if problem.style == "doctest" and prompt_format == "completion":
        return _doctest_problem(problem).stub
    return problem.prompt


def candidate_code(problem: Problem, completion: str, prompt_format: str, spec: ReasoningSpec = THINK) -> str:
    """The program text a completion stands for: prompt + completion, or the code of a chat answer
    (never of the thinking: an unclosed thinking block leaves no answer, so no code)."""
    reasoning, answer = split_reasoning(completion, spec)
    if reasoning is None:
        answer = completion  # byte for byte: a completion's leading indentation is code
    elif prompt_format == "completion" and spec.end in completion:
        answer = completion.partition(spec.end)[2].lstrip("\n")  # the parser drops indentation too
    if prompt_format == "chat":
        return extract_code(answer, problem.record.get("entry_point") or problem.record.get("name"))
    if problem.style == "doctest":
        return answer  # the task's program puts the stub in front
    return problem.prompt + answer


def _stdio_program(code: str, tests: list[dict[str, Any]]) -> Program:
    from codelm.eval.tasks.safim import CHECK_SOURCE

    cases = [{"input": t["input"], "output": _outputs(t.get("output", ""))} for t in tests]
    files = {"main.py": code, "tests.json": json.dumps(cases), "safim_check.py": CHECK_SOURCE.read_text()}
    return Program(
        argv=[sys.executable, "safim_check.py", "--python", "main.py", sys.executable, "main.py"], files=files
    )


def _outputs(output: Any) -> list[str]:
    return [str(o) for o in output] if isinstance(output, list) else [str(output)]


def programs(problem: Problem, code: str, per_test: bool) -> list[Program]:
    """The sandbox programs scoring `code`: one with every test, or one per test."""
    tests = problem.tests
    groups = [[t] for t in tests] if per_test else [tests]
    if problem.style == "asserts":
        setup = problem.record.get("setup") or ""
        return [
            Program(source=f"{code}\n\n{setup}\n" + "\n".join(g) + "\n", run_name=None, exit_ok=False)
            for g in groups
        ]
    if problem.style == "stdio":
        return [_stdio_program(code, g) for g in groups]
    from codelm.eval.tasks.docstring_to_function import TASK

    return [TASK.programs(_doctest_problem(problem), code)["main"]]  # one doctest: one program


def load_reward_fn(spec: str) -> Callable[[dict[str, Any], str], float]:
    """The user's reward callable named `module:function` (imported now, so a typo fails early)."""
    from codelm.data.registry import import_attr

    try:
        fn = import_attr(spec)
    except Exception as exc:  # DataError, or whatever the module raises on import
        raise CodelmError(f"rl.reward: {exc}") from None
    if not callable(fn):
        raise CodelmError(f"rl.reward: {spec} is not callable")
    return fn


@dataclass
class Scored:
    reward: float
    passed: float  # 1/0 when tests ran, NaN for a pluggable reward (no pass rate)
    format: float


class Scorer:
    """Scores completions of problems; owns the sandbox pool when the reward runs tests."""

    def __init__(
        self,
        reward: str,
        format_weight: float,
        prompt_format: str,
        *,
        workers: int,
        timeout: float,
        allow_code_execution: bool,
        spec: ReasoningSpec = THINK,
    ) -> None:
        self.reward, self.format_weight, self.prompt_format = reward, format_weight, prompt_format
        self.spec = spec
        self.limits = Limits(timeout=timeout)
        self.fn = load_reward_fn(reward) if ":" in reward else None
        self.pool = None
        if self.fn is None:
            if not allow_code_execution:
                raise CodelmError(
                    "rl: test rewards run model-written code in the sandbox; "
                    "set rl.allow_code_execution: true to allow it"
                )
            from codelm.eval.execution import ExecutionPool

            self.pool = ExecutionPool(workers, self.limits, allow_code_execution=True)

    def check_references(self, problems: Sequence[Problem]) -> list[bool | None]:
        """Whether each problem's reference passes all its tests (None: no reference or no tests)."""
        if self.pool is None:
            return [None] * len(problems)
        todo = [i for i, p in enumerate(problems) if p.reference is not None and p.tests]
        fmt = self.prompt_format  # a reference is a perfect completion in the run's prompt format
        progs = [
            programs(problems[i], candidate_code(problems[i], problems[i].reference, fmt), False)[0]
            for i in todo
        ]
        results = self.pool.map(progs) if progs else []
        verdicts: list[bool | None] = [None] * len(problems)
        for i, result in zip(todo, results, strict=True):
            verdicts[i] = result.passed
        return verdicts

    def score(self, problems: Sequence[Problem], completions: Sequence[str]) -> list[Scored]:
        """One `Scored` per (problem, completion) pair."""
        fmt = [format_reward(c, self.spec) for c in completions]
        if self.fn is not None:
            test = [float(self.fn(dict(p.record), c)) for p, c in zip(problems, completions, strict=True)]
            passed = [math.nan] * len(test)
        else:
            per_test = self.reward == "fraction"
            owners, progs = [], []
            for k, (p, c) in enumerate(zip(problems, completions, strict=True)):
                for prog in programs(p, candidate_code(p, c, self.prompt_format, self.spec), per_test):
                    owners.append(k)
                    progs.append(prog)
            results = self.pool.map(progs) if progs else []
            ok, total = [0] * len(completions), [0] * len(completions)
            for k, result in zip(owners, results, strict=True):
                ok[k] += result.passed
                total[k] += 1
            test = [o / t if t else 0.0 for o, t in zip(ok, total, strict=True)]
            passed = [float(o == t and t > 0) for o, t in zip(ok, total, strict=True)]
        return [Scored(t + self.format_weight * f, p, f) for t, p, f in zip(test, passed, fmt, strict=True)]

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()
