"""Metrics and the report table: pass@k only where every problem has n >= k, timeouts and
generation errors counted apart, nested checks, and skipped tasks shown with their reason."""

from __future__ import annotations

import pytest

from codelm.eval.report import summary_table
from codelm.eval.scoring import check_metrics, task_metrics


def test_check_metrics():
    verdicts = [("a", "passed"), ("a", "timeout"), ("b", "failed"), ("b", "generation_error")]
    metrics = check_metrics(verdicts, ks=(1, 2, 10))
    assert metrics["pass@1"] == pytest.approx(0.25) and metrics["pass@2"] == pytest.approx(0.5)
    assert "pass@10" not in metrics and metrics["k"] == [1, 2]
    assert metrics["counts"] == {"passed": 1, "failed": 1, "timeout": 1, "generation_error": 1}
    assert (metrics["n"], metrics["problems"], metrics["samples"]) == (2, 2, 4)
    low, high = metrics["ci"]["pass@1"]
    assert 0 <= low <= metrics["pass@1"] <= high <= 1


def test_not_executed_has_no_scores():
    metrics = check_metrics([("a", "not_executed")], ks=(1,))
    assert "pass@1" not in metrics and metrics["counts"] == {"not_executed": 1}


def test_nested_checks_and_table():
    verdicts = {"plus": [("a", "failed")], "base": [("a", "passed")]}
    entry = task_metrics(verdicts, ("plus", "base"), ks=(1, 10))
    assert entry["pass@1"] == 0.0 and entry["base"]["pass@1"] == 1.0
    rows = summary_table(
        {"mbpp-plus": entry, "humaneval-x-go": {"skipped": "toolchain missing: go"}}, (1, 10)
    )
    assert rows[0] == ["task", "n", "problems", "pass@1", "passed", "failed", "timeout", "skipped"]
    assert rows[1][:4] == ["mbpp-plus", "1", "1", "0.0000"] and rows[2][:4] == [
        "mbpp-plus (base)",
        "1",
        "1",
        "1.0000",
    ]
    assert rows[1][-1] == rows[2][-1] == ""  # the reason's column, not a count's
    assert rows[3] == ["humaneval-x-go", "-", "-", "-", "-", "-", "-", "toolchain missing: go"]
