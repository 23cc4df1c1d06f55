"""`codelm eval` end to end: a tiny checkpoint in process and behind `codelm serve`, scoring a
samples file (and re-scoring our own samples.jsonl), resuming after a crash, and the refusals."""

from __future__ import annotations

import argparse
import json

import pytest

from codelm.errors import CodelmError
from codelm.eval import cli
from codelm.eval.generation import GenSettings
from codelm.eval.runner import EvalOptions, run_eval
from codelm.eval.tasks import humaneval

from .conftest import assert_no_strays

TINY_ARGS = ["--limit", "2", "-n", "2", "--k", "1,2", "--max-new-tokens", "8", "--seed", "0", "--no-progress"]


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli.add_eval_args(parser)
    return parser.parse_args(list(argv))


def check_run(out, summary: dict, tasks: dict[str, int]) -> list[dict]:
    """summary.json is what was returned, and every task has the expected shape and counts."""
    assert json.loads((out / "summary.json").read_text()) == summary
    for name, n_problems in tasks.items():
        entry = summary[name]
        assert (entry["problems"], entry["n"], entry["samples"], entry["k"]) == (
            n_problems,
            2,
            2 * n_problems,
            [1, 2],
        )
        assert sum(entry["counts"].values()) == entry["samples"]
        assert 0.0 <= entry["pass@1"] <= entry["pass@2"] <= 1.0 and len(entry["ci"]["pass@1"]) == 2
    records = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert len(records) == sum(2 * n for n in tasks.values())
    keys = {"task", "task_id", "index", "prompt", "completion", "raw", "status", "passed", "error", "runtime"}
    assert all(keys <= set(r) for r in records)
    assert "| task | n | problems | pass@1 | pass@2 |" in (out / "report.md").read_text()
    return records


def test_in_process_engine(tiny_checkpoint, data_dir, tmp_path):
    out = tmp_path / "run"
    tasks = "humaneval,mbpp-plus,humaneval-infilling-random-span-light,mtpb"
    args = parse("--model", str(tiny_checkpoint("seedcoder")), "--tasks", tasks, "--data-dir", str(data_dir))
    summary = cli.eval_from_args(
        parse(*vars_to_argv(args), *TINY_ARGS, "--allow-code-execution", "--output", str(out))
    )
    records = check_run(out, summary, dict.fromkeys(tasks.split(","), 2))
    assert "base" in summary["mbpp-plus"] and summary["mbpp-plus"]["base"]["samples"] == 4
    assert all("checks" in r for r in records if r["task"] == "mbpp-plus")
    assert any("suffix" in r for r in records if r["task"].startswith("humaneval-infilling"))
    assert json.loads((out / "config.json").read_text())["generation"]["backend"].startswith("engine:")
    assert_no_strays()


def vars_to_argv(args: argparse.Namespace) -> list[str]:
    return ["--model", args.model, "--tasks", args.tasks, "--data-dir", args.data_dir]


def test_openai_compatible_endpoint(tiny_checkpoint, data_dir, tmp_path):
    from codelm.serve.launch import ServerProcess

    out = tmp_path / "run"
    with ServerProcess(str(tiny_checkpoint("stablecode")), log_path=str(tmp_path / "serve.log")) as server:
        argv = [
            "--endpoint",
            server.url,
            "--tasks",
            "humaneval,mbpp",
            "--data-dir",
            str(data_dir),
            *TINY_ARGS,
        ]
        summary = cli.eval_from_args(parse(*argv, "--allow-code-execution", "--output", str(out)))
    check_run(out, summary, {"humaneval": 2, "mbpp": 2})
    assert "endpoint:" in json.loads((out / "config.json").read_text())["generation"]["backend"]


