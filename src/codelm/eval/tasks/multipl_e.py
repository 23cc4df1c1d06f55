"""MultiPL-E (Cassano et al. 2023): HumanEval translated into 18 languages, ``multipl-e-<lang>``.

Each record (``humaneval-<lang>.jsonl``, the HF ``nuprl/MultiPL-E`` ``humaneval-<lang>`` configs,
"reworded" prompts with transformed doctests) has a ``prompt``, the language's ``stop_tokens`` and
``tests``. Base models continue the prompt and stop at the stop tokens; the program is
``prompt + completion + "\\n" + tests`` (MultiPL-E's ``containerized_eval``), built and run by the
language's toolchain in the sandbox; exit status 0 passes (a compile step's failure is
``compile_error``). There are no canonical solutions, so no timeout calibration against one: every
program gets the task's floor (15 s run, 120 s compile; JVM, Scala and Racket start slowly).

How each language runs, as in MultiPL-E's evaluation container where Debian allows (versions are
Debian 12's, see the Makefile): C++ ``g++ -std=c++17``; C# ``mcs -d:DEBUG`` then ``mono`` with
``MONO_TRACE_LISTENER=Console.Error`` (a failed ``Debug.Assert`` only prints, and exits 0: any
stderr output fails, as MultiPL-E's ``eval_cs``); D ``gdc -funittest`` (MultiPL-E: rdmd);
Go ``go test`` in GOPATH mode (HumanEval-X's cache); Java ``javac``/``java -ea`` with javatuples;
JavaScript ``node``; Lua 5.4 with luaunit; PHP; Perl with Test::Deep; R ``Rscript``; Ruby with
test-unit; Racket with rackunit (a failed check prints to stderr but exits 0, so, as MultiPL-E's
``eval_racket``, any stderr output fails); Rust ``rustc``; Scala 2.11 ``scalac``/``scala``; Bash;
TypeScript ``tsc --target esnext`` then ``node``. Julia and Swift have no Debian 12 package: their
tasks are skipped with the reason unless ``julia``/``swiftc`` is on the sandbox PATH.
Toolchains are probed with HumanEval-X's machinery (``humaneval_x.toolchains``).

Licence: MultiPL-E's data is BSD-3-Clause with a machine-learning restriction (it "may not be used
as training data"): evaluation only; it is on the decontamination list (``codelm.data.benchmarks``).
"""

from __future__ import annotations

import dataclasses
import functools
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass

from ..generation import GenRequest, GenSettings
from ..program import Program
from ..prompts import chat_function_prompt, cut_at_stops, extract_code
from .base import Task
from .data import HubDataset, require_fields

JAVATUPLES = "/usr/share/java/javatuples.jar"
LUAUNIT = "/usr/share/lua/5.4/luaunit.lua"
# stderr must stay empty (rackunit and Mono's Debug.Assert report failures there and exit 0)
_QUIET = '"$@" 2>.stderr; code=$?; cat .stderr >&2; [ $code -eq 0 ] && [ ! -s .stderr ]'


@dataclass(frozen=True)
class Lang:
    """How one language's program is built and run: ``tools`` to find, the file name, the compile
    and run commands (``{t[name]}`` are tool paths), extra files that must exist, a command that
    must succeed (a test library the tests load: Perl's Test::Deep), the apt hint."""

    title: str
    tools: tuple[str, ...]
    file: str
    run: tuple[str, ...]
    compile: tuple[str, ...] = ()
    needs: tuple[str, ...] = ()
    check: tuple[str, ...] = ()
    apt: str = ""
    env: Callable[[], dict] | None = None


def _go_env() -> dict:
    from .humaneval_x.toolchains import resolve

    return dict(resolve("go").env)


