"""SAFIM (Gong et al. 2024, syntax-aware fill-in-the-middle): Codeforces programs with one
syntactic unit removed, in Python, C++, Java and C#. Three splits, one task per split and language
(``safim-<split>-<lang>``; the groups ``safim-block``, ``safim-control``, ``safim-api`` and ``safim``
report them per language and split):

* ``block``: a statement block; ``control``: a control-flow condition/header; both checked by
  running the filled program (``eval_prompt`` with ``{{completion}}`` replaced) on the problem's
  stdin/stdout unit tests, compared as ExecEval does (``safim_check.py``); as in SAFIM's
  ``evaluate.py``, a completion equal to the ground truth passes without running;
* ``api``: an API call, with no tests: SAFIM's ``syntax_match`` (whitespace removed, then for
  Python calls equal positional and keyword argument ASTs, else equal strings).

Prompts: an infill request with the text before and after the ``TODO: Your code here`` placeholder
(SAFIM's ``get_infilling_parts``), rendered by the backend in the model family's own FIM format;
chat models get SAFIM's "instructed" prompt. Completions are post-processed as the paper does
(``safim_truncate``). Where we differ: ExecEval runs Python with PyPy 3 and C# with Mono in
Docker under its per-test limits; here CPython, g++ -std=c++17 -O2, javac/java and mcs/mono run in
the sandbox under one calibrated wall-clock limit per program. Some ground truths fail their own
tests here (SOURCES.md: about 5% of Python; problems accepting several answers, slow solutions);
they are listed under ``reference_failures`` (calibration), while the ground truth itself always
scores as passed by the rule above.
"""

from __future__ import annotations

import ast
import functools
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from ..generation import GenRequest, GenSettings
from ..program import Program
from ..prompts import extract_code
from . import safim_truncate
from .base import Task
from .data import HubDataset, require_fields

CHECK_SOURCE = Path(__file__).with_name("safim_check.py")
LANGUAGES = ("python", "cpp", "java", "csharp")
SPLITS = ("block", "control", "api")
PLACEHOLDER = {
    "python": "# TODO: Your code here",
    **dict.fromkeys(LANGUAGES[1:], "/* TODO: Your code here */"),
}
_KIND_WORDS = {"block": "block", "control": "control expression", "api": "API function call"}
_NAMES = {"python": "Python", "cpp": "C++", "java": "Java", "csharp": "C#"}
_TOOLS = {"python": (), "cpp": ("g++",), "java": ("javac", "java"), "csharp": ("mcs", "mono")}
_HINTS = {"cpp": "apt-get install g++", "java": "apt-get install default-jdk-headless"}
_HINTS["csharp"] = "apt-get install mono-mcs mono-runtime libmono-system-numerics4.0-cil"
_PASS, _FAIL = "pass\n", "raise AssertionError({!r})\n"


@dataclass(frozen=True)
class Problem:
    task_id: str
    lang: str
    prompt: str  # the program with the placeholder
    eval_prompt: str  # the program with {{completion}}
    ground_truth: str
    unit_tests: tuple  # ({"input": str, "output": [str, ...]}, ...)

    @property
    def parts(self) -> tuple[str, str]:
        prefix, suffix = self.prompt.split(PLACEHOLDER[self.lang])
        return prefix, suffix


def syntax_match(code1: str, code2: str, lang: str) -> bool:
    """SAFIM's ``syntax_match`` for API completions."""
    code1, code2 = re.sub(r"\s+", "", code1).strip(), re.sub(r"\s+", "", code2).strip()
    if lang == "python":
        try:
            tree1, tree2 = ast.parse(code1, mode="eval"), ast.parse(code2, mode="eval")
        except (SyntaxError, ValueError):  # SAFIM falls back to comparing the strings
            tree1 = tree2 = None
        if tree1 and isinstance(tree1.body, ast.Call) and isinstance(tree2.body, ast.Call):
            return _call_params(tree1.body) == _call_params(tree2.body)
    return code1 == code2


def _call_params(node: ast.Call) -> tuple:
    return [ast.dump(a) for a in node.args], {k.arg: ast.dump(k.value) for k in node.keywords}


