"""pass@k against known values and the direct combinatorial formula; the benchmark aggregate."""

from __future__ import annotations

import itertools
import logging
import math
import statistics

import pytest

from codelm.eval.passk import PassAtK, aggregate, bootstrap_interval, counts_by_task, pass_at_k


def direct(n: int, c: int, k: int) -> float:
    """1 - C(n-c, k) / C(n, k), in exact integer arithmetic (Chen et al. 2021, eq. 1)."""
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def by_enumeration(n: int, c: int, k: int) -> float:
    """The definition: the share of k-subsets of the n samples that contain a correct one."""
    subsets = list(itertools.combinations(range(n), k))
    return sum(any(i < c for i in subset) for subset in subsets) / len(subsets)


def test_known_values():
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)
    assert pass_at_k(10, 0, 5) == 0.0
    assert pass_at_k(10, 10, 1) == 1.0
    assert pass_at_k(10, 6, 5) == 1.0  # n - c < k: every 5-subset holds a correct sample
    assert pass_at_k(1, 1, 1) == 1.0
    assert pass_at_k(200, 1, 100) == pytest.approx(0.5)


@pytest.mark.parametrize("n", [1, 2, 5, 9, 20, 50])
def test_matches_the_combinatorial_formula(n):
    for c in range(n + 1):
        for k in range(1, n + 1):
            assert pass_at_k(n, c, k) == pytest.approx(direct(n, c, k), abs=1e-12)


def test_matches_the_definition_on_small_cases():
    for n, c, k in [(5, 2, 2), (6, 1, 3), (7, 3, 4), (4, 0, 2)]:
        assert pass_at_k(n, c, k) == pytest.approx(by_enumeration(n, c, k))


def test_stable_where_the_binomials_overflow_floats():
    value = pass_at_k(2000, 7, 1000)
    assert 0.99 < value <= 1.0
    assert value == pytest.approx(direct(2000, 7, 1000), abs=1e-12)


@pytest.mark.parametrize(("n", "c", "k"), [(10, 3, 11), (10, 11, 1), (10, -1, 1), (10, 3, 0)])
def test_rejects_impossible_arguments(n, c, k):
    with pytest.raises(ValueError):
        pass_at_k(n, c, k)


def test_counts_by_task():
    outcomes = [("a", True), ("a", False), ("b", False), ("a", True)]
    assert counts_by_task(outcomes) == {"a": (3, 2), "b": (1, 0)}


def test_aggregate_means_over_problems_with_interval(caplog):
    counts = {f"t{i}": (10, i % 11) for i in range(40)}
    with caplog.at_level(logging.WARNING):
        report = aggregate(counts, ks=(1, 10, 100))
    assert set(report) == {1, 10}  # pass@100 needs n >= 100 everywhere
    assert "pass@100 skipped" in caplog.text
    one = report[1]
    assert isinstance(one, PassAtK)
    values = [c / 10 for _, c in counts.values()]
    assert one.value == pytest.approx(statistics.fmean(values))
    assert one.stderr == pytest.approx(statistics.stdev(values) / math.sqrt(len(values)))
    assert one.ci_low <= one.value <= one.ci_high
    assert one.ci_high - one.ci_low == pytest.approx(2 * 1.96 * one.stderr, rel=0.35)
    assert one.n_problems == 40 and one.confidence == 0.95
    assert aggregate(counts, ks=(1,)) == {1: one}  # fixed seed: identical reruns


def test_aggregate_edge_cases():
    assert aggregate({"only": (5, 5)}, ks=(1,))[1].ci_low == 1.0
    with pytest.raises(ValueError):
        aggregate({})
    low, high = bootstrap_interval([0.0, 1.0], 0.9, 200, seed=3)
    assert 0.0 <= low <= high <= 1.0
