"""SAFIM: per-language tasks of the three splits, FIM requests split at the placeholder, SAFIM's
post-processing and API syntax match, ExecEval's output comparison, and filled programs that run
on the unit tests in every language whose toolchain is here (correct ones pass, wrong ones fail)."""

from __future__ import annotations

import pytest

from codelm.eval.generation import GenSettings
from codelm.eval.tasks import task_names
from codelm.eval.tasks.safim import PLACEHOLDER, java_class, syntax_match
from codelm.eval.tasks.safim_check import validate
from codelm.eval.tasks.safim_truncate import _parser, truncate_api_call, truncate_block, truncate_control

from ..conftest import load_task, score_samples

COUNTS = {  # SOURCES.md
    "block": {"cpp": 4968, "java": 2479, "python": 805, "csharp": 529},
    "control": {"cpp": 4881, "java": 2464, "python": 750, "csharp": 534},
    "api": {"python": 181, "java": 56, "cpp": 52, "csharp": 21},
}
WRONG = {
    "python": "print(-123456789)\n",
    "cpp": "cout << -123456789;",
    "java": "System.out.println(-123456789);",
    "csharp": "Console.WriteLine(-123456789);",
}


def test_groups_name_every_language():
    assert task_names("safim-api") == [f"safim-api-{lang}" for lang in ("python", "cpp", "java", "csharp")]
    assert len(task_names("safim")) == 12


@pytest.mark.parametrize("split", ["block", "control", "api"])
def test_problems_per_language_and_infill_requests(split, data_dir):
    for lang, count in COUNTS[split].items():
        task, problems = load_task(f"safim-{split}-{lang}", data_dir)
        assert len(problems) == count and {p.lang for p in problems} == {lang}
    problem = problems[0]
    request = task.request(problem, GenSettings())
    assert request.kind == "infill" and not request.stop
    assert request.prompt + PLACEHOLDER[problem.lang] + request.suffix == problem.prompt
    chat = task.request(problem, GenSettings(mode="chat"))
    assert (
        chat.messages[0]["content"].startswith(problem.prompt)
        and "Provide only the replaced" in (chat.messages[0]["content"])
    )


def test_api_syntax_match_is_safims():
    assert syntax_match("np.sum(grad,  axis = 0)", "np.sum(grad, axis=0)", "python")
    assert syntax_match("f(a, x=1, y=2)", "f(a, y=2, x=1)", "python")  # keyword order is free
    assert not syntax_match("np.sum(grad, axis=1)", "np.sum(grad, axis=0)", "python")
    # SAFIM's function_calls_match compares the arguments only, not the callee: kept as published
    assert syntax_match("np.mean(grad, axis=0)", "np.sum(grad, axis=0)", "python")
    assert syntax_match("new JSONObject( data )", "new JSONObject(data)", "java")
    assert not syntax_match("JSONObject(data)", "new JSONObject(data)", "java")


def test_truncation_rules():
    assert truncate_control("python", "\n  i in graph[i]:\n        continue\n") == "  i in graph[i]:"
    assert truncate_control("cpp", "int i = 0; i < (n); i++) {\n x;") == "int i = 0; i < (n); i++"
    assert truncate_api_call("np.ones((n, n))\nprint(a)") == "np.ones((n, n))"


def test_block_truncation_keeps_the_block(data_dir):
    if _parser("python") is None:
        pytest.skip("tree-sitter-language-pack not installed (pip install 'codelm[data]')")
    _, problems = load_task("safim-block-python", data_dir)
    problem = problems[0]
    assert truncate_block("python", problem.eval_prompt, problem.ground_truth) == problem.ground_truth
    garbage = problem.ground_truth + "\n)))( this does not parse\n"
    kept = truncate_block("python", problem.eval_prompt, garbage)
    assert kept.strip() == problem.ground_truth.strip()


def test_execevals_output_comparison():
    assert validate("1 2\n3", "1 2  \n3\n")
    assert validate("0.5000000000000", "0.5")  # numbers within 1e-12
    assert not validate("0.5", "0.5001")
    assert validate("YES", "yes") and not validate("abc", "ABC")
    assert not validate("1 2", "1 2 3")


def test_java_class_name():
    assert java_class("import x;\npublic class Solution {\n static void main(String[] a){} }") == "Solution"
    assert java_class("class A { }\nclass B {\n public static void main(String[] a) {} }") == "B"


def _score(name, data_dir, out, records, limit):
    return score_samples(name, records, data_dir, out, limit)


@pytest.mark.parametrize("lang", ["python", "cpp", "java", "csharp"])
def test_filled_programs_run_on_the_unit_tests(lang, data_dir, tmp_path):
    name = f"safim-block-{lang}"
    task, problems = load_task(name, data_dir)
    why = task.unavailable()
    if why:
        pytest.skip(why)
    problems = problems[:3]
    records = []
    for p in problems:
        # a trailing space makes the text differ from the ground truth, so the program really runs
        records += [
            {"task_id": p.task_id, "completion": p.ground_truth + " "},
            {"task_id": p.task_id, "completion": p.ground_truth},
            {"task_id": p.task_id, "completion": WRONG[lang]},
        ]
    entry, results = _score(name, data_dir, tmp_path, records, limit=3)
    statuses = [r["status"] for r in results]
    assert statuses[1::3] == ["passed"] * 3, results
    assert statuses[0::3] == ["passed"] * 3, [r["error"] for r in results[0::3]]
    assert all(s != "passed" for s in statuses[2::3]), results[2::3]
    assert "reference_failures" not in entry


def test_python_syntax_errors_are_reported(data_dir, tmp_path):
    _, problems = load_task("safim-block-python", data_dir)
    records = [{"task_id": problems[0].task_id, "completion": "print((\n"}]
    _, results = _score("safim-block-python", data_dir, tmp_path, records, limit=1)
    assert results[0]["status"] == "syntax_error", results[0]


def test_api_is_matched_not_run(data_dir, tmp_path):
    _, problems = load_task("safim-api-python", data_dir)
    p = problems[0]
    records = [
        {"task_id": p.task_id, "completion": " ".join(p.ground_truth)},  # whitespace is ignored
        {"task_id": p.task_id, "completion": "object()"},
    ]
    entry, results = _score("safim-api-python", data_dir, tmp_path, records, limit=1)
    assert [r["status"] for r in results] == ["passed", "failed"]