class SafimTask(Task):
    kind = "infill"
    timeout_floor = 10.0  # JVM and Mono start-up, and every unit test is a fresh process

    def __init__(self, split: str, lang: str) -> None:
        self.split, self.lang = split, lang
        self.name = f"safim-{split}-{lang}"
        self.title = f"SAFIM {split} ({_NAMES[lang]})"
        self.file_names = (f"safim_{split}_completion.jsonl.gz", f"safim_{split}_completion.jsonl")
        self.hub = HubDataset("gonglinyuan/safim", config=split)
        self.max_new_tokens = 256 if split == "block" else 128

    def unavailable(self) -> str | None:
        if self.split == "api":
            return None  # matched, never run
        from .humaneval_x.toolchains import ToolchainMissing, find

        try:
            find(*_TOOLS[self.lang])
        except ToolchainMissing as exc:
            return f"toolchain missing: {exc}. Install: {_HINTS[self.lang]}"
        return None

    def parse(self, records: list[dict], origin: str) -> list[Problem]:
        problems = []
        for r in records:
            require_fields(r, ("task_id", "lang", "prompt", "eval_prompt", "ground_truth"), origin)
            if r["lang"] != self.lang:
                continue
            tests = r.get("unit_tests") or []
            tests = json.loads(tests) if isinstance(tests, str) else tests  # a string on the hub
            p = Problem(
                r["task_id"], r["lang"], r["prompt"], r["eval_prompt"], r["ground_truth"], tuple(tests)
            )
            if r["prompt"].count(PLACEHOLDER[self.lang]) != 1 or "{{completion}}" not in r["eval_prompt"]:
                raise ValueError(f"{origin}: {p.task_id} has no single placeholder")
            problems.append(p)
        return problems

    def request(self, problem: Problem, settings: GenSettings) -> GenRequest:
        if settings.mode == "chat":  # SAFIM's "instructed" prompt (add_instruct)
            instruction = (
                f'Replace the "{PLACEHOLDER[self.lang]}" in the code above with the appropriate '
                f"{_KIND_WORDS[self.split]}. Provide only the replaced {_KIND_WORDS[self.split]}."
            )
            message = {"role": "user", "content": problem.prompt + "\n" + instruction + "\n\n"}
            return self.build_request(problem, settings, "chat", messages=(message,))
        prefix, suffix = problem.parts
        return self.build_request(problem, settings, "infill", prompt=prefix, suffix=suffix)

    def clean(self, problem: Problem, text: str, mode: str) -> str:
        if mode == "chat":
            text = extract_code(text, language=self.lang).rstrip()
        if self.split == "block":
            return safim_truncate.truncate_block(self.lang, problem.eval_prompt, text)
        if self.split == "control":
            return safim_truncate.truncate_control(self.lang, text)
        return safim_truncate.truncate_api_call(text)

    def programs(self, problem: Problem, completion: str) -> dict[str, Program]:
        if completion == problem.ground_truth:  # SAFIM's evaluate.py: passed without running
            return {"main": _python(_PASS)}
        if self.split == "api" or not problem.unit_tests:
            ok = syntax_match(completion, problem.ground_truth, self.lang)
            return {"main": _python(_PASS if ok else _FAIL.format("no syntax match with the ground truth"))}
        return {"main": self.run_program(problem, completion)}

    def run_program(self, problem: Problem, completion: str) -> Program:
        """The filled program built and run on every unit test by ``safim_check.py``."""
        source = problem.eval_prompt.replace("{{completion}}", completion).replace("\r\n", "\n")
        files = {"tests.json": json.dumps(problem.unit_tests), "safim_check.py": _check_source()}
        check = [sys.executable, "safim_check.py"]
        if self.lang == "python":
            return Program(
                argv=[*check, "--python", "main.py", sys.executable, "main.py"],
                files={**files, "main.py": source},
            )
        from .humaneval_x.programs import JVM_FLAGS
        from .humaneval_x.toolchains import find

        tools = find(*_TOOLS[self.lang])
        if self.lang == "cpp":
            compile_argv = [tools["g++"], "-std=c++17", "-O2", "main.cpp", "-o", "main"]
            return Program(
                argv=[*check, "./main"],
                files={**files, "main.cpp": source},
                compile_argv=compile_argv,
                compile_timeout=60.0,
            )
        if self.lang == "java":
            name = java_class(source)
            compile_argv = [
                tools["javac"],
                *(f"-J{f}" for f in JVM_FLAGS),
                "-encoding",
                "UTF-8",
                f"{name}.java",
            ]
            run = [tools["java"], *JVM_FLAGS, "-cp", ".", name]
            return Program(
                argv=[*check, *run],
                files={**files, f"{name}.java": source},
                compile_argv=compile_argv,
                compile_timeout=60.0,
            )
        compile_argv = [tools["mcs"], "-r:System.Numerics.dll", "-out:main.exe", "main.cs"]
        return Program(
            argv=[*check, tools["mono"], "main.exe"],
            files={**files, "main.cs": source},
            compile_argv=compile_argv,
            compile_timeout=60.0,
        )

    def reference(self, problem: Problem) -> str:
        return problem.ground_truth

    def reference_programs(self, problem: Problem) -> dict[str, Program]:
        """The ground truth actually run (calibration, and a check of the data here)."""
        if self.split == "api" or not problem.unit_tests:
            return self.programs(problem, problem.ground_truth)
        return {"main": self.run_program(problem, problem.ground_truth)}

    def judge(self, result):
        from .base import syntax_error_verdict

        return syntax_error_verdict(result)


def java_class(source: str) -> str:
    """The class a Java file must be named after (its public class, else the one with main)."""
    public = re.search(r"public\s+(?:final\s+|abstract\s+)*class\s+(\w+)", source)
    if public:
        return public.group(1)
    main = re.search(r"class\s+(\w+)[^{]*\{(?:(?!\bclass\b).)*?static\s+void\s+main\b", source, re.S)
    return main.group(1) if main else "Main"


def _python(source: str) -> Program:
    return Program(source=source, filename="check.py", run_name=None, exit_ok=False)


@functools.lru_cache(maxsize=1)
def _check_source() -> str:
    return CHECK_SOURCE.read_text(encoding="utf-8")


# the registry's attributes: BLOCK_PYTHON ... API_CSHARP
for _split in SPLITS:
    for _lang in LANGUAGES:
        globals()[f"{_split}_{_lang}".upper()] = SafimTask(_split, _lang)
