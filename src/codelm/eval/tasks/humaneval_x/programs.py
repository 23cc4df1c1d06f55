"""Turn (problem, completion) into a sandbox ``Program``: the CodeGeeX source, compiled and run in place.

How each language is run, and where it knowingly differs from CodeGeeX's ``execution.py``:

* Python: ``exec`` in an empty globals dict in a forked interpreter; any exception (SystemExit
  too) fails, as in the harness.
* C++: ``g++ -std=c++11 test.cpp`` (plus ``-lcrypto -lssl`` when "162" is in the task id, the
  harness's own rule), then ``./a.out``; exit status 0 passes.
* Java: ``javac Main.java`` then ``java -cp . Main``; exit 0 passes. The JVMs get a fixed 1 GiB
  heap (not one sized from the machine's memory), small class/code spaces and the serial
  collector, so they behave alike everywhere, fit the sandbox's address-space limit (about 2 GiB
  suffices) and start fast on two cores; C1 only, which suits such short runs.
* JavaScript: ``node test.js`` with js-md5 on NODE_PATH. The harness passes a sample iff it
  printed nothing on stdout and stderr (its exit status is ignored); a ``/bin/sh`` wrapper keeps
  exactly that rule and replays the output.
* Go: ``go test -c`` then the test binary (the harness runs ``go test main_test.go``, which is the
  same build, vet included, and the same run); GOPATH mode with Debian's testify, offline.
* Rust: ``rustc --test`` against the prebuilt rand/regex/md5 rlibs, then the test binary (the
  harness runs ``cargo check`` then ``cargo test`` in a crate with those dependencies). Debug
  build, so overflow checks are on as under ``cargo test``; ``rand`` is rand 0.4's API over
  rand 0.8 (see ``rust_crates``), as Debian has no rand 0.4.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from ...program import Program
from .problems import Problem
from .sources import test_source
from .toolchains import Toolchain, resolve

DEFAULT_TIMEOUT = 10.0  # seconds for the run step (JVM and node start-up included)
DEFAULT_COMPILE_TIMEOUT = 60.0  # seconds for the compile step: a loaded 2-core machine compiles slowly
JVM_FLAGS = (
    "-Xmx1g",
    "-XX:CompressedClassSpaceSize=128m",
    "-XX:ReservedCodeCacheSize=64m",
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-XX:-UsePerfData",  # no hsperfdata files in the worker's shared /tmp
)
# $0 is node. Output goes to files so both streams can be tested for emptiness, then is replayed.
JS_RUNNER = (
    '"$0" test.js >.stdout 2>.stderr; cat .stdout; cat .stderr >&2; '
    "if [ -s .stdout ] || [ -s .stderr ]; then exit 1; fi; exit 0"
)


def _cpp(problem: Problem, tc: Toolchain) -> dict:
    libraries = ["-lcrypto", "-lssl"] if "162" in problem.task_id else []
    return {
        "file": "test.cpp",
        "compile_argv": [tc.tools["g++"], "-std=c++11", "test.cpp", "-o", "a.out", *libraries],
        "argv": ["./a.out"],
    }


def _java(problem: Problem, tc: Toolchain) -> dict:
    javac_flags = [f"-J{flag}" for flag in JVM_FLAGS]
    return {
        "file": "Main.java",
        "compile_argv": [tc.tools["javac"], *javac_flags, "-encoding", "UTF-8", "Main.java"],
        "argv": [tc.tools["java"], *JVM_FLAGS, "-cp", ".", "Main"],
    }


def _js(problem: Problem, tc: Toolchain) -> dict:
    return {"file": "test.js", "argv": ["/bin/sh", "-c", JS_RUNNER, tc.tools["node"]]}


def _go(problem: Problem, tc: Toolchain) -> dict:
    return {
        "file": "main_test.go",
        "compile_argv": [tc.tools["go"], "test", "-c", "-o", "main.test", "main_test.go"],
        "argv": ["./main.test"],
    }


def _rust(problem: Problem, tc: Toolchain) -> dict:
    # -A warnings: the declarations' unused `use` lines warn in every sample; -C debuginfo=0 and
    # strip keep the test binary small (the sandbox caps file sizes), without changing semantics.
    flags = ["--edition", "2021", "--test", "-A", "warnings", "-C", "debuginfo=0", "-C", "strip=debuginfo"]
    return {
        "file": "main.rs",
        "compile_argv": [tc.tools["rustc"], *flags, *tc.compile_args, "-o", "main", "main.rs"],
        "argv": ["./main"],
    }


_LAYOUTS: dict[str, Callable[[Problem, Toolchain], dict]] = {
    "cpp": _cpp,
    "java": _java,
    "js": _js,
    "go": _go,
    "rust": _rust,
}


def to_program(
    problem: Problem,
    completion: str,
    timeout: float | None = DEFAULT_TIMEOUT,
    *,
    compile_timeout: float | None = DEFAULT_COMPILE_TIMEOUT,
    example_test: bool = False,
) -> Program:
    """The sandbox Program that checks ``completion`` (the text generated after the prompt).

    Raises ``ToolchainMissing`` when the language cannot run here (see ``toolchain_available``).
    ``timeout=None`` leaves the run step to ``Limits.timeout`` (e.g. for ``calibrate_timeouts``).
    """
    source = test_source(problem, completion, example_test=example_test)
    toolchain = resolve(problem.language)
    if problem.language == "python":
        return Program(source=source, filename="test.py", run_name=None, exit_ok=False, timeout=timeout)
    layout = _LAYOUTS[problem.language](problem, toolchain)
    return Program(
        argv=layout["argv"],
        files={layout["file"]: source},
        compile_argv=layout.get("compile_argv"),
        env=dict(toolchain.env),
        timeout=timeout,
        compile_timeout=compile_timeout if "compile_argv" in layout else None,
    )


def reference_programs(problems: Iterable[Problem], timeout: float | None = None) -> list[Program]:
    """The canonical solutions as programs, in order (a self-test, and input to ``calibrate_timeouts``)."""
    return [to_program(p, p.canonical_solution, timeout=timeout) for p in problems]
