"""CRUXEval: the published prompts and post-processing, CRUXEval's scoring rules, the 800
canonical ``assert f(input) == output`` checks (slow; a fixed subset in the default tier), and wrong
predictions failing through ``codelm eval --samples``."""

from __future__ import annotations

import pytest

from codelm.eval.generation import GenSettings
from codelm.eval.tasks.cruxeval import postprocess

from ..conftest import assert_all_pass, load_task, score_canonical, score_samples


def test_problems_and_published_prompts(data_dir):
    task, problems = load_task("cruxeval-o", data_dir)
    assert len(problems) == 800 and problems[0].task_id == "sample_0" and problems[-1].task_id == "sample_799"
    p = problems[0]
    prompt = task.request(p, GenSettings()).prompt
    assert prompt.startswith("You are given a Python function and an assertion")
    assert prompt.endswith(f"[PYTHON]\n{p.code}\nassert f({p.input}) == ??\n[/PYTHON]\n[ANSWER]\n")
    assert prompt.count("[ANSWER]") == 4 and task.stops == ("[/ANSWER]",)
    cot_task, _ = load_task("cruxeval-o-cot", data_dir)
    assert cot_task.prompt(p).endswith("== ??\n[/PYTHON]\n[THOUGHT]\n") and "step by step" in cot_task.prompt(
        p
    )
    input_task, _ = load_task("cruxeval-i", data_dir)
    assert input_task.prompt(p).endswith(f"assert f(??) == {p.output}\n[/PYTHON]\n[ANSWER]\n")
    chat = input_task.request(p, GenSettings(mode="chat"))
    assert chat.messages[0]["content"].endswith("[/PYTHON]\n") and not chat.stop


@pytest.mark.parametrize(
    "text, mode, cot, expected",
    [
        ("assert f(17) == 17\n", "output", False, "17"),
        (
            "Step 1...\n[/THOUGHT]\n[ANSWER]\nassert f('hi') == 'bhihia'\n[/ANSWER]",
            "output",
            True,
            "'bhihia'",
        ),
        ('assert f("ba", "nana") == "banana"\n', "input", False, 'f("ba", "nana")'),
        ("We need 16.\n[/THOUGHT]\n[ANSWER]\nassert f(16) == 17\n", "input", True, "f(16)"),
        ("[1, 2]", "output", False, "[1, 2]"),
    ],
)
def test_postprocessing_is_cruxevals(text, mode, cot, expected):
    assert postprocess(text, mode, cot) == expected


def test_scoring_rules(data_dir):
    output_task, problems = load_task("cruxeval-o", data_dir)
    input_task, _ = load_task("cruxeval-i", data_dir)
    p = problems[0]
    assert output_task.programs(p, "[1]")["main"].source == f"{p.code}\nassert {p.output} == [1]"
    # calling f on the input is not a prediction; an input prediction must call f
    assert "must not call f" in output_task.programs(p, f"f({p.input})")["main"].source
    assert "must call f" in input_task.programs(p, "[1, 2]")["main"].source
    reference = output_task.reference_programs(p)["main"].source
    assert reference == f"{p.code}\nassert f({p.input}) == {p.output}"


def _score(name: str, data_dir, out, records: list[dict], limit: int) -> list[dict]:
    return score_samples(name, records, data_dir, out, limit)[1]


def test_wrong_predictions_fail(data_dir, tmp_path):
    _, problems = load_task("cruxeval-o", data_dir)
    problems = problems[:6]
    output_samples = []
    for p in problems:
        output_samples += [
            {"task_id": p.task_id, "completion": p.output},
            {"task_id": p.task_id, "completion": f"f({p.input})"},  # not a literal
            {"task_id": p.task_id, "completion": "'definitely not the output'"},
            {"task_id": p.task_id, "completion": "[1, 2"},  # does not parse
        ]
    records = _score("cruxeval-o", data_dir, tmp_path / "o", output_samples, limit=6)
    statuses = [r["status"] for r in records]
    assert statuses == ["passed", "failed", "failed", "syntax_error"] * 6
    input_samples = []
    for p in problems:
        input_samples += [
            {"task_id": p.task_id, "completion": f"f({p.input})"},
            {"task_id": p.task_id, "completion": p.input},  # no call
            {"task_id": p.task_id, "completion": "f(object())"},  # raises or returns something else
        ]
    records = _score("cruxeval-i", data_dir, tmp_path / "i", input_samples, limit=6)
    assert [r["status"] for r in records] == ["passed", "failed", "failed"] * 6


@pytest.mark.parametrize("name", ["cruxeval-o", "cruxeval-i"])
def test_canonical_subset_passes(name, data_dir, tmp_path):
    entry = score_canonical(name, data_dir, tmp_path, limit=120)
    assert entry["problems"] == 120 and "reference_failures" not in entry
    assert_all_pass(entry)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["cruxeval-o", "cruxeval-i"])
def test_canonical_all_800_pass(name, data_dir, tmp_path, full_sweep):
    entry = score_canonical(name, data_dir, tmp_path)
    assert entry["problems"] == 800 and "reference_failures" not in entry
    assert_all_pass(entry)
