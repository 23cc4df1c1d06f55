"""The local executor: same documents as one in-process run, global dedup across shards, resume."""

import json

import pytest

from codelm.data import DataError, DirectoryReader, run_pipeline
from codelm.data.executors import LocalExecutor, plan_stages
from codelm.data.executors.shard_io import read_docs
from codelm.data.steps import (
    ExactDedup,
    HeuristicFilter,
    LanguageFilter,
    NearDedup,
    PiiRedactor,
    QualityFilter,
    SyntaxFilter,
)

from .conftest import read_output, shard_bytes


def steps(root):
    return [
        DirectoryReader(root),
        LanguageFilter(["python"]),
        HeuristicFilter(),
        SyntaxFilter(),
        ExactDedup(),
        NearDedup(),
        PiiRedactor(),
        QualityFilter(0.2),
    ]


@pytest.fixture(scope="module")
def reference(crawl):
    out, stats = run_pipeline(steps(crawl))
    return sorted((d.to_dict() for d in out), key=lambda d: d["id"]), stats


@pytest.fixture(scope="module")
def run4(crawl, tmp_path_factory):
    out = tmp_path_factory.mktemp("run4")
    stats = LocalExecutor(out, shards=4, workers=2, write_excluded=True).run(steps(crawl))
    return out, stats


def test_stages_cut_at_global_steps(crawl):
    stages = plan_stages(steps(crawl))
    assert [s.name for s in stages] == ["00-read", "01-exact_dedup", "02-near_dedup", "03-quality_filter"]
    assert stages[2].step_names == ["near_dedup", "pii_redactor"]
    assert not plan_stages([DirectoryReader(crawl), QualityFilter(threshold=3.0)])[0].head  # streams


def test_sharded_run_equals_one_in_process_run(run4, reference):
    out, stats = run4
    ref_docs, ref_stats = reference
    assert sorted(read_output(out), key=lambda d: d["id"]) == ref_docs
    assert stats.to_dict() == {
        "steps": [
            {**s, "counters": {**s["counters"], **stats[s["name"]].counters}}
            for s in ref_stats.to_dict()["steps"]
        ]
    }  # same counts per step; the executor adds counters of the global phases


def test_dedup_is_global_across_shards(run4):
    out, stats = run4
    assert stats["exact_dedup"].dropped == {"exact_duplicate": 1}
    assert stats["near_dedup"].dropped == {"near_duplicate": 1}
    assert stats["exact_dedup"].counters["duplicate_groups"] == 1
    plan = json.loads((out / "plan.json").read_text())
    assert plan["shards"] == 4
    ids = {d["id"] for d in read_output(out)}
    assert "repo00/" + next(i.split("/")[1] for i in ids if i.startswith("repo00/")) in ids
    assert not any(i.endswith(("copy_of_first.py", "fork_of_first.py")) for i in ids)  # larger ids go


def test_stats_json_conservation_and_exclusions(run4):
    out, stats = run4
    doc = json.loads((out / "stats.json").read_text())
    for s in doc["steps"]:
        assert s["docs_in"] + s["created"] == s["kept"] + sum(s["dropped"].values()), s["name"]
    assert doc["executor"] == "local" and doc["shards"] == 4
    assert doc["profile"]["output"]["docs"] == len(read_output(out))
    assert doc["profile"]["input"]["languages"]["python"] > 20
    excluded = [d for p in sorted((out / "excluded").glob("*.jsonl.gz")) for d in read_docs(p)]
    assert len(excluded) == sum(s.n_dropped for s in stats.steps.values())
    assert {d.metadata["drop_reason"] for d in excluded} >= {
        "exact_duplicate",
        "near_duplicate",
        "low_quality",
    }
    assert not list((out / "stages").glob("*/shard-*.jsonl.gz"))  # intermediates removed after success


def test_output_does_not_depend_on_workers_or_shards(crawl, run4, tmp_path):
    LocalExecutor(tmp_path / "a", shards=3, workers=1).run(steps(crawl))
    ids = sorted(d["id"] for d in read_output(tmp_path / "a"))
    assert ids == sorted(d["id"] for d in read_output(run4[0]))


def test_same_shards_same_bytes_and_resume_is_a_no_op(crawl, run4, tmp_path):
    out = tmp_path / "b"
    ex = LocalExecutor(out, shards=4, workers=1, write_excluded=True)
    ex.run(steps(crawl))
    assert shard_bytes(out) == shard_bytes(run4[0])
    before = {p: p.stat().st_mtime_ns for p in (out / "data").iterdir()}
    again = LocalExecutor(out, shards=4, workers=1, write_excluded=True, resume=True)
    again.run(steps(crawl))
    assert {p: p.stat().st_mtime_ns for p in (out / "data").iterdir()} == before
    assert again.skipped == [
        f"{s}: all 4 shards done" for s in ("00-read", "01-exact_dedup", "02-near_dedup", "03-quality_filter")
    ]


def test_parquet_output(crawl, tmp_path):
    out = tmp_path / "pq"
    LocalExecutor(out, shards=2, workers=1, output_format="parquet").run(steps(crawl)[:3])
    files = sorted((out / "data").glob("*.parquet"))
    assert len(files) == 2
    docs = [d for f in files for d in read_docs(f)]
    assert docs and all(d.language == "python" for d in docs)


def test_refusals(crawl, tmp_path):
    LocalExecutor(tmp_path / "r", shards=2).run(steps(crawl)[:2])
    with pytest.raises(DataError, match="already holds a run"):
        LocalExecutor(tmp_path / "r", shards=2).run(steps(crawl)[:2])
    with pytest.raises(DataError, match="another plan"):
        LocalExecutor(tmp_path / "r", shards=3, resume=True).run(steps(crawl)[:2])
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "x").write_text("")
    with pytest.raises(DataError, match="not empty"):
        LocalExecutor(tmp_path / "junk").run(steps(crawl)[:2])
    with pytest.raises(DataError, match="reader as its first step"):
        LocalExecutor(tmp_path / "n").run([LanguageFilter(["python"])])


def test_more_shards_than_repositories(crawl, tmp_path):
    few = [DirectoryReader(crawl / "repo00", layout="single"), *steps(crawl)[1:]]
    stats = LocalExecutor(tmp_path / "e", shards=5, workers=1).run(few)
    stats.check()
    assert len(read_output(tmp_path / "e")) == stats["quality_filter"].kept > 0
    assert len(list((tmp_path / "e" / "data").glob("shard-*"))) == 5  # empty shards are files too