LANGS: dict[str, Lang] = {
    "cpp": Lang(
        "C++", ("g++",), "main.cpp", ("./main",), ("{g++}", "-std=c++17", "main.cpp", "-o", "main"), apt="g++"
    ),
    "cs": Lang(
        "C#",
        ("mcs", "mono"),
        "main.cs",
        ("/bin/sh", "-c", _QUIET, "sh", "{mono}", "--debug", "main.exe"),
        ("{mcs}", "-d:DEBUG", "-r:System.Numerics.dll", "-out:main.exe", "main.cs"),
        apt="mono-mcs mono-runtime libmono-system-numerics4.0-cil",
        env=lambda: {"MONO_TRACE_LISTENER": "Console.Error"},  # Debug.Assert failures to stderr
    ),
    "d": Lang(
        "D", ("gdc",), "main.d", ("./main",), ("{gdc}", "-funittest", "main.d", "-o", "main"), apt="gdc"
    ),
    "go": Lang(
        "Go",
        ("go",),
        "main_test.go",
        ("./main.test",),
        ("{go}", "test", "-c", "-o", "main.test", "main_test.go"),
        apt="golang-go",
        env=_go_env,
    ),
    "java": Lang(
        "Java",
        ("javac", "java"),
        "Problem.java",
        ("{java}", "-ea", "-cp", f".:{JAVATUPLES}", "Problem"),
        ("{javac}", "-cp", JAVATUPLES, "-encoding", "UTF-8", "Problem.java"),
        needs=(JAVATUPLES,),
        apt="default-jdk-headless libjavatuples-java",
    ),
    "jl": Lang(
        "Julia", ("julia",), "main.jl", ("{julia}", "main.jl"), apt="(no Debian 12 package: julialang.org)"
    ),
    "js": Lang("JavaScript", ("node",), "main.js", ("{node}", "main.js"), apt="nodejs"),
    "lua": Lang(
        "Lua", ("lua5.4",), "main.lua", ("{lua5.4}", "main.lua"), needs=(LUAUNIT,), apt="lua5.4 lua-unit"
    ),
    "php": Lang("PHP", ("php",), "main.php", ("{php}", "main.php"), apt="php-cli"),
    "pl": Lang(
        "Perl",
        ("perl",),
        "main.pl",
        ("{perl}", "main.pl"),
        check=("{perl}", "-MTest::Deep", "-e", "1"),
        apt="perl libtest-deep-perl",
    ),
    "r": Lang("R", ("Rscript",), "main.r", ("{Rscript}", "main.r"), apt="r-base-core"),
    "rb": Lang(
        "Ruby",
        ("ruby",),
        "main.rb",
        ("{ruby}", "main.rb"),
        check=("{ruby}", "-e", "require 'test/unit'; Test::Unit::AutoRunner.need_auto_run = false"),
        apt="ruby ruby-test-unit",
    ),
    "rkt": Lang(
        "Racket",
        ("racket",),
        "main.rkt",
        ("/bin/sh", "-c", _QUIET, "sh", "{racket}", "main.rkt"),
        apt="racket",
    ),
    "rs": Lang(
        "Rust",
        ("rustc",),
        "main.rs",
        ("./main",),
        ("{rustc}", "-A", "warnings", "-C", "debuginfo=0", "-o", "main", "main.rs"),
        apt="rustc",
    ),
    "scala": Lang(
        "Scala",
        ("scalac", "scala"),
        "Problem.scala",
        ("{scala}", "-J-Xmx1g", "-cp", ".", "Problem"),
        ("{scalac}", "-J-Xmx1g", "-encoding", "UTF-8", "Problem.scala"),
        apt="scala",
    ),
    "sh": Lang("Bash", ("bash",), "main.sh", ("{bash}", "main.sh"), apt="bash"),
    "swift": Lang(
        "Swift",
        ("swiftc",),
        "main.swift",
        ("./main",),
        ("{swiftc}", "main.swift", "-o", "main"),
        apt="(no Debian 12 package: swift.org)",
    ),
    "ts": Lang(
        "TypeScript",
        ("tsc", "node"),
        "main.ts",
        ("{node}", "main.js"),
        ("{tsc}", "--target", "esnext", "--lib", "esnext", "main.ts"),
        apt="node-typescript nodejs",
    ),
}


@dataclass(frozen=True)
class Problem:
    task_id: str  # the record's name, e.g. HumanEval_23_strlen
    prompt: str
    tests: str
    stops: tuple[str, ...]


