"""Run directories: journals survive an interrupted run, resuming needs the same settings, and a
finished run is never overwritten by accident."""

from __future__ import annotations

import json

import pytest

from codelm.errors import CodelmError
from codelm.eval.generation import Generated
from codelm.eval.program import ExecResult, Status
from codelm.eval.store import RunStore

CONFIG = {"generation": {"backend": "b", "mode": "base", "n": 1, "sampling": {"temperature": 0.0}}}


def test_journals_are_reloaded_on_resume(tmp_path):
    store = RunStore(tmp_path, CONFIG)
    store.add_generation(
        "humaneval", "HumanEval/0", [Generated("raw", "done"), Generated("", "", "too long")]
    )
    store.add_execution(
        ("humaneval", "HumanEval/0", 0, "main"), ExecResult(Status.TIMEOUT, None, 3.1, detail="wall")
    )
    store.close()
    with open(tmp_path / "executions.jsonl", "a") as f:
        f.write('{"task": "humaneval", "task_id": "HumanEval/0", "ind')  # killed mid-line
    again = RunStore(tmp_path, CONFIG, resume=True)
    assert again.generations["humaneval", "HumanEval/0"][1].error == "too long"
    assert again.executions == {
        ("humaneval", "HumanEval/0", 0, "main"): ExecResult(Status.TIMEOUT, None, 3.1, detail="wall")
    }
    again.close()


def test_resume_needs_the_same_settings_and_runs_are_not_overwritten(tmp_path):
    RunStore(tmp_path, CONFIG).close()
    (tmp_path / "summary.json").write_text("{}")
    with pytest.raises(CodelmError, match="--resume"):
        RunStore(tmp_path, CONFIG)
    other = json.loads(json.dumps(CONFIG))
    other["generation"]["sampling"]["temperature"] = 0.8
    with pytest.raises(CodelmError, match="other settings.*temperature"):
        RunStore(tmp_path, other, resume=True)


def test_a_corrupt_line_in_the_middle_is_an_error(tmp_path):
    (tmp_path / "generations.jsonl").write_text("{broken\n{}\n")
    with pytest.raises(CodelmError, match="generations.jsonl:1 is corrupt"):
        RunStore(tmp_path, CONFIG, resume=True)


def test_a_model_trained_again_at_the_same_path_is_not_resumed(tmp_path):
    """The weights fingerprint is part of the settings: the stored answers belong to the old model.
    A run stored before the fingerprint existed (no `weights` key) still resumes."""
    old = json.loads(json.dumps(CONFIG))
    RunStore(tmp_path / "a", old | {"generation": old["generation"] | {"weights": "0123"}}).close()
    with pytest.raises(CodelmError, match="other settings.*weights: '0123' -> '4567'"):
        RunStore(tmp_path / "a", {"generation": CONFIG["generation"] | {"weights": "4567"}}, resume=True)
    RunStore(tmp_path / "b", CONFIG).close()
    RunStore(tmp_path / "b", {"generation": CONFIG["generation"] | {"weights": "4567"}}, resume=True).close()
