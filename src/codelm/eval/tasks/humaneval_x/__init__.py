"""HumanEval-X (Zheng et al. 2023, CodeGeeX): HumanEval's 164 problems in Python, C++, Java,
JavaScript, Go and Rust, checked by compiling and running each language's tests in the sandbox.

Check programs are assembled byte-for-byte as CodeGeeX's harness assembles them (``sources``) and
built and run with the language's own toolchain inside ``codelm.eval.sandbox`` (``programs``): no
Docker, no network. What each toolchain needs once (Rust crates, a warm Go build cache, npm's
js-md5) is prepared outside the sandbox on first use (``caches``); a language whose toolchain is
missing is reported by ``toolchain_available`` and skipped, never scored as failures.

    problems = load_problems("../shared/data", "rust")
    ok, why = toolchain_available("rust")
    programs = [to_program(p, completion) for p in problems]   # completion follows generation_prompt(p)
    results = pool.map(programs)                                # an ExecutionPool

See docs/humaneval-x.md for how each language is built and run, and for the set-up.
"""

from __future__ import annotations

from .caches import PrepareError, cache_root, sandbox_keep_paths
from .problems import EXCLUDED, LANGUAGES, Problem, generation_prompt, load_problems, problem_from_record
from .programs import DEFAULT_COMPILE_TIMEOUT, DEFAULT_TIMEOUT, reference_programs, to_program
from .sources import test_source
from .stops import STOPS, truncate
from .toolchains import ToolchainMissing, install_hint, resolve, toolchain_available

__all__ = [
    "DEFAULT_COMPILE_TIMEOUT",
    "DEFAULT_TIMEOUT",
    "EXCLUDED",
    "LANGUAGES",
    "STOPS",
    "PrepareError",
    "Problem",
    "ToolchainMissing",
    "cache_root",
    "generation_prompt",
    "install_hint",
    "load_problems",
    "problem_from_record",
    "reference_programs",
    "resolve",
    "sandbox_keep_paths",
    "test_source",
    "to_program",
    "toolchain_available",
    "truncate",
]