def _fill(args: tuple[str, ...], tools: dict[str, str]) -> list[str]:
    """A command with its "{tool}" arguments replaced by the tools' paths."""
    return [tools.get(a[1:-1], a) if a[:1] == "{" and a[-1:] == "}" else a for a in args]


@functools.cache
def probe(language: str) -> dict[str, str] | str:
    """The language's tool paths on the sandbox PATH, or why it cannot run (cached per process)."""
    from .humaneval_x.toolchains import ToolchainMissing, find

    spec = LANGS[language]
    try:
        tools = find(*spec.tools)
    except ToolchainMissing as exc:
        return f"{exc}; install: apt-get install {spec.apt}"
    for path in spec.needs:
        if not os.path.exists(path):
            return f"{path} not found; install: apt-get install {spec.apt}"
    if spec.check:
        argv = _fill(spec.check, tools)
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"{' '.join(argv)} failed: {exc}; install: apt-get install {spec.apt}"
        if done.returncode:
            why = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[0][:120]
            return f"{' '.join(argv)} failed ({why}); install: apt-get install {spec.apt}"
    return tools


class MultiplETask(Task):
    timeout_floor = 15.0
    max_new_tokens = 512

    def __init__(self, language: str) -> None:
        self.language = language
        self.name, self.title = f"multipl-e-{language}", f"MultiPL-E {LANGS[language].title}"
        self.file_names = (f"humaneval-{language}.jsonl", f"multipl-e/humaneval-{language}.jsonl")
        self.hub = HubDataset("nuprl/MultiPL-E", config=f"humaneval-{language}")

    def unavailable(self) -> str | None:
        found = probe(self.language)
        return f"toolchain missing: {found}" if isinstance(found, str) else None

    def isolation_keep(self) -> tuple[str, ...]:
        if self.language != "go":
            return ()
        from .humaneval_x import sandbox_keep_paths

        return tuple(sandbox_keep_paths())

    def parse(self, records: list[dict], origin: str) -> list[Problem]:
        problems = []
        for r in records:
            require_fields(r, ("name", "prompt", "tests", "stop_tokens"), origin)
            problems.append(Problem(r["name"], r["prompt"], r["tests"], tuple(r["stop_tokens"])))
        return problems

    def request(self, problem: Problem, settings: GenSettings) -> GenRequest:
        if settings.mode == "chat":
            message = {"role": "user", "content": chat_function_prompt(problem.prompt, self.language)}
            return self.build_request(problem, settings, "chat", messages=(message,))
        request = self.build_request(problem, settings, "completion", prompt=problem.prompt)
        return dataclasses.replace(request, stop=problem.stops)

    def clean(self, problem: Problem, text: str, mode: str) -> str:
        if mode == "chat":  # best effort: what follows the prompt's last line in the fenced code
            code = extract_code(text, language=self.language)
            last = problem.prompt.rstrip().splitlines()[-1].strip()
            at = code.find(last) if last else -1
            text = code[at + len(last) :] if at >= 0 else code
        return cut_at_stops(text, problem.stops)

    def programs(self, problem: Problem, completion: str) -> dict[str, Program]:
        found = probe(self.language)
        if isinstance(found, str):
            raise RuntimeError(f"{self.name}: {found}")
        spec = LANGS[self.language]

        return {
            "main": Program(
                argv=_fill(spec.run, found),
                files={spec.file: problem.prompt + completion + "\n" + problem.tests},
                compile_argv=_fill(spec.compile, found) or None,
                env=spec.env() if spec.env else {},
                compile_timeout=120.0 if spec.compile else None,
            )
        }

    def reference(self, problem: Problem) -> str:
        raise NotImplementedError("MultiPL-E has no canonical solutions")

    def reference_programs(self, problem: Problem) -> dict[str, Program]:
        """No canonical solution: calibration times a no-op, so every program gets the floor."""
        return {"main": Program(source="pass\n", run_name=None, exit_ok=False)}


LANGUAGES = tuple(LANGS)
for _lang in LANGUAGES:  # the registry's attributes: CPP ... TS
    globals()[_lang.upper()] = MultiplETask(_lang)