def test_scoring_a_samples_file_and_our_own_samples(humaneval_path, tmp_path):
    problems = humaneval.load_problems(humaneval_path)
    samples = tmp_path / "samples.jsonl"
    with open(samples, "w") as f:
        for task_id, problem in problems.items():
            f.write(json.dumps({"task_id": task_id, "completion": problem.canonical_solution}) + "\n")
            f.write(json.dumps({"task_id": task_id, "completion": "    pass\n"}) + "\n")
    argv = [
        "--tasks",
        "humaneval",
        "--data-dir",
        str(humaneval_path.parent),
        "--allow-code-execution",
        "--no-progress",
    ]
    summary = cli.eval_from_args(parse("--samples", str(samples), *argv, "--output", str(tmp_path / "a")))
    entry = summary["humaneval"]
    assert entry["pass@1"] == pytest.approx(0.5) and entry["counts"] == {"passed": 164, "failed": 164}
    assert (entry["n"], entry["k"]) == (2, [1])
    again = cli.eval_from_args(
        parse("--samples", str(tmp_path / "a" / "samples.jsonl"), *argv, "--output", str(tmp_path / "b"))
    )
    assert again["humaneval"]["counts"] == entry["counts"]  # our samples.jsonl scores as it was scored


class CanonicalBackend:
    """Answers HumanEval prompts with canonical solutions; can be told to crash after some calls."""

    name, pregenerated = "canonical", False

    def __init__(self, problems, crash_after: int | None = None):
        self.by_prompt = {p.prompt: p.canonical_solution for p in problems.values()}
        self.crash_after, self.calls = crash_after, []

    def supports(self, kind):
        return None

    def generate(self, requests):
        if self.crash_after is not None and len(self.calls) >= self.crash_after:
            raise RuntimeError("killed")
        self.calls.append([r.key[1] for r in requests])
        return [[self.by_prompt[r.prompt]] * r.n for r in requests]

    def close(self):
        pass


def test_resume_redoes_nothing(humaneval_path, tmp_path):
    problems = humaneval.load_problems(humaneval_path)

    def options(**changes):
        base = {
            "tasks": ("humaneval",),
            "output": tmp_path,
            "settings": GenSettings(n=2, batch_size=1),
            "ks": (1,),
        }
        base |= {
            "limit": 3,
            "data_dir": humaneval_path.parent,
            "allow_code_execution": True,
            "progress": False,
        }
        return EvalOptions(**(base | changes))

    with pytest.raises(RuntimeError, match="killed"):  # a crash after the first problem's samples
        run_eval(options(), CanonicalBackend(problems, crash_after=1))
    with pytest.raises(CodelmError, match="--resume"):
        run_eval(options(), CanonicalBackend(problems))
    backend = CanonicalBackend(problems)
    summary = run_eval(options(resume=True, execute=False), backend)  # --generate-only
    assert backend.calls == [["HumanEval/1"], ["HumanEval/2"]]
    assert summary["humaneval"]["counts"] == {"not_executed": 6} and "pass@1" not in summary["humaneval"]
    summary = run_eval(options(resume=True), backend)
    assert summary["humaneval"]["counts"] == {"passed": 6} and len(backend.calls) == 2
    executions = (tmp_path / "executions.jsonl").read_text()
    assert run_eval(options(resume=True), backend) == summary
    assert (tmp_path / "executions.jsonl").read_text() == executions and len(backend.calls) == 2
    with pytest.raises(CodelmError, match="other settings"):
        run_eval(options(resume=True, settings=GenSettings(n=3)), backend)


def test_a_systemic_generation_failure_stops_the_run(humaneval_path, tmp_path):
    from codelm.eval.generation import GenerationFailed

    class Refusing(CanonicalBackend):
        def generate(self, requests):
            raise GenerationFailed(
                [[] for _ in requests], dict.fromkeys(range(len(requests)), "no chat format")
            )

    options = EvalOptions(
        tasks=("humaneval",),
        output=tmp_path,
        limit=3,
        data_dir=humaneval_path.parent,
        execute=False,
        progress=False,
    )
    with pytest.raises(CodelmError, match="no sample could be generated: no chat format"):
        run_eval(options, Refusing(humaneval.load_problems(humaneval_path)))
    assert (tmp_path / "generations.jsonl").read_text() == ""  # nothing journaled: a resume retries


