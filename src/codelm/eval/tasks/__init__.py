"""One module per benchmark, and the registry that names them for ``codelm eval --tasks``.

Benchmark-specific choices (prompts, stop strings, how a check program is assembled, which
harness's semantics to copy) live in the benchmark's module and only there; the sandbox, the
execution pool and the runner know nothing about benchmarks. ``TASKS`` maps each name to
``"module:attribute"``; modules are imported only when a task is used (``get_task``), so listing
names costs nothing and a missing optional module (HumanEval-X's) only affects its own tasks.
"""

from __future__ import annotations

import difflib
import importlib

from codelm.errors import CodelmError

_X = "codelm.eval.tasks.multilingual"
_SAFIM = ("block", "control", "api")
_MULTIPL_E = "cpp cs d go java jl js lua php pl r rb rkt rs scala sh swift ts".split()
TASKS: dict[str, str] = {
    "humaneval": "codelm.eval.tasks.humaneval:TASK",
    "mbpp": "codelm.eval.tasks.mbpp:MBPP",
    "mbpp-sanitized": "codelm.eval.tasks.mbpp:MBPP_SANITIZED",
    "mbpp-plus": "codelm.eval.tasks.mbpp_plus:TASK",
    "humaneval-plus": "codelm.eval.tasks.humaneval_plus:TASK",
    "humaneval-plus-mini": "codelm.eval.tasks.humaneval_plus:MINI",
    "humaneval-infilling-single-line": "codelm.eval.tasks.humaneval_infilling:SINGLE_LINE",
    "humaneval-infilling-multi-line": "codelm.eval.tasks.humaneval_infilling:MULTI_LINE",
    "humaneval-infilling-random-span": "codelm.eval.tasks.humaneval_infilling:RANDOM_SPAN",
    "humaneval-infilling-random-span-light": "codelm.eval.tasks.humaneval_infilling:RANDOM_SPAN_LIGHT",
    "fim-exact-match": "codelm.eval.tasks.humaneval_infilling:EXACT_MATCH",
    "fim-loss": "codelm.eval.tasks.humaneval_infilling:FIM_LOSS",
    "perplexity": "codelm.eval.tasks.perplexity:TASK",
    "docstring-to-function": "codelm.eval.tasks.docstring_to_function:TASK",
    "preference": "codelm.eval.tasks.preference:TASK",
    "mtpb": "codelm.eval.tasks.mtpb:TASK",
    "humaneval-x-python": f"{_X}:PYTHON",
    "humaneval-x-cpp": f"{_X}:CPP",
    "humaneval-x-java": f"{_X}:JAVA",
    "humaneval-x-js": f"{_X}:JS",
    "humaneval-x-go": f"{_X}:GO",
    "humaneval-x-rust": f"{_X}:RUST",
    "livecodebench": "codelm.eval.tasks.livecodebench:TASK",
    "cruxeval-o": "codelm.eval.tasks.cruxeval:OUTPUT",
    "cruxeval-i": "codelm.eval.tasks.cruxeval:INPUT",
    "cruxeval-o-cot": "codelm.eval.tasks.cruxeval:OUTPUT_COT",
    "cruxeval-i-cot": "codelm.eval.tasks.cruxeval:INPUT_COT",
    **{
        f"safim-{split}-{lang}": f"codelm.eval.tasks.safim:{split.upper()}_{lang.upper()}"
        for split in _SAFIM
        for lang in ("python", "cpp", "java", "csharp")
    },
    **{f"multipl-e-{lang}": f"codelm.eval.tasks.multipl_e:{lang.upper()}" for lang in _MULTIPL_E},
}
# tasks with no public data: the user names held-out files (`--data TASK=FILE`)
_OWN_DATA = ("perplexity", "docstring-to-function", "preference")
# names that stand for several tasks
GROUPS: dict[str, tuple[str, ...]] = {
    "humaneval-infilling": tuple(n for n in TASKS if n.startswith("humaneval-infilling-")),
    "humaneval-x": tuple(n for n in TASKS if n.startswith("humaneval-x-")),
    "cruxeval": tuple(n for n in TASKS if n.startswith("cruxeval-")),
    **{f"safim-{s}": tuple(n for n in TASKS if n.startswith(f"safim-{s}-")) for s in _SAFIM},
    "safim": tuple(n for n in TASKS if n.startswith("safim-")),
    "multipl-e": tuple(n for n in TASKS if n.startswith("multipl-e-")),
    "all": tuple(n for n in TASKS if n not in _OWN_DATA),  # those with public data
}


def _unknown(name: str) -> CodelmError:
    close = difflib.get_close_matches(name, [*TASKS, *GROUPS], n=3, cutoff=0.5)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return CodelmError(f"unknown task {name!r}{hint} (known: {', '.join([*TASKS, *GROUPS])})")


def task_names(spec: str | list[str]) -> list[str]:
    """Task names from a comma-separated spec (groups expanded, duplicates dropped, order kept)."""
    names = [n.strip() for n in (spec.split(",") if isinstance(spec, str) else spec) if n.strip()]
    if not names:
        raise CodelmError("no tasks given")
    expanded: list[str] = []
    for name in names:
        if name not in TASKS and name not in GROUPS:
            raise _unknown(name)
        expanded.extend(GROUPS.get(name, (name,)))
    return list(dict.fromkeys(expanded))


def executes_code(spec: str | list[str]) -> bool:
    """Whether any of these tasks runs model code (``local`` tasks, such as exact match, do not)."""
    return any(not get_task(name).local for name in task_names(spec))


def get_task(name: str):
    """The registered task ``name`` (its module imported now)."""
    if name not in TASKS:
        raise _unknown(name)
    module, attribute = TASKS[name].split(":")
    return getattr(importlib.import_module(module), attribute)
