"""Per-benchmark metrics from per-sample verdicts: pass@k with its interval, and status counts.

A sample's status is its check's sandbox verdict (``passed``, ``failed``, ``timeout``,
``syntax_error``, ``compile_error``, ``error``), or ``generation_error`` when no text could be
generated for it (it counts as not passed), or ``not_executed`` (``--generate-only``). Timeouts
are counted apart from failures. pass@k is the unbiased estimator averaged over problems
(``passk.aggregate``: percentile bootstrap interval over problems, standard error), for every
requested k that every problem has enough samples for.

``syntax_valid`` is the share of samples whose candidate source (``Task.candidate_source``:
HumanEval's prompt + completion) compiles with ``compile()`` in this process. Compiling parses and
builds bytecode, it runs nothing, so it is measured even with ``--generate-only``; a sample whose
generation failed counts as invalid.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .passk import aggregate, counts_by_task
from .program import Status

GENERATION_ERROR, NOT_EXECUTED = "generation_error", "not_executed"
# what compile() raises for bad source: SyntaxError (and Indentation/TabError), ValueError (null
# bytes), and the parser's limits on deep nesting and huge literals
COMPILE_FAILURES = (SyntaxError, ValueError, RecursionError, MemoryError, OverflowError)
STATUSES = (*(s.value for s in Status), GENERATION_ERROR, NOT_EXECUTED)


def check_metrics(verdicts: Sequence[tuple[str, str]], ks: Iterable[int], confidence: float = 0.95) -> dict:
    """Metrics of one check from ``(task_id, status)`` per sample."""
    counts = Counter(status for _, status in verdicts)
    per_problem = Counter(task_id for task_id, _ in verdicts)
    n_min = min(per_problem.values()) if per_problem else 0
    metrics: dict[str, Any] = {}
    executed = NOT_EXECUTED not in counts and verdicts
    if executed:
        usable = sorted(k for k in set(ks) if k <= n_min)
        report = aggregate(
            counts_by_task((t, s == Status.PASSED.value) for t, s in verdicts), usable, confidence=confidence
        )
        for k, value in report.items():
            metrics[f"pass@{k}"] = value.value
        metrics["ci"] = {f"pass@{k}": [v.ci_low, v.ci_high] for k, v in report.items()}
        metrics["stderr"] = {f"pass@{k}": v.stderr for k, v in report.items()}
        metrics["confidence"] = confidence
        metrics["k"] = list(report)
    metrics["counts"] = {status: counts.get(status, 0) for status in STATUSES if counts.get(status)}
    metrics["n"] = n_min  # pass@k needs k <= n on every problem
    metrics["n_max"] = max(per_problem.values()) if per_problem else 0  # samples files may vary
    metrics["problems"] = len(per_problem)
    metrics["samples"] = len(verdicts)
    return metrics


def task_metrics(
    verdicts: Mapping[str, Sequence[tuple[str, str]]], checks: Sequence[str], ks: Iterable[int]
) -> dict:
    """A task's summary entry: its headline check's metrics, the other checks nested by name."""
    ks = list(ks)
    entry = check_metrics(verdicts[checks[0]], ks)
    for check in checks[1:]:
        entry[check] = check_metrics(verdicts[check], ks)
    return entry


def compiles(source: str) -> bool:
    """Whether ``source`` compiles as a module (nothing is executed; warnings are not shown)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. invalid escape sequences in model text
        try:
            compile(source, "<candidate>", "exec", dont_inherit=True)
        except COMPILE_FAILURES:
            return False  # exactly what the metric counts
    return True


def syntax_valid(
    task: Any, problems: Sequence[Any], generations: Mapping[tuple[str, str], list]
) -> float | None:
    """Share of ``task``'s samples whose candidate source compiles; None if the task names none."""
    valid = total = 0
    for problem in problems:
        for sample in generations.get((task.name, problem.task_id), []):
            source = task.candidate_source(problem, sample.completion)
            if source is None:
                return None
            total += 1
            valid += sample.error is None and compiles(source)
    return valid / total if total else None
