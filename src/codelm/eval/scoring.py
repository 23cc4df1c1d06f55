"""Per-benchmark metrics from per-sample verdicts: pass@k with its interval, and status counts.

A sample's status is its check's sandbox verdict (``passed``, ``failed``, ``timeout``,
``syntax_error``, ``compile_error``, ``error``), or ``generation_error`` when no text could be
generated for it (it counts as not passed), or ``not_executed`` (``--generate-only``). Timeouts
are counted apart from failures. pass@k is the unbiased estimator averaged over problems
(``passk.aggregate``: percentile bootstrap interval over problems, standard error), for every
requested k that every problem has enough samples for.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .passk import aggregate, counts_by_task
from .program import Status

GENERATION_ERROR, NOT_EXECUTED = "generation_error", "not_executed"
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
    metrics["n"] = n_min
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
