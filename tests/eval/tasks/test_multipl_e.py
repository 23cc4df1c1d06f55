"""MultiPL-E: 18 languages, the records' stop tokens, and, for every language whose toolchain is
here, a hand-written correct solution passing and an off-by-one one failing through
``codelm eval --samples`` (there are no canonical solutions). Missing toolchains skip visibly."""

from __future__ import annotations

import json

import pytest

from codelm.eval.generation import GenSettings
from codelm.eval.tasks import task_names
from codelm.eval.tasks.multipl_e import LANGS

from ..conftest import load_task

COUNTS = {"cpp": 161, "cs": 158, "d": 156, "go": 154, "java": 158, "jl": 159, "js": 161, "lua": 161}
COUNTS |= {"php": 161, "pl": 161, "r": 161, "rb": 161, "rkt": 161, "rs": 156, "scala": 160, "sh": 158}
COUNTS |= {"swift": 158, "ts": 159}
# (problem, correct completion, wrong completion): string length (PHP cannot redeclare its
# builtin strlen, so it gets HumanEval_53_add)
STRLEN = "HumanEval_23_strlen"
SOLUTIONS = {
    "cpp": (STRLEN, "    return string.size();\n", "    return string.size() + 1;\n"),
    "cs": (STRLEN, "        return str.Length;\n", "        return str.Length + 1;\n"),
    "d": (STRLEN, "{\n    return string.length;\n}\n", "{\n    return string.length + 1;\n}\n"),
    "go": (STRLEN, "\treturn len(myString)\n}\n", "\treturn len(myString) + 1\n}\n"),
    "java": (STRLEN, "        return string.length();\n", "        return string.length() + 1;\n"),
    "jl": (STRLEN, "    return length(string)\nend\n", "    return length(string) + 1\nend\n"),
    "js": (STRLEN, "  return string.length;\n}\n", "  return string.length + 1;\n}\n"),
    "lua": (STRLEN, "  return #string\nend\n", "  return #string + 1\nend\n"),
    "php": ("HumanEval_53_add", "    return $x + $y;\n}\n", "    return $x - $y;\n}\n"),
    "pl": (STRLEN, "    return length($string);\n}\n", "    return length($string) + 1;\n}\n"),
    "r": (STRLEN, "\n  return(nchar(string))\n}\n", "\n  return(nchar(string) + 1)\n}\n"),
    "rb": (STRLEN, "  string.length\nend\n", "  string.length + 1\nend\n"),
    "rkt": (STRLEN, "  (string-length string))\n", "  (+ 1 (string-length string)))\n"),
    "rs": (STRLEN, "    string.len() as isize\n", "    string.len() as isize + 1\n"),
    "scala": (STRLEN, "        string.length.toLong\n", "        string.length.toLong + 1\n"),
    "sh": (STRLEN, '    echo "${#1}"\n', '    echo "$(( ${#1} + 1 ))"\n'),
    "swift": (STRLEN, "    return string.count\n", "    return string.count + 1\n"),
    "ts": (STRLEN, "  return string.length;\n}\n", "  return string.length + 1;\n}\n"),
}


def test_eighteen_languages_registered():
    assert set(LANGS) == set(COUNTS) == set(SOLUTIONS) and len(task_names("multipl-e")) == 18


@pytest.mark.parametrize("lang", sorted(COUNTS))
def test_problems_prompts_and_stop_tokens(lang, data_dir):
    task, problems = load_task(f"multipl-e-{lang}", data_dir)
    assert len(problems) == COUNTS[lang]
    problem = next(p for p in problems if p.task_id == SOLUTIONS[lang][0])
    request = task.request(problem, GenSettings())
    assert request.prompt == problem.prompt and request.stop == problem.stops and problem.stops
    for stop in problem.stops:
        assert task.clean(problem, "  x = 1" + stop + "junk", "base") == "  x = 1"


@pytest.mark.parametrize("lang", sorted(SOLUTIONS))
def test_correct_passes_and_wrong_fails(lang, data_dir, tmp_path):
    from codelm.eval.backends.samples import SamplesBackend
    from codelm.eval.runner import EvalOptions, run_eval

    name = f"multipl-e-{lang}"
    task, _ = load_task(name, data_dir)
    why = task.unavailable()
    if why:
        pytest.skip(f"{name}: {why}")
    task_id, correct, wrong = SOLUTIONS[lang]
    source = data_dir / "multipl-e" / f"humaneval-{lang}.jsonl"
    one = tmp_path / "one.jsonl"  # the one problem the solutions are for
    one.write_text(next(line for line in source.read_text().splitlines() if f'"{task_id}"' in line) + "\n")
    samples = tmp_path / "samples.jsonl"
    records = [{"task_id": task_id, "completion": c} for c in (correct, wrong)]
    samples.write_text("".join(json.dumps(r) + "\n" for r in records))
    options = EvalOptions(
        tasks=(name,),
        output=tmp_path / "run",
        data={name: str(one)},
        allow_code_execution=True,
        progress=False,
    )
    run_eval(options, SamplesBackend(samples))
    results = [json.loads(line) for line in (tmp_path / "run" / "samples.jsonl").read_text().splitlines()]
    results = [r for r in results if r["task_id"] == task_id]
    assert results[0]["status"] == "passed", results[0]["error"]
    assert results[1]["status"] in ("failed", "compile_error"), results[1]


def test_on_the_decontamination_list(data_dir):
    """Its licence forbids training on it: decontamination loads all 18 files from their folder."""
    from codelm.data.benchmarks import load_benchmarks

    names = {t.benchmark for t in load_benchmarks(data_dir)}
    assert {f"multipl-e-{lang}" for lang in COUNTS} <= names


def test_a_missing_test_library_makes_the_language_unavailable(monkeypatch):
    """A toolchain whose test library is absent (Perl without Test::Deep) is skipped with the reason,
    never run into a failed verdict for every sample."""
    import dataclasses

    from codelm.eval.tasks import multipl_e

    if isinstance(multipl_e.probe("sh"), str):
        pytest.skip(f"the check runs bash: {multipl_e.probe('sh')}")
    bash = dataclasses.replace(LANGS["sh"], check=("{bash}", "-c", "echo 'no Test::Deep here' >&2; exit 3"))
    monkeypatch.setitem(multipl_e.LANGS, "sh-without-library", bash)
    why = multipl_e.probe("sh-without-library")
    assert isinstance(why, str) and "no Test::Deep here" in why and "apt-get install bash" in why
    with_library = dataclasses.replace(bash, check=("{bash}", "-c", "true"))
    monkeypatch.setitem(multipl_e.LANGS, "sh-with-library", with_library)
    assert multipl_e.probe("sh-with-library") == {"bash": multipl_e.probe("sh")["bash"]}
