"""StepStats / PipelineStats: the conservation law, merging shards, JSON."""

from collections import Counter

import pytest

from codelm.data import DataError, PipelineStats, StepStats


def shard(docs_in, kept, **dropped):
    return StepStats(docs_in=docs_in, kept=kept, dropped=Counter(dropped))


def test_check_detects_a_broken_law():
    shard(5, 3, a=2).check()
    with pytest.raises(DataError, match="conservation law broken"):
        shard(5, 3, a=1).check("filter")


def test_merge_adds_counts_and_keeps_the_law():
    a = PipelineStats({"read": shard(4, 3, binary=1), "dedup": shard(3, 2, exact_duplicate=1)})
    b = PipelineStats({"read": shard(6, 6), "dedup": shard(6, 4, exact_duplicate=1, near_duplicate=1)})
    merged = PipelineStats().merge(a).merge(b)
    merged.check()
    assert merged["read"].docs_in == 10 and merged["read"].dropped == {"binary": 1}
    assert merged["dedup"].dropped == {"exact_duplicate": 2, "near_duplicate": 1}


def test_merge_refuses_different_pipelines():
    with pytest.raises(DataError, match="different pipelines"):
        PipelineStats({"a": StepStats()}).merge(PipelineStats({"b": StepStats()}))


def test_json_round_trip_and_summary():
    s = PipelineStats(
        {"pii": StepStats(docs_in=2, kept=2, modified=Counter(email=3)), "f": shard(2, 1, too_short=1)}
    )
    back = PipelineStats.from_json(s.to_json())
    assert back.to_dict() == s.to_dict()
    assert list(back.steps) == ["pii", "f"]
    assert "f: 2 -> 1 (dropped: too_short=1)" in s.summary()
    with pytest.raises(KeyError, match="no step named"):
        s["missing"]
