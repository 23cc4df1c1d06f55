"""MBPP and sanitized MBPP: the test split, prompts and check programs as bigcode and Google build
them, and every canonical solution passing through `codelm eval --samples` with default settings."""

from __future__ import annotations

import pytest

from codelm.eval.generation import GenSettings
from codelm.eval.tasks import mbpp

from ..conftest import assert_all_pass, load_task, score_canonical


def test_test_split_and_sanitized_counts(data_dir):
    _, full = load_task("mbpp", data_dir)
    assert len(full) == 500 and full[0].task_id == "MBPP/11" and full[-1].task_id == "MBPP/510"
    _, sanitized = load_task("mbpp-sanitized", data_dir)
    assert len(sanitized) == 427 and sanitized[0].task_id == "MBPP-sanitized/2"
    assert any(p.imports == "import math" for p in sanitized)


def test_prompt_and_program_are_bigcodes_with_googles_setup(data_dir):
    task, problems = load_task("mbpp", data_dir)
    problem = next(p for p in problems if p.task_id == "MBPP/367")
    assert problem.prompt == f'"""\n{problem.text}\n{problem.tests[0]}\n"""\n'
    assert problem.entry_point == "is_tree_balanced" and problem.setup.startswith("root = Node(1)")
    source = task.programs(problem, "    pass\n")["main"].source
    assert (
        source
        == problem.prompt + "    pass\n" + "\n" + problem.setup + "\n" + "\n".join(problem.tests) + "\n"
    )
    request = task.request(problem, GenSettings())
    assert request.kind == "completion" and request.prompt == problem.prompt and "\nassert" in request.stop
    chat = task.request(problem, GenSettings(mode="chat"))
    assert chat.kind == "chat" and problem.tests[0] in chat.messages[0]["content"] and not chat.stop


@pytest.mark.parametrize(
    "test, name",
    [
        ("assert remove_Occ('hello','l') == 'heo'", "remove_Occ"),
        ("assert set(similar_elements((3, 4), (5, 4))) == set((4,))", "similar_elements"),
        ("assert math.isclose(area(2), 4.0, rel_tol=0.001)", "area"),
        ("assert not is_prime(4)", "is_prime"),
    ],
)
def test_called_function(test, name):
    assert mbpp.called_function(test) == name


def test_canonical_mbpp_all_pass(data_dir, tmp_path):
    entry = score_canonical("mbpp", data_dir, tmp_path)
    assert entry["problems"] == 500
    assert_all_pass(entry)


def test_canonical_mbpp_sanitized_all_pass(data_dir, tmp_path):
    entry = score_canonical("mbpp-sanitized", data_dir, tmp_path)
    assert entry["problems"] == 427
    assert_all_pass(entry)
