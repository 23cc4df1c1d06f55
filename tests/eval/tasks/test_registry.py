"""The task registry: every name resolves lazily to its task, groups expand, typos get
suggestions, the CLI lists exactly the registry, and HumanEval-X tasks report why they cannot run
instead of failing every sample."""

from __future__ import annotations

import argparse

import pytest

from codelm.errors import CodelmError
from codelm.eval import cli
from codelm.eval.tasks import GROUPS, TASKS, get_task, multilingual, task_names


def test_every_entry_resolves_to_a_task_of_that_name():
    for name, target in TASKS.items():
        assert ":" in target
        task = get_task(name)
        assert task.name == name and task.title and task.file_names
        assert task.checks and task.kind in ("completion", "infill", "loglikelihood")


def test_groups_and_typos():
    assert task_names("humaneval,humaneval-infilling,humaneval") == [
        "humaneval",
        *GROUPS["humaneval-infilling"],
    ]
    assert len(task_names("humaneval-x")) == 6
    assert task_names(["all"]) == [n for n in TASKS if n != "perplexity"]  # it has no public data
    with pytest.raises(CodelmError, match="did you mean 'mbpp-plus'"):
        task_names("mbpp-pls")
    with pytest.raises(CodelmError, match="no tasks"):
        task_names(" , ")


def test_cli_lists_the_registry(capsys):
    parser = argparse.ArgumentParser()
    cli.add_eval_args(parser)
    assert cli.eval_from_args(parser.parse_args(["--list-tasks"])) is None
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert listed == [*TASKS, *GROUPS]


def test_humaneval_x_reports_a_missing_module(monkeypatch):
    task = get_task("humaneval-x-cpp")
    monkeypatch.setattr(
        multilingual, "load_module", lambda: "module codelm.eval.tasks.humaneval_x not available"
    )
    assert "not available" in task.unavailable()
    assert task.excluded == {}


def test_humaneval_x_reports_a_missing_toolchain(monkeypatch):
    class Fake:
        LANGUAGES = multilingual.LANGUAGES
        EXCLUDED: dict = {}

        @staticmethod
        def toolchain_available(language):
            return False, "g++ not found"

    monkeypatch.setattr(multilingual, "load_module", lambda: Fake)
    assert get_task("humaneval-x-cpp").unavailable() == "toolchain missing: g++ not found"


def test_humaneval_x_adapter_uses_the_module(data_dir):
    module = multilingual.load_module()
    if isinstance(module, str):
        pytest.skip(module)
    from codelm.eval.generation import GenSettings
    from codelm.eval.tasks.data import resolve_source

    task = get_task("humaneval-x-python")
    problems = task.load(resolve_source(task, data_dir))
    assert len(problems) == 164 - len(task.excluded)
    request = task.request(problems[0], GenSettings())
    assert request.prompt == module.generation_prompt(problems[0]) and request.stop == tuple(
        module.STOPS["python"]
    )
    assert set(task.programs(problems[0], "    return 1\n")) == {"main"}