def test_task_max_new_tokens_sets_one_tasks_budget(humaneval_path, tmp_path):
    from codelm.eval.tasks import get_task

    settings = GenSettings(task_max_new_tokens={"humaneval": 384})
    assert get_task("humaneval").max_tokens(settings) == 384
    assert get_task("fim-exact-match").max_tokens(settings) == 128  # its own default stays
    both = GenSettings(max_new_tokens=64, task_max_new_tokens={"humaneval": 384})
    assert [get_task(t).max_tokens(both) for t in ("humaneval", "fim-exact-match")] == [384, 64]
    with pytest.raises(ValueError, match="max_new_tokens of humaneval must be >= 1"):
        GenSettings(task_max_new_tokens={"humaneval": 0})

    class Recording(CanonicalBackend):
        def generate(self, requests):
            self.budgets = [r.sampling.max_new_tokens for r in requests]
            return super().generate(requests)

    problems = humaneval.load_problems(humaneval_path)
    options = dict(output=tmp_path, limit=2, data_dir=humaneval_path.parent, execute=False, progress=False)
    backend = Recording(problems)
    run_eval(EvalOptions(tasks=("humaneval",), settings=settings, **options), backend)
    assert backend.budgets == [384, 384]
    wrong = GenSettings(task_max_new_tokens={"mbpp": 100})
    with pytest.raises(CodelmError, match="task_max_new_tokens name tasks that are not selected: mbpp"):
        run_eval(EvalOptions(tasks=("humaneval",), settings=wrong, **options), backend)


def test_refusals_come_before_any_work(tmp_path):
    missing_model = str(tmp_path / "no-such-model")
    with pytest.raises(CodelmError, match="--allow-code-execution"):
        cli.eval_from_args(
            parse("--model", missing_model, "--tasks", "humaneval", "--output", str(tmp_path / "o"))
        )
    assert not (tmp_path / "o").exists()
    with pytest.raises(CodelmError, match="TASK=PATH_OR_HUB_ID"):
        cli.eval_from_args(
            parse("--model", "m", "--tasks", "humaneval", "--output", "o", "--data", "x", "--generate-only")
        )
    with pytest.raises(CodelmError, match="drop --model"):
        cli.eval_from_args(
            parse(
                "--samples",
                "s",
                "--model",
                "m",
                "--tasks",
                "humaneval",
                "--output",
                "o",
                "--allow-code-execution",
            )
        )
    with pytest.raises(CodelmError, match="give --tasks"):
        cli.eval_from_args(parse("--model", "m", "--output", "o"))
    with pytest.raises(CodelmError, match="temperature"):
        cli.eval_from_args(
            parse(
                "--model",
                "m",
                "--tasks",
                "humaneval",
                "--output",
                "o",
                "--temperature",
                "-1",
                "--generate-only",
            )
        )


def test_a_malformed_data_file_is_a_one_line_error(tiny_checkpoint, tmp_path, capsys):
    """A benchmark or corpus file with a broken line stops `codelm eval` with the file and line
    (it was a ValueError traceback), before any generation."""
    from codelm.cli import main

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "x = 1\\n"}\n{"text": \n')
    model = str(tiny_checkpoint("llama"))
    for task in ("humaneval", "perplexity"):
        argv = ["eval", "--model", model, "--tasks", task, "--data", f"{task}={bad}"]
        assert main([*argv, "--output", str(tmp_path / task), "--generate-only", "--no-progress"]) == 1
        err = capsys.readouterr().err
        assert err.strip() == f"codelm: error: {bad}:2: not valid JSON (Expecting value)", err


def test_eval_takes_a_config_file_flags_and_set(tmp_path, capsys):
    """`codelm eval --config FILE` + flags + `--set`, resolved by the one config layer."""
    import yaml

    from codelm.cli import main

    cfg = tmp_path / "eval.yaml"
    cfg.write_text(
        "tasks: [humaneval, fim-exact-match]\nn: 4\ntemperature: 0.8\ntask_limits: {humaneval: 10}\n"
    )
    argv = ["eval", "--config", str(cfg), "--n", "2", "--set", "top_p=0.5", "--print-config"]
    assert main(argv) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["tasks"] == ["humaneval", "fim-exact-match"] and printed["n"] == 2
    assert printed["temperature"] == 0.8 and printed["top_p"] == 0.5
    assert printed["task_limits"] == {"humaneval": 10}
    assert main(["eval", "--config", str(cfg), "--set", "temprature=1", "--print-config"]) == 1
    assert "did you mean 'temperature'" in capsys.readouterr().err
    assert main(["eval", "--tasks", "humaneva", "--print-config"]) == 1
    assert "did you mean 'humaneval'" in capsys.readouterr().err
