"""docstring-to-function: problems derived from a corpus (only functions whose doctest passes), the
reference's doctest judging candidates with or without a docstring, base and chat prompts on a tiny
real checkpoint, resume, and the refusals."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from codelm.errors import CodelmError
from codelm.eval.backends.engine import EngineBackend
from codelm.eval.backends.samples import SamplesBackend
from codelm.eval.generation import GenSettings, Sampling
from codelm.eval.runner import EvalOptions, run_eval
from codelm.eval.tasks import get_task
from codelm.eval.tasks.data import Source
from codelm.eval.worker import CodeExecutionNotAllowed
from codelm.recipes.derive import doctest_problems, sft_pairs

NAME = "docstring-to-function"
MODULE = '''
import math


def hypotenuse(a, b):
    """Length of the hypotenuse of a right triangle with legs a and b.

    >>> hypotenuse(3, 4)
    5.0
    """
    return math.sqrt(a * a + b * b)


def clamp(x, lo, hi):
    """Clamp x into the closed interval [lo, hi], whatever side it falls on.

    >>> clamp(5, 0, 3)
    3
    >>> clamp(-1, 0, 3)
    0
    """
    return _low(x, lo) if x < lo else min(x, hi)


def _low(x, lo):
    return lo


def wrong(n):
    """Double n, says the docstring, but the code does not.

    >>> wrong(2)
    4
    """
    return n + 1


def example_first(n):
    """>>> example_first(1)
    1
    """
    return n


if __name__ == "__main__":
    raise SystemExit("the module's script block must not run")
'''
RIGHT = {  # whole functions, without docstrings, as SFT taught the model to answer
    "hypotenuse": "def hypotenuse(a, b):\n    return math.hypot(a, b)\n",
    "clamp": "def clamp(x, lo, hi):\n    return max(lo, min(x, hi))\n",
}
WRONG = {
    "hypotenuse": "def hypotenuse(a, b):\n    return a + b\n",
    "clamp": "def clamp(x, lo, hi):\n    return x\n",
}


@pytest.fixture(scope="module")
def problems_file(tmp_path_factory) -> Path:
    from codelm.eval.execution import ExecutionPool

    with ExecutionPool(1, allow_code_execution=True) as pool:
        records = doctest_problems([MODULE, "def broken(:\n"], pool=pool)
    path = tmp_path_factory.mktemp("dtf") / "problems.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_problems_are_functions_whose_doctest_passes(problems_file):
    found = records(problems_file)
    assert [r["name"] for r in found] == ["hypotenuse", "clamp"]  # not wrong, not example_first
    sft = {p["messages"][0]["content"] for p in sft_pairs([MODULE])}
    for r in found:
        assert r["prompt"] in sft  # the user turn SFT trains on
        assert r["reference"].startswith(f"def {r['name']}(") and r["reference"] in r["module"]
        assert r["module"] == MODULE and r["task_id"].endswith(r["name"])
    assert len({r["task_id"] for r in found}) == 2


def evaluate(tmp_path: Path, backend, name: str, data: Path, **options) -> dict:
    opts = EvalOptions(
        tasks=(NAME,),
        output=tmp_path / name,
        data={NAME: str(data)},
        allow_code_execution=True,
        progress=False,
    )
    return run_eval(dataclasses.replace(opts, **options), backend)[NAME]


def test_the_references_doctest_judges_any_candidate(problems_file, tmp_path):
    """References, docstring-less functions and base-mode bodies pass; wrong code and syntax errors
    do not (and count against syntax_valid)."""
    found = {r["name"]: r for r in records(problems_file)}
    samples = []
    for name, r in found.items():
        body = RIGHT[name].split("\n", 1)[1]  # what a base model continues the stub with
        for completion in (r["reference"], RIGHT[name], body, WRONG[name], "def (:\n"):
            samples.append({"task_id": r["task_id"], "completion": completion})
    path = tmp_path / "samples.jsonl"
    path.write_text("".join(json.dumps(s) + "\n" for s in samples))
    entry = evaluate(tmp_path, SamplesBackend(path), "samples", problems_file)
    assert entry["n"] == 5 and entry["problems"] == 2
    assert entry["counts"] == {"passed": 6, "failed": 2, "syntax_error": 2}, entry["counts"]
    assert entry["syntax_valid"] == pytest.approx(0.8)
    assert "reference_failures" not in entry  # every reference passed calibration
    verdicts = [json.loads(line)["status"] for line in (tmp_path / "samples" / "samples.jsonl").open()]
    assert verdicts == ["passed"] * 3 + ["failed", "syntax_error"] + ["passed"] * 3 + [
        "failed",
        "syntax_error",
    ]


class Counting:
    """The engine backend, counting the requests it is asked to generate."""

    def __init__(self, backend):
        self.inner, self.requests = backend, 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def generate(self, requests):
        self.requests += len(requests)
        return self.inner.generate(requests)


@pytest.mark.parametrize("mode", ["base", "chat"])
def test_a_tiny_model_is_evaluated_and_resumed(mode, problems_file, tiny_engine, tmp_path):
    backend = Counting(EngineBackend(tiny_engine("llama")))
    settings = GenSettings(mode=mode, sampling=Sampling(max_new_tokens=24), max_new_tokens=24)
    entry = evaluate(tmp_path, backend, "run", problems_file, settings=settings)
    assert backend.requests == 2 and entry["problems"] == 2 and entry["samples"] == 2
    assert "pass@1" in entry and 0.0 <= entry["syntax_valid"] <= 1.0
    assert sum(entry["counts"].values()) == 2 and "generation_error" not in entry["counts"]
    first = [json.loads(line) for line in (tmp_path / "run" / "samples.jsonl").open()]
    found = records(problems_file)
    if mode == "chat":  # the SFT user turn, as it was trained on
        assert [s["prompt"] for s in first] == [r["prompt"] for r in found]
    else:  # a HumanEval-style stub: signature and the instruction as docstring
        assert first[1]["prompt"] == (
            "def clamp(x, lo, hi):\n"
            '    """Clamp x into the closed interval [lo, hi], whatever side it falls on."""\n'
        )
    again = evaluate(tmp_path, backend, "run", problems_file, settings=settings, resume=True)
    assert backend.requests == 2 and again == entry
    executions = (tmp_path / "run" / "executions.jsonl").read_text().splitlines()
    assert len(executions) == 2  # nothing ran twice


def test_refusals(problems_file, tmp_path):
    found = records(problems_file)
    path = tmp_path / "samples.jsonl"
    path.write_text(json.dumps({"task_id": found[0]["task_id"], "completion": "x"}) + "\n")
    with pytest.raises(CodeExecutionNotAllowed):
        evaluate(tmp_path, SamplesBackend(path), "a", problems_file, allow_code_execution=False)
    with pytest.raises(CodelmError, match=f"--data {NAME}=PATH"):
        run_eval(
            EvalOptions(tasks=(NAME,), output=tmp_path / "b", allow_code_execution=True), SamplesBackend(path)
        )
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    good = found[1]
    bad = tmp_path / "bad.jsonl"
    for change, match in [
        ({"module": None}, "record 1 needs string fields"),
        ({"reference": good["reference"] + "\nx = 1\n"}, "not part of its module"),
        ({"name": "hypotenuse"}, "one function named hypotenuse"),
        (
            {"module": "def clamp(x):\n    return x\n", "reference": "def clamp(x):\n    return x\n"},
            "no doctest",
        ),
    ]:
        bad.write_text(json.dumps(good | change) + "\n")
        with pytest.raises(CodelmError, match=match):
            get_task(NAME).load(Source(path=bad))
    bad.write_text((json.dumps(good) + "\n") * 2)
    with pytest.raises(CodelmError, match="task ids repeat"):
        get_task(NAME).load(Source(path=bad))
