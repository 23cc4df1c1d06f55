"""Where problems come from: overrides, data directories, bundled files and hub datasets (with a
stand-in `datasets` module, since no hub is reachable here), and clear errors otherwise."""

from __future__ import annotations

import gzip
import json
import sys
import types

import pytest

from codelm.errors import CodelmError
from codelm.eval.tasks import get_task
from codelm.eval.tasks.data import HubDataset, Source, read_hub, resolve_source
from codelm.jsonl import read_records

MBPP_RECORD = {
    "task_id": 11,
    "text": "Do it.",
    "code": "def f():\n    return 1\n",
    "test_list": ["assert f() == 1"],
}


def test_resolution_order(tmp_path):
    mbpp = get_task("mbpp")
    (tmp_path / "mbpp.jsonl").write_text(json.dumps(MBPP_RECORD) + "\n")
    assert resolve_source(mbpp, tmp_path) == Source(path=tmp_path / "mbpp.jsonl")
    assert resolve_source(mbpp, None, str(tmp_path)) == Source(path=tmp_path / "mbpp.jsonl")
    assert resolve_source(mbpp) == Source(hub=HubDataset("google-research-datasets/mbpp", "full", ("test",)))
    hub = resolve_source(mbpp, tmp_path, "someone/mbpp-copy").hub
    assert hub == HubDataset("someone/mbpp-copy", "full", ("test",))  # the task's config and split
    with pytest.raises(CodelmError, match="neither an existing path nor a hub id"):
        resolve_source(mbpp, None, "./nowhere/at/all")
    # a --data-dir without the task's file falls through to the bundled copy, then the hub
    assert resolve_source(get_task("mbpp-sanitized"), tmp_path).hub.id == "google-research-datasets/mbpp"
    with pytest.raises(CodelmError, match="--data-dir DIR.*--data mtpb=PATH.*no copy.*no hub"):
        resolve_source(get_task("mtpb"))
    with pytest.raises(CodelmError, match="has none of them"):
        resolve_source(get_task("mtpb"), tmp_path)


def test_main_job_benchmarks_ship_with_the_package(tmp_path):
    """HumanEval and single-line infilling resolve with no data directory at all (offline, no
    ../shared), byte-identical to the published files (checksums from bundled/SOURCES.md)."""
    import hashlib

    from codelm.eval.tasks.data import BUNDLED

    expected = {
        "HumanEval.jsonl.gz": "b796127e635a67f93fb35c04f4cb03cf06f38c8072ee7cee8833d7bee06979ef",
        "HumanEval-SingleLineInfilling.jsonl.gz": (
            "1277073e7ddce163ef68598c2bca777f688a53df99422f097e37362090f88e1f"
        ),
    }
    for name, digest in expected.items():
        assert hashlib.sha256((BUNDLED / name).read_bytes()).hexdigest() == digest
        assert name in (BUNDLED / "SOURCES.md").read_text()
    assert (BUNDLED / "LICENSE.human-eval").is_file() and (BUNDLED / "LICENSE.human-eval-infilling").is_file()
    for name, count in (("humaneval", 164), ("humaneval-infilling-single-line", 1033)):
        task = get_task(name)
        source = resolve_source(task, tmp_path)  # a data dir without the files: the shipped copy
        assert source.path is not None and source.path.parent == BUNDLED
        assert len(task.load(source)) == count


def test_hub_datasets_through_datasets(monkeypatch):
    asked = []

    def load_dataset(name, config, split):
        asked.append((name, config, split))
        return [dict(MBPP_RECORD, task_id=11 + len(asked))]

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    sanitized = HubDataset("org/mbpp", "full", ("test", "validation"))
    assert [r["task_id"] for r in read_hub(sanitized)] == [12, 13]
    assert asked == [("org/mbpp", "full", "test"), ("org/mbpp", "full", "validation")]
    problems = get_task("mbpp").load(Source(hub=HubDataset("org/mbpp", "full")))
    assert [p.task_id for p in problems] == ["MBPP/14"]


def test_hub_without_datasets_says_how_to_get_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # import raises ImportError
    with pytest.raises(CodelmError, match=r"codelm\[hub\]"):
        read_hub(HubDataset("org/name"))


def test_record_files(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps([{"x": 1}]))
    with gzip.open(tmp_path / "b.jsonl.gz", "wt") as f:
        f.write('{"x": 2}\n\n')
    assert read_records(tmp_path / "a.json") == [{"x": 1}] and read_records(tmp_path / "b.jsonl.gz") == [
        {"x": 2}
    ]
    with pytest.raises(CodelmError, match="cannot read"):
        read_records(tmp_path / "missing.jsonl")
    (tmp_path / "bad.jsonl").write_text('{"task_id": 11}\n')
    with pytest.raises(CodelmError, match="lacks"):
        get_task("mbpp").load(Source(path=tmp_path / "bad.jsonl"))
