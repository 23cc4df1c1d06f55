"""Data derived from code: docstring -> function, function documents, doctest-passing vs corrupted,
self-play infilling problems and pairs."""

import ast
import random

from codelm.data.functions import source_lines, top_level_functions
from codelm.recipes.derive import (
    doctest_candidates,
    documented_functions,
    dpo_pairs,
    infill_problems,
    mutate,
    self_play_pairs,
    sft_pairs,
)

MODULE = '''
import math


def hypotenuse(a, b):
    """Length of the hypotenuse of a right triangle with legs a and b.

    >>> hypotenuse(3, 4)
    5.0
    """
    return math.sqrt(a * a + b * b)


def clamp(x, lo, hi):
    """Clamp x into the closed interval [lo, hi], whatever side it falls on.

    >>> clamp(5, 0, 3)
    3
    >>> clamp(-1, 0, 3)
    0
    """
    if x < lo:
        return lo
    if x > hi:
        return hi
    return x


def _private(x):
    """A helper that is long enough to qualify but private."""
    return x
'''


def test_sft_pairs_are_docstring_to_function_without_docstring():
    pairs = list(sft_pairs([MODULE, "def broken(:\n"]))
    assert [p["messages"][0]["content"].split("`")[1] for p in pairs] == [
        "hypotenuse(a, b)",
        "clamp(x, lo, hi)",
    ]
    reply = pairs[1]["messages"][1]["content"]
    assert reply.startswith("def clamp(x, lo, hi):") and '"""' not in reply and "return x" in reply


def test_function_documents_are_the_sft_pairs_functions_as_written():
    decorated = MODULE.replace("def clamp", "@staticmethod  # a decorator stays out\ndef clamp")
    found = list(documented_functions([decorated, "def broken(:\n"]))
    pairs = list(sft_pairs([decorated]))
    assert [f.sft_pair() for f in found] == pairs  # same functions, same keys
    clamp = found[1].document()
    assert clamp.startswith('def clamp(x, lo, hi):\n    """Clamp x') and clamp.endswith("    return x\n")
    assert clamp in decorated and ">>> clamp(5, 0, 3)" in clamp  # as written: docstring and examples kept
    assert len(list(documented_functions([MODULE], max_functions=1))) == 1


def test_mutate_swaps_one_operator():
    src = "def f(a, b):\n    return a + b if a < b else a"
    out = mutate(src, random.Random(0))
    assert out != src and ("a - b" in out or "a >= b" in out)
    assert mutate("def f():\n    return 1", random.Random(0)) is None


def test_dpo_pairs_are_verified_in_the_sandbox():
    from codelm.eval.execution import ExecutionPool

    with ExecutionPool(1, allow_code_execution=True) as pool:
        pairs = dpo_pairs([MODULE], pool=pool, seed=0)
    names = {p["prompt"].split("`")[1] for p in pairs}
    assert names <= {"hypotenuse", "clamp"} and pairs
    for p in pairs:
        assert p["chosen"] != p["rejected"] and p["chosen"].startswith("def ")


def test_doctest_candidates_cut_sources_as_ast_does():
    """The function sources equal `ast.get_source_segment`'s, whatever the line ends and characters
    (CRLF and lone CR ends, form feeds and Unicode line separators inside lines, non-ASCII text)."""
    tricky = (
        "# \u00e9t\u00e9 \u2028 caf\u00e9\r\n\x0c\r\n"
        'def greet(name):\r\n    """Say h\u00e9llo.\r\n\r\n'
        '    >>> greet("x")\r\n    \'h\u00e9 x\'\r\n    """\r\n'
        '    return "h\u00e9 " + name  # \x0b \u2029\r\n\r'
        'def lone(a):\r    """Lone CR ends.\r\r    >>> lone(1)\r    1\r    """\r    return a\r'
    )
    for text in (MODULE, tricky, MODULE.replace("\n", "\r\n")):
        got = {name: source for _, name, source in doctest_candidates([text])}
        want = {
            fn.name: ast.get_source_segment(text, fn)
            for fn in top_level_functions(text)
            if ">>>" in (ast.get_docstring(fn) or "")
        }
        assert got == want and got
    assert source_lines(tricky) == ast._splitlines_no_ff(tricky)  # what ast splits with (private)


FUNCTIONS = [
    'def area(w, h):\n    """Area of a w by h rectangle, in square units."""\n    # the product\n\n'
    "    result = w * h\n    return result\n",
    'def only_doc():\n    """A function with nothing but its docstring."""\n',
    "def bare(x):\n    return (x +\n            1)\n",
]


def test_infill_problems_remove_one_code_line_of_the_body():
    problems = infill_problems(FUNCTIONS * 3, max_problems=10, seed=1)
    assert problems and len(problems) <= 6  # the docstring-only function gives none
    for p in problems:
        text = p["prompt"] + p["canonical_solution"] + p["suffix"]
        assert text in FUNCTIONS
        line = p["canonical_solution"]
        assert line.endswith("\n") and line.strip() and not line.lstrip().startswith("#")
        assert '"""' not in line and not line.startswith("def ")
        assert set(p) == {"task_id", "entry_point", "prompt", "suffix", "canonical_solution", "test"}
    assert len({p["task_id"] for p in problems}) == len(problems)
    assert infill_problems(FUNCTIONS * 3, max_problems=10, seed=1) == problems  # seeded
    assert len(infill_problems(FUNCTIONS * 3, max_problems=2, seed=1)) == 2
    short = infill_problems(FUNCTIONS, max_problems=10, fits=lambda prefix, suffix, line: len(prefix) < 40)
    assert short and all(len(p["prompt"]) < 40 for p in short)


def test_self_play_pairs_keep_the_lines_the_model_got_wrong():
    problems = [
        {"task_id": "a", "prompt": "def f():\n", "suffix": "", "canonical_solution": "    return (1)\n"},
        {"task_id": "b", "prompt": "def g():\n", "suffix": "", "canonical_solution": "    return 2\n"},
        {"task_id": "c", "prompt": "def h():\n", "suffix": "", "canonical_solution": "    return 3\n"},
    ]
    samples = [
        {"task_id": "a", "completion": "    return (1\n", "passed": False},
        {"task_id": "b", "completion": "    return 2\n", "passed": True},
        {"task_id": "c", "completion": "\n", "passed": False},  # empty: left out
    ]
    pairs = self_play_pairs(problems, samples, lambda prefix, suffix: f"<{suffix}|{prefix}>")
    assert pairs == [
        {
            "prompt": "<|def f():\n>",
            "chosen": "    return (1)\n",
            "rejected": "    return (1\n",
            "chat": False,
        }
    ]
