"""MTPB: instances per (problem, input), exclusions with reasons, Salesforce's per-turn truncation
and print rewriting, turn-by-turn generation with each sample's own history, and the
expected-output self-test."""

from __future__ import annotations

import ast

import pytest

from codelm.eval.execution import ExecutionPool
from codelm.eval.generation import GenSettings, Sampling
from codelm.eval.program import Status
from codelm.eval.tasks import mtpb
from codelm.eval.tasks import mtpb_check as check

from ..conftest import assert_all_pass, assert_no_strays, load_task, score_canonical


class TurnBackend:
    """Answers every turn with a fixed line per turn and records what it was asked."""

    name, pregenerated = "fake", False

    def __init__(self) -> None:
        self.requests = []

    def supports(self, kind):
        return None

    def generate(self, requests):
        self.requests.append(list(requests))
        turn = len(self.requests)
        return [[f"x{turn} = {turn}\n\n\n# junk after the cut"] for _ in requests]

    def close(self):
        pass


def test_instances_and_exclusions(data_dir):
    task, problems = load_task("mtpb", data_dir)
    assert len(problems) == 115 * 5 - len(mtpb.EXCLUDED) == 558
    first = problems[0]
    assert (
        first.task_id == "MTPB/1/0"
        and first.turns[0] == 'Assign the string "abcde" to a variable named "my_string".'
    )
    assert "MTPB/38/0" in task.excluded and "Salesforce did not publish" in task.excluded["MTPB/38/0"]
    assert "MTPB/41/1" in task.excluded and "MTPB/41/0" not in task.excluded
    assert {p.task_id for p in problems}.isdisjoint(task.excluded)


def test_truncate_is_salesforces():
    # mtpb_sample.test_truncate
    text = "\nif len_a > len_b:\n    result = a\nelse:\n    result = b\n\n\n\n#"
    assert mtpb.truncate(text) == "\nif len_a > len_b:\n    result = a\nelse:\n    result = b"
    assert mtpb.truncate("print(1)\nprint(2)\n") == "print(1)\n"
    assert mtpb.truncate("x = 1\n# next step\ny = 2") == "x = 1\n"


def test_print_rewrite_is_salesforces():
    # mtpb_exec.test_try_rewrite_ast_with_print
    assert (
        check.try_rewrite_ast_with_print("def f(a):\n    return a ** 2\nf(2)")
        == "def f(a):\n    return a ** 2\nprint(f(2))"
    )
    assert check.try_rewrite_ast_with_print("print(f(2))") == "print(f(2))"
    assert ast.unparse(ast.parse(check.try_rewrite_ast_with_print("x = 5"))) == "x = print(5)"
    assert check.try_rewrite_ast_with_print("for i in x:\n    pass") == "for i in x:\n    pass"
    assert check.try_rewrite_ast_with_print("def (") == "def ("


def test_check_equivalence():
    np = pytest.importorskip("numpy")
    assert check.check_equivalence([("a", 1)], [["a", 1]])
    assert check.check_equivalence(np.int64(3), 3) and check.check_equivalence(
        np.array([1.0, 2.0]), [1.0, 2.0]
    )
    assert check.check_equivalence(0.1 + 0.2, 0.3) and not check.check_equivalence(0.31, 0.3)
    assert check.check_equivalence("True", True) and not check.check_equivalence(1, False)
    assert check.check_equivalence("12", 12)
    with pytest.raises(ValueError):
        check.check_equivalence({"a": 1}, {"a": 1})


def test_generation_is_turn_by_turn_with_own_histories(data_dir):
    task, problems = load_task("mtpb", data_dir)
    backend = TurnBackend()
    settings = GenSettings(n=2, sampling=Sampling(temperature=0.8, seed=5), batch_size=4)
    problem = problems[0]
    [(got, samples)] = list(task.generate([problem], backend, settings))
    assert got is problem and len(samples) == 2 and len(backend.requests) == len(problem.turns)
    second = backend.requests[1][0]
    assert second.prompt.startswith(mtpb.PREFIX + f"# {problem.turns[0]}\nx1 = 1\n\n# {problem.turns[1]}\n")
    assert [r.sampling.seed for r in backend.requests[0]] == [5, 6]  # one seed per sample history
    assert backend.requests[0][0].sampling.max_new_tokens == problem.max_gen_length
    program = samples[0].completion
    assert program.endswith(f"# {problem.turns[-1]}\nx{len(problem.turns)} = {len(problem.turns)}\n\n")


def test_chat_generation_keeps_the_conversation(data_dir):
    task, problems = load_task("mtpb", data_dir)

    class ChatBackend(TurnBackend):
        def generate(self, requests):
            self.requests.append(list(requests))
            return [[f"Step:\n```python\nv{len(self.requests)} = 1\n```\n"] for _ in requests]

    backend = ChatBackend()
    [(problem, [sample])] = list(task.generate(problems[:1], backend, GenSettings(mode="chat")))
    messages = backend.requests[1][0].messages
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert messages[0]["content"].startswith(mtpb.CHAT_INTRO) and messages[2]["content"] == problem.turns[1]
    assert "v1 = 1\n\n# " in sample.completion


@pytest.fixture(scope="module")
def pool():
    with ExecutionPool(2, allow_code_execution=True) as p:
        yield p
    assert_no_strays()


def test_verdicts(data_dir, pool):
    task, problems = load_task("mtpb", data_dir)
    problem = problems[0]  # expected ['a', 'b', 'c', 'd', 'e']
    programs = {
        "oracle": task.reference(problem),
        "last_expression": "x = sorted(set('edcba'))\nx",
        "raises_after_print": "print(sorted(set('abcde')))\nraise ValueError('late')",
        "wrong": "print(['a'])",
        "silent": "x = 1",
        "syntax": "x = (",
    }
    results = pool.map(task.programs(problem, text)["main"] for text in programs.values())
    verdicts = dict(zip(programs, [task.judge(r).status for r in results], strict=True))
    assert verdicts == {
        "oracle": Status.PASSED,
        "last_expression": Status.PASSED,
        "raises_after_print": Status.PASSED,  # do_exec swallows it; the printed value counts
        "wrong": Status.FAILED,
        "silent": Status.FAILED,
        "syntax": Status.SYNTAX_ERROR,
    }


def test_expected_outputs_all_pass(data_dir, tmp_path):
    entry = score_canonical("mtpb", data_dir, tmp_path)
    assert entry["problems"] == 558
    assert_all_pass(entry)
