"""The check program's source, assembled exactly as CodeGeeX's HumanEval-X harness assembles it.

Ported from ``process_humaneval_test`` in THUDM/CodeGeeX ``codegeex/benchmark/humaneval-x/
evaluate_humaneval_x.py`` (the version with Rust support) and ``IMPORT_HELPER`` in
``codegeex/benchmark/utils.py``; ``test_source(problem, completion)`` returns the same string the
harness writes to disk for ``sample["generation"] = completion``:

* Python: the import header, prompt, completion cut at its first unindented line, the test;
* C++: the ``#include`` lines the prompt lacks, prompt, completion, the test's ``main``;
* Java and JavaScript: prompt, completion, the test (Java's test is ``public class Main``);
* Go: ``test_setup`` (package and test imports), an import block for the helper packages whose
  name the *completion* uses, the prompt without its own import block, completion, test;
* Rust: ``fn main`` stub, declaration (its ``use`` lines name rand, regex and md5), the prompt
  (a doc comment), completion, and the ``#[cfg(test)]`` module.
"""

from __future__ import annotations

from .problems import RUST_MAIN, Problem

PYTHON_IMPORTS = (
    "import math",
    "import re",
    "import sys",
    "import copy",
    "import datetime",
    "import itertools",
    "import collections",
    "import heapq",
    "import statistics",
    "import functools",
    "import hashlib",
    "import numpy",
    "import numpy as np",
    "import string",
    "from typing import *",
    "from collections import *",
)
GO_PACKAGES = (
    "math",
    "strings",
    "fmt",
    "strconv",
    "time",
    "bytes",
    "regexp",
    "sort",
    "math/rand",
    "crypto/md5",
)
CPP_INCLUDES = (
    "#include<stdlib.h>",
    "#include<algorithm>",
    "#include<math.h>",
    "#include<stdio.h>",
    "#include<vector>",
    "#include<string>",
    "#include<climits>",
    "#include<cstring>",
    "#include<iostream>",
)


def select_test(problem: Problem, example_test: bool = False) -> str:
    """The hidden test, or the docstring examples' test when asked for and the problem has one."""
    return problem.example_test if example_test and problem.example_test else problem.test


def python_body(completion: str) -> str:
    """The completion up to its first non-empty line that starts in column 0 (as the harness cuts it)."""
    kept = []
    for line in completion.split("\n"):
        if line.strip() and line[0] not in (" ", "\t"):
            break
        kept.append(line)
    return "\n".join(kept)


def go_source(problem: Problem, completion: str, test: str) -> str:
    prompt = problem.prompt.replace(problem.imports, "")
    used = [
        f'"{package}"'
        for package in GO_PACKAGES
        if package not in problem.test_setup and package.split("/")[-1] + "." in completion
    ]
    if not used:
        return problem.test_setup + "\n" + prompt + completion + "\n" + test
    import_block = "import (\n" + "    ".join(package + "\n" for package in used) + ")"
    return problem.test_setup + "\n" + import_block + "\n" + prompt + completion + "\n" + test


def test_source(problem: Problem, completion: str, *, example_test: bool = False) -> str:
    """The full program CodeGeeX's harness would compile and run for ``completion``."""
    test = select_test(problem, example_test)
    language = problem.language
    if language == "python":
        header = "\n".join(PYTHON_IMPORTS) + "\n"
        return header + problem.prompt + python_body(completion) + "\n" + test + "\n"
    if language == "cpp":
        header = "".join(line + "\n" for line in CPP_INCLUDES if line not in problem.prompt)
        return header + "\n" + problem.prompt + completion + "\n" + test
    if language in ("java", "js"):
        return problem.prompt + completion + "\n" + test
    if language == "go":
        return go_source(problem, completion, test)
    if language == "rust":
        return RUST_MAIN + problem.declaration + problem.prompt + completion + test
    raise ValueError(f"unknown HumanEval-X language {language!r}")
