"""The task registry: every name resolves lazily to its task, groups expand, typos get
suggestions, the CLI lists exactly the registry, and HumanEval-X tasks report why they cannot run
instead of failing every sample."""

from __future__ import annotations

import argparse
import logging

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
    own_data = ("perplexity", "docstring-to-function", "preference")  # no public data
    assert task_names(["all"]) == [n for n in TASKS if n not in own_data]
    with pytest.raises(CodelmError, match="did you mean 'mbpp-plus'"):
        task_names("mbpp-pls")
    with pytest.raises(CodelmError, match="no tasks"):
        task_names(" , ")


def list_tasks(*flags: str) -> None:
    parser = argparse.ArgumentParser()
    cli.add_eval_args(parser)
    assert cli.eval_from_args(parser.parse_args(["--list-tasks", *flags])) is None


@pytest.fixture
def quiet_codelm_logger():
    """--verbose adds a handler to the "codelm" logger; take it away after the test."""
    logger = logging.getLogger("codelm")
    handlers, level = list(logger.handlers), logger.level
    yield
    logger.handlers[:] = handlers
    logger.setLevel(level)


def test_cli_lists_the_registry(capsys):
    list_tasks()
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert listed == [*TASKS, *GROUPS]


def test_cli_list_without_toolchains_is_one_line_per_task(monkeypatch, tmp_path, capsys, quiet_codelm_logger):
    """A machine that never ran `make system-deps`: g++ present but without Boost (its error spans
    lines), the other compilers absent. Each reason stays on its task's line; --verbose logs the rest."""
    from codelm.eval.tasks.humaneval_x import toolchains

    gxx = tmp_path / "g++"
    gxx.write_text(
        "#!/bin/sh\necho 'probe.cpp:1:9: fatal error: boost/any.hpp: No such file' >&2\n"
        "echo '    1 | #include<boost/any.hpp>' >&2\necho 'compilation terminated.' >&2\nexit 1\n"
    )
    gxx.chmod(0o755)
    monkeypatch.setattr(toolchains, "SANDBOX_PATH", str(tmp_path))
    toolchains._resolve.cache_clear()
    try:
        list_tasks("--verbose")
    finally:
        toolchains._resolve.cache_clear()
    out, err = capsys.readouterr()
    lines = {line.split()[0]: line for line in out.splitlines()}
    assert list(lines) == [*TASKS, *GROUPS]
    assert lines["humaneval-x-cpp"].endswith(
        "[unavailable: toolchain missing: g++ cannot build with Boost and OpenSSL: "
        "probe.cpp:1:9: fatal error: boost/any.hpp: No such file]"
    )
    assert "[unavailable: toolchain missing: javac not found" in lines["humaneval-x-java"]
    assert "#include<boost/any.hpp>" in err and "compilation terminated." in err  # the details


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
