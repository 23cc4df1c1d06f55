"""Pre-generated samples: any number per task id, routed by task when tagged, a run's own
generations journal, and which records each task claims (the runner decides what to do with the
rest)."""

from __future__ import annotations

import json

import pytest

from codelm.errors import CodelmError
from codelm.eval.backends.samples import SamplesBackend
from codelm.eval.generation import GenerationFailed, GenRequest


def write(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_claims_route_and_report(tmp_path):
    path = write(
        tmp_path / "s.jsonl",
        [
            {"task_id": "HumanEval/0", "completion": "a"},
            {"task_id": "HumanEval/0", "completion": "b"},
            {"task": "mbpp", "task_id": "MBPP/11", "completion": "c"},
            {"task_id": "Other/1", "completion": "d"},
            {"task_id": "Mbpp/2", "solution": "def f(): pass"},  # EvalPlus's field
        ],
    )
    backend = SamplesBackend(path)
    assert backend.claim("humaneval", ["HumanEval/0", "HumanEval/1"]) == {"HumanEval/0"}
    assert backend.claim("mbpp", []) == {"MBPP/11"}
    assert backend.claim("mbpp-plus", ["Mbpp/2"]) == {"Mbpp/2"}
    assert backend.unclaimed() == ["Other/1"]
    texts = backend.generate([GenRequest("completion", key=("humaneval", "HumanEval/0"))])
    assert texts == [["a", "b"]]
    with pytest.raises(GenerationFailed, match="no samples for HumanEval/1"):
        backend.generate([GenRequest("completion", key=("humaneval", "HumanEval/1"))])


def test_bad_files(tmp_path):
    with pytest.raises(CodelmError, match="does not exist"):
        SamplesBackend(tmp_path / "missing.jsonl")
    with pytest.raises(CodelmError, match="needs string fields"):
        SamplesBackend(write(tmp_path / "bad.jsonl", [{"task_id": "x"}]))
    (tmp_path / "broken.jsonl").write_text("{not json\n")
    with pytest.raises(CodelmError, match="broken.jsonl:1"):
        SamplesBackend(tmp_path / "broken.jsonl")


def test_a_runs_generations_journal(tmp_path):
    """generations.jsonl of a run that never finished: one record per problem with its samples."""
    samples = [{"raw": "r", "completion": "a", "error": None}, {"raw": "", "completion": "", "error": "x"}]
    path = write(
        tmp_path / "generations.jsonl",
        [
            {"task": "humaneval", "task_id": "HumanEval/0", "samples": samples},
            {"task": "humaneval", "task_id": "HumanEval/1", "samples": []},
        ],
    )
    backend = SamplesBackend(path)
    assert backend.claim("humaneval", ["HumanEval/0", "HumanEval/1"]) == {"HumanEval/0"}
    assert backend.generate([GenRequest("completion", key=("humaneval", "HumanEval/0"))]) == [["a", ""]]
    with pytest.raises(CodelmError, match="needs string fields"):
        SamplesBackend(write(tmp_path / "bad.jsonl", [{"task_id": "x", "samples": [{"raw": "r"}]}]))
    with pytest.raises(CodelmError, match="not a JSON object"):
        SamplesBackend(write(tmp_path / "list.jsonl", [["x"]]))
