"""HumanEval infilling: the four sets load, requests are infills, the check program is
human-eval-infilling's, single-line completions keep one line, and canonical middles pass."""

from __future__ import annotations

import pytest

from codelm.eval.generation import GenSettings
from codelm.eval.tasks import humaneval_infilling as infilling

from ..conftest import assert_all_pass, load_task, score_canonical

SIZES = {
    "humaneval-infilling-single-line": 1033,
    "humaneval-infilling-multi-line": 5815,
    "humaneval-infilling-random-span": 1640,
    "humaneval-infilling-random-span-light": 164,
}


@pytest.mark.parametrize("name", SIZES)
def test_sets_load(name, data_dir):
    _, problems = load_task(name, data_dir)
    assert len(problems) == SIZES[name]


def test_request_program_and_single_line_cleaning(data_dir):
    task, problems = load_task("humaneval-infilling-single-line", data_dir)
    problem = problems[0]
    request = task.request(problem, GenSettings())
    assert (request.kind, request.prompt, request.suffix, request.stop) == (
        "infill",
        problem.prompt,
        problem.suffix,
        ("\n",),
    )
    source = task.programs(problem, "X\n")["main"].source
    # human_eval_infilling/execution.py:
    # prompt + completion + suffix + "\n" + test + "\n" + f"check({entry_point})"
    assert (
        source
        == problem.prompt
        + "X\n"
        + problem.suffix
        + "\n"
        + problem.test
        + "\n"
        + f"check({problem.entry_point})"
    )
    assert task.clean(problem, "    return 1\n    more\n", "base") == "    return 1\n"
    assert task.clean(problem, "    return 1", "base") == "    return 1\n"
    assert task.timeout_group(problem) == "HumanEval/0"
    assert not task.chat_ok and task.kind == "infill"
    multi = infilling.MULTI_LINE
    assert multi.clean(problem, "a\nb\n", "base") == "a\nb\n" and multi.stops == ()


@pytest.mark.parametrize("name", [n for n in SIZES if not n.endswith("multi-line")])
def test_canonical_all_pass(name, data_dir, tmp_path):
    entry = score_canonical(name, data_dir, tmp_path)
    assert entry["problems"] == SIZES[name]
    assert_all_pass(entry)


@pytest.mark.slow
def test_canonical_multi_line_all_pass(data_dir, tmp_path, full_sweep):
    name = "humaneval-infilling-multi-line"
    entry = score_canonical(name, data_dir, tmp_path)
    assert entry["problems"] == SIZES[name]
    assert_all_pass(entry)
