"""Scoring what users have: a samples file is scored on the selected problems it covers (coverage
in summary.json and the report), `--limit` with a full file, the journal of a run that never
finished, samples of unselected or skipped tasks, `--require-all`, and a report header that says
n and temperature per task, warnings only for evaluated problems and skip reasons in their column."""

from __future__ import annotations

import json
import logging

import pytest

from codelm.errors import CodelmError
from codelm.eval import cli
from codelm.eval.backends.samples import SamplesBackend
from codelm.eval.generation import GenSettings, Sampling
from codelm.eval.report import markdown, summary_table
from codelm.eval.runner import EvalOptions, plan_tasks, run_eval
from codelm.eval.tasks import get_task, humaneval, mtpb

from .test_cli import CanonicalBackend, parse


def write(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


@pytest.fixture(scope="module")
def problems(humaneval_path):
    return list(humaneval.load_problems(humaneval_path).values())


def canonical(problems, *, wrong: int = 0):
    """Records of the canonical solutions (and ``wrong`` extra failing ones per problem)."""
    records = []
    for p in problems:
        records.append({"task_id": p.task_id, "completion": p.canonical_solution})
        records += [{"task_id": p.task_id, "completion": "    return None\n"}] * wrong
    return records


def run(samples, out, *extra: str, tasks: str = "humaneval", data_dir=None):
    argv = ["--samples", samples, "--tasks", tasks, "--allow-code-execution", "--no-progress"]
    argv += ["--data-dir", str(data_dir), "--output", str(out), *extra]
    return cli.eval_from_args(parse(*argv))


def test_a_partial_file_is_scored_on_what_it_covers(problems, humaneval_path, tmp_path, caplog):
    # five problems of 164; HumanEval/3 has two samples, the others one
    samples = write(tmp_path / "s.jsonl", canonical(problems[:5]) + canonical(problems[3:4], wrong=1)[1:])
    with caplog.at_level(logging.WARNING, logger="codelm.eval.runner"):
        summary = run(samples, tmp_path / "a", data_dir=humaneval_path.parent)
    entry = summary["humaneval"]
    assert entry["problems"] == 5 and entry["counts"] == {"passed": 5, "failed": 1}
    missing = [p.task_id for p in problems[5:]]
    assert entry["coverage"] == {"problems": 5, "selected": 164, "missing": missing}
    assert entry["generation"] == {"n": [1, 2], "temperature": None}
    assert "samples for 5 of 164 selected problems" in caplog.text
    report = (tmp_path / "a" / "report.md").read_text()
    assert "the samples cover 5 of 164 selected problems" in report and "HumanEval/5, HumanEval/6" in report
    assert "| humaneval | 1-2 (varies by problem) | not recorded (samples file) |" in report
    assert "| humaneval | 1-2 | 5 |" in report  # the results table's n and problems
    with pytest.raises(CodelmError, match=r"159 problems have no samples.*--require-all"):
        run(samples, tmp_path / "b", "--require-all", data_dir=humaneval_path.parent)


def test_limit_with_a_full_file(problems, humaneval_path, tmp_path):
    samples = write(tmp_path / "s.jsonl", canonical(problems))
    for flags in ([], ["--require-all"]):  # samples beyond --limit are neither missing nor foreign
        out = tmp_path / f"run{len(flags)}"
        entry = run(samples, out, "--limit", "3", *flags, data_dir=humaneval_path.parent)["humaneval"]
        assert entry["counts"] == {"passed": 3}
        assert entry["coverage"] == {"problems": 3, "selected": 3, "missing": []}
        assert "cover" not in (out / "report.md").read_text()


def test_the_journal_of_an_interrupted_run_scores(problems, humaneval_path, tmp_path):
    options = EvalOptions(
        tasks=("humaneval",),
        output=tmp_path / "gen",
        settings=GenSettings(n=2, batch_size=1),
        ks=(1,),
        limit=3,
        data_dir=humaneval_path.parent,
        allow_code_execution=True,
        progress=False,
    )
    with pytest.raises(RuntimeError, match="killed"):  # dies after its second problem
        run_eval(options, CanonicalBackend({p.task_id: p for p in problems}, crash_after=2))
    journal = str(tmp_path / "gen" / "generations.jsonl")
    summary = run(journal, tmp_path / "score", "--limit", "3", data_dir=humaneval_path.parent)
    entry = summary["humaneval"]
    assert entry["counts"] == {"passed": 4} and entry["generation"]["n"] == 2
    assert entry["coverage"] == {"problems": 2, "selected": 3, "missing": ["HumanEval/2"]}


def test_samples_of_unselected_tasks_are_ignored_with_a_warning(problems, data_dir, tmp_path, caplog):
    records = canonical(problems[:2]) + [{"task": "mbpp", "task_id": "MBPP/11", "completion": "x"}]
    records.append({"task": "humaneval", "task_id": "HumanEval/9999", "completion": "x"})
    samples = write(tmp_path / "s.jsonl", records)
    with caplog.at_level(logging.WARNING, logger="codelm.eval.runner"):
        summary = run(samples, tmp_path / "a", "--limit", "2", data_dir=data_dir)
    assert summary["humaneval"]["counts"] == {"passed": 2}
    assert (
        "1 sample task ids belong to no selected task, e.g. ['mbpp:MBPP/11']; they are ignored" in caplog.text
    )
    assert "humaneval: 1 sample task ids are not problems of it, e.g. ['HumanEval/9999']" in caplog.text
    with pytest.raises(CodelmError, match="not problems of it"):
        run(samples, tmp_path / "b", "--limit", "2", "--require-all", data_dir=data_dir)
    del records[-1]
    with pytest.raises(CodelmError, match="belong to no selected task"):
        run(
            write(tmp_path / "t.jsonl", records),
            tmp_path / "c",
            "--limit",
            "2",
            "--require-all",
            data_dir=data_dir,
        )


def test_a_task_without_any_samples_is_skipped(problems, data_dir, tmp_path):
    samples = write(tmp_path / "s.jsonl", canonical(problems[:1]))
    summary = run(samples, tmp_path / "a", "--limit", "1", tasks="humaneval,mbpp", data_dir=data_dir)
    assert summary["humaneval"]["counts"] == {"passed": 1}
    assert summary["mbpp"] == {"skipped": "no samples for any of its 1 selected problems"}
    table = (tmp_path / "a" / "report.md").read_text()
    assert "| mbpp | - | - | - | - | - | - | - | no samples for any of its 1 selected problems |" in table


@pytest.mark.parametrize("name", ["humaneval-x-cpp", "multipl-e-lua"])
def test_a_missing_toolchain_skips_the_language_with_a_samples_file(name, data_dir, tmp_path, monkeypatch):
    """As with --model: the language is skipped with the reason, and its samples (tagged, or
    untagged with its ids) are not mistaken for a wrong --tasks, even with --require-all."""
    task = get_task(name)
    from codelm.eval.tasks.data import resolve_source

    first = task.load(resolve_source(task, data_dir))[0].task_id
    monkeypatch.setattr(task, "unavailable", lambda: "toolchain missing: (hidden by the test)")
    samples = write(
        tmp_path / "s.jsonl",
        [{"task": name, "task_id": first, "completion": "x"}, {"task_id": first, "completion": "y"}],
    )
    summary = run(samples, tmp_path / "a", "--require-all", tasks=name, data_dir=data_dir)
    assert summary == {name: {"skipped": "toolchain missing: (hidden by the test)"}}


def test_the_header_states_n_and_temperature_per_task(problems, humaneval_path, tmp_path):
    settings = GenSettings(n=3, sampling=Sampling(temperature=0.4, seed=1), batch_size=4)
    options = EvalOptions(
        tasks=("humaneval",),
        output=tmp_path,
        settings=settings,
        ks=(1,),
        limit=2,
        data_dir=humaneval_path.parent,
        execute=False,
        progress=False,
    )
    summary = run_eval(options, CanonicalBackend({p.task_id: p for p in problems}))
    assert summary["humaneval"]["generation"] == {"n": 3, "temperature": 0.4}
    report = (tmp_path / "report.md").read_text()
    assert "| humaneval | 3 | 0.4 |" in report and "seed 1" in report
    assert "coverage" not in summary["humaneval"]  # a model answers every problem


def test_missing_dependency_warnings_only_for_evaluated_problems(data_dir, tmp_path, monkeypatch, caplog):
    """MTPB/6 needs a package: said when MTPB/6 is evaluated, and only then."""
    monkeypatch.setattr(mtpb, "NEEDS", {"6": "codelm_no_such_module"})
    records = [{"task_id": "MTPB/1/0", "completion": "x"}, {"task_id": "MTPB/6/0", "completion": "x"}]
    samples = write(tmp_path / "s.jsonl", records)

    def notes(limit):
        caplog.clear()
        options = EvalOptions(tasks=("mtpb",), output=tmp_path, limit=limit, data_dir=data_dir)
        with caplog.at_level(logging.WARNING, logger="codelm.eval.runner"):
            (plan,), _ = plan_tasks(options, SamplesBackend(samples))
        return plan.notes, caplog.text

    warning = "MTPB/6 needs codelm_no_such_module, which is not installed: it cannot pass"
    found, logged = notes(None)
    assert found == (warning,) and warning in logged
    found, logged = notes(3)  # MTPB/6 is beyond --limit 3
    assert found == () and "MTPB/6" not in logged
    summary = {"mtpb": {"n": 1, "n_max": 1, "problems": 1, "counts": {"failed": 1}, "warnings": [warning]}}
    assert f"- mtpb: {warning}" in markdown(summary, summary_table(summary, (1,)), "b", GenSettings())


def test_the_skip_reason_has_its_own_column():
    summary = {
        "humaneval": {"pass@1": 1.0, "n": 1, "n_max": 1, "problems": 1, "counts": {"passed": 1}},
        "multipl-e-jl": {"skipped": "toolchain missing: julia | not found"},
    }
    rows = summary_table(summary, (1,))
    assert rows[0] == ["task", "n", "problems", "pass@1", "passed", "failed", "timeout", "skipped"]
    assert rows[1] == ["humaneval", "1", "1", "1.0000", "1", "0", "0", ""]
    assert rows[2] == ["multipl-e-jl", "-", "-", "-", "-", "-", "-", "toolchain missing: julia | not found"]
    report = markdown(summary, rows, "b", GenSettings())
    assert "| multipl-e-jl | - | - | - | - | - | - | toolchain missing: julia \\| not found |" in report
