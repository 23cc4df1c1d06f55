"""HumanEval infilling (Bavarian et al. 2022, "Efficient Training of Language Models to Fill in
the Middle"): HumanEval's canonical solutions with a span removed, to be filled in the middle.

Four benchmarks, one per file of openai/human-eval-infilling: single-line (1033 tasks, one whole
line removed), multi-line (5815, whole lines), random-span (1640, any character span) and
random-span-light (164, one random span per problem). Every record has the prefix (``prompt``),
the ``suffix``, the removed ``canonical_solution`` (the middle), HumanEval's ``test`` and
``entry_point``.

Generation: an infill request, rendered by the backend in the model family's own FIM format (PSM
or Seed-Coder's SPM; CodeGen1 has none and is refused before anything runs). Base models only: an
instruct model cannot be asked to fill in the middle through a chat prompt here. Single-line
completions are cut after their first line (the removed span is exactly one line, ending in a
newline), as InCoder and SantaCoder evaluate single-line infilling; the others are used as
generated, up to the model's end-of-middle token.

Check program, exactly human-eval-infilling's (``execution.py``): ``prompt + completion + suffix
+ "\\n" + test + "\\n" + f"check({entry_point})"``, run like human-eval's. All tasks derived from
one HumanEval problem share a calibrated timeout.

``fim-exact-match`` (``EXACT_MATCH``) asks the single-line problems the same way but executes
nothing: a sample passes when its first line, whitespace-trimmed, equals the removed line, trimmed
(the match SantaCoder's and the tiny recipe's reports use). It is a ``local`` task: pass@1 is the
exact-match rate, and it runs without ``--allow-code-execution``.

``fim-loss`` scores the same single-line problems without generating: the negative log-likelihood
of the removed line and the end token after the family's infilling prompt, as the pretraining
stage trains FIM (``Backend.score_infills``): the FIM test loss of Bavarian et al. 2022 (section 4),
reported per token (``fim_loss``, nats) and per byte of the removed lines (``bits_per_byte``).
A small model's exact match moves in steps of single problems (0-3 of 200 for the tiny recipe);
the loss moves with every problem, which is what an ablation of FIM settings needs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codelm.errors import UnsupportedFeatureError

from ..generation import LOGLIKELIHOOD, Backend, GenRequest, GenSettings
from ..program import ExecResult, Program, Status
from .base import Task
from .data import HubDataset, bundled_file, require_fields

HUB_ID = "loubnabnl/humaneval_infilling"  # a dataset script: needs a `datasets` that still runs them


@dataclass(frozen=True)
class Problem:
    task_id: str  # e.g. SingleLineInfilling/HumanEval/0/L0
    entry_point: str
    prompt: str  # the prefix
    suffix: str
    canonical_solution: str  # the middle
    test: str


def check_program(problem: Problem, completion: str) -> str:
    """What human-eval-infilling executes for ``completion`` (byte for byte)."""
    return (
        problem.prompt
        + completion
        + problem.suffix
        + "\n"
        + problem.test
        + "\n"
        + f"check({problem.entry_point})"
    )


class InfillingTask(Task):
    kind = "infill"
    chat_ok = False
    max_new_tokens = 256

    def __init__(self, name: str, title: str, subset: str, single_line: bool = False) -> None:
        self.name, self.title = name, title
        self.file_names = (f"HumanEval-{subset}.jsonl.gz", f"HumanEval-{subset}.jsonl")
        self.hub = HubDataset(HUB_ID, f"HumanEval-{subset}")
        self.single_line = single_line
        if single_line:
            self.stops, self.max_new_tokens = ("\n",), 128

    def bundled_path(self) -> Path | None:
        return bundled_file(*self.file_names)

    def parse(self, records: list[dict], origin: str) -> list[Problem]:
        fields = ("task_id", "entry_point", "prompt", "suffix", "canonical_solution", "test")
        problems = []
        for record in records:
            require_fields(record, fields, origin)
            problems.append(Problem(**{name: record[name] for name in fields}))
        return problems

    def request(self, problem: Problem, settings: GenSettings) -> GenRequest:
        return self.build_request(problem, settings, "infill", prompt=problem.prompt, suffix=problem.suffix)

    def clean(self, problem: Problem, text: str, mode: str) -> str:
        if self.single_line:  # the removed line always ends in "\n": keep exactly one line
            return text.split("\n", 1)[0] + "\n"
        return text

    def programs(self, problem: Problem, completion: str) -> dict[str, Program]:
        source = check_program(problem, completion)
        return {"main": Program(source=source, filename="check.py", run_name=None, exit_ok=False)}

    def reference(self, problem: Problem) -> str:
        return problem.canonical_solution

    def timeout_group(self, problem: Problem) -> str:
        return "/".join(problem.task_id.split("/")[1:3])  # the HumanEval problem, e.g. HumanEval/0


class ExactMatchTask(InfillingTask):
    """Single-line infilling scored by exact match of the first generated line (no execution)."""

    local = True
    checks = ("exact_match",)

    def local_verdict(self, problem: Problem, completion: str) -> ExecResult:
        line = completion.split("\n", 1)[0].strip()
        if line == problem.canonical_solution.strip():
            return ExecResult(Status.PASSED, None, 0.0)
        return ExecResult(Status.FAILED, None, 0.0, detail=f"expected {problem.canonical_solution.strip()!r}")


class FimLossTask(InfillingTask):
    """Single-line infilling scored by the likelihood of the removed line (nothing generated)."""

    kind = LOGLIKELIHOOD
    local = True

    def check_corpus(self, corpus: Any, backend: Backend) -> None:
        """Refuse a model without fill-in-the-middle before any work (there is no corpus here)."""
        why = backend.supports("infill")
        if why:
            raise UnsupportedFeatureError(f"{self.name}: {why}")

    def scores(self, problems: list[Problem], backend: Backend) -> list[tuple[float, int]]:
        return backend.score_infills([(p.prompt, p.suffix, p.canonical_solution) for p in problems])

    def summarize(
        self, problems: list[Problem], scores: dict[str, tuple[float, int]], backend: Backend, corpus: Any
    ) -> dict[str, Any]:
        nll = sum(scores[p.task_id][0] for p in problems)
        tokens = sum(scores[p.task_id][1] for p in problems)
        size = sum(len(p.canonical_solution.encode("utf-8")) for p in problems)
        return {
            "fim_loss": nll / tokens if tokens else None,
            "bits_per_byte": nll / math.log(2) / size if size else None,
            "tokens": tokens,
            "problems": len(problems),
        }


SINGLE_LINE = InfillingTask(
    "humaneval-infilling-single-line", "HumanEval single-line infilling", "SingleLineInfilling", True
)
MULTI_LINE = InfillingTask(
    "humaneval-infilling-multi-line", "HumanEval multi-line infilling", "MultiLineInfilling"
)
RANDOM_SPAN = InfillingTask(
    "humaneval-infilling-random-span", "HumanEval random-span infilling", "RandomSpanInfilling"
)
RANDOM_SPAN_LIGHT = InfillingTask(
    "humaneval-infilling-random-span-light",
    "HumanEval random-span infilling (light)",
    "RandomSpanInfillingLight",
)
EXACT_MATCH = ExactMatchTask(
    "fim-exact-match", "HumanEval single-line infilling, exact match", "SingleLineInfilling", True
)
FIM_LOSS = FimLossTask("fim-loss", "HumanEval single-line infilling, FIM loss", "SingleLineInfilling", True)
