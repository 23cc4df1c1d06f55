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
from codelm.eval.tasks.data import HubDataset, Source, read_hub, read_records, resolve_source

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
    with pytest.raises(CodelmError, match="none of sanitized-mbpp.json in"):
        resolve_source(get_task("mbpp-sanitized"), tmp_path)
    with pytest.raises(CodelmError, match="--data-dir DIR"):
        resolve_source(get_task("mtpb"))


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
