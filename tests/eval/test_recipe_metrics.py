"""The tiny recipe's metrics from `codelm eval` itself: HumanEval (pass@1, syntax_valid),
fim-exact-match and perplexity on a tiny checkpoint through the CLI, the last two without
--allow-code-execution; syntax validity without executing anything."""

from __future__ import annotations

import json

import pytest

from codelm.cli import main
from codelm.eval.backends.samples import SamplesBackend
from codelm.eval.report import summary_table
from codelm.eval.runner import EvalOptions, run_eval
from codelm.eval.scoring import compiles
from codelm.eval.tasks import get_task
from codelm.eval.tasks.data import resolve_source

from .conftest import assert_no_strays

PERPLEXITY_KEYS = {
    "perplexity",
    "unigram_perplexity",
    "bits_per_byte",
    "unigram_bits_per_byte",
    "tokens",
    "documents",
    "unigram_fitted_on",
}


def eval_argv(checkpoint, docs, out, tasks: str) -> list[str]:
    return [
        "eval",
        "--model",
        str(checkpoint),
        "--tasks",
        tasks,
        "--limit",
        "4",
        "--max-new-tokens",
        "16",
        "--data",
        f"perplexity={docs}",
        "--no-progress",
        "--output",
        str(out),
    ]


def test_the_recipes_metrics_through_the_cli(tiny_checkpoint, tmp_path, capsys):
    docs = tmp_path / "heldout.jsonl"
    texts = ["def add(a, b):\n    return a + b\n", "import os\nprint(os.sep)\n", "x = 1\n" * 20]
    docs.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    checkpoint = tiny_checkpoint("llama")

    out = tmp_path / "all"
    argv = eval_argv(checkpoint, docs, out, "humaneval,fim-exact-match,perplexity")
    assert main([*argv, "--allow-code-execution"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    humaneval, fim, ppl = summary["humaneval"], summary["fim-exact-match"], summary["perplexity"]
    assert humaneval["problems"] == fim["problems"] == 4
    assert {"pass@1", "syntax_valid"} <= set(humaneval) and 0 <= humaneval["syntax_valid"] <= 1
    assert "pass@1" in fim and sum(fim["counts"].values()) == 4
    assert PERPLEXITY_KEYS | {"title", "source"} == set(ppl)
    assert ppl["documents"] == 3 and ppl["tokens"] > 20 and ppl["perplexity"] > 1
    assert "syntax ok" in (out / "report.md").read_text()
    assert_no_strays()

    capsys.readouterr()
    local = tmp_path / "local"  # no --allow-code-execution: nothing executes, so nothing to allow
    assert main(eval_argv(checkpoint, docs, local, "fim-exact-match,perplexity")) == 0
    again = json.loads((local / "summary.json").read_text())
    assert again["fim-exact-match"]["counts"] == fim["counts"]  # greedy: the same lines
    assert again["perplexity"]["perplexity"] == pytest.approx(ppl["perplexity"], rel=1e-6)
    assert main(eval_argv(checkpoint, docs, tmp_path / "refused", "fim-exact-match,humaneval")) == 1
    assert "--allow-code-execution" in capsys.readouterr().err


def test_syntax_validity_needs_no_execution(tmp_path):
    task = get_task("humaneval")
    problems = task.load(resolve_source(task))[:4]
    samples = tmp_path / "samples.jsonl"
    with open(samples, "w") as f:
        for i, p in enumerate(problems):
            completion = p.canonical_solution if i < 3 else "    return (\n"
            f.write(json.dumps({"task_id": p.task_id, "completion": completion}) + "\n")
    options = EvalOptions(
        tasks=("humaneval",), output=tmp_path / "run", limit=4, execute=False, progress=False
    )
    entry = run_eval(options, SamplesBackend(samples))["humaneval"]
    assert entry["syntax_valid"] == pytest.approx(0.75) and entry["counts"] == {"not_executed": 4}


def test_what_compiles(tmp_path):
    assert compiles("def f(x):\n    return x\n") and compiles("s = '\\d'\n")  # a warning is not an error
    assert not compiles("def f(:\n") and not compiles("if x:\nreturn 1\n")
    assert not compiles("x = 1\0")  # null byte: ValueError (3.11) or SyntaxError (3.12)
    assert not compiles("x = " + "(" * 5000 + ")" * 5000)  # the parser's nesting limit
    marker = tmp_path / "ran"
    assert compiles(f"open({str(marker)!r}, 'w').close()\n") and not marker.exists()  # nothing runs


def test_the_table_shows_perplexity_and_syntax_validity():
    summary = {
        "humaneval": {"pass@1": 0.25, "counts": {"passed": 1, "failed": 3}, "n": 1, "problems": 4},
        "perplexity": {"perplexity": 123.456, "unigram_perplexity": 500.0, "tokens": 90, "documents": 3},
    }
    summary["humaneval"]["syntax_valid"] = 0.5
    rows = summary_table(summary, (1,))
    assert rows[0] == [
        "task",
        "n",
        "problems",
        "pass@1",
        "syntax ok",
        "ppl",
        "unigram ppl",
        "passed",
        "failed",
        "timeout",
    ]
    assert rows[1] == ["humaneval", "1", "4", "0.2500", "0.5000", "-", "-", "1", "3", "0"]
    assert rows[2] == ["perplexity", "-", "3", "-", "-", "123.46", "500.00", "-", "-", "-"]
    only = summary_table({"perplexity": summary["perplexity"]}, (1,))
    assert only == [
        ["task", "n", "problems", "ppl", "unigram ppl"],
        ["perplexity", "-", "3", "123.46", "500.00"],
    ]
