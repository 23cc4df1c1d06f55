"""Python functions cut out of modules as written: what the derived SFT pairs, the function documents
and the `function_documents` curation step are made of.

A function "as written" is its source segment (signature, docstring, body; decorators left out),
cut from the module's lines the way `ast.get_source_segment` cuts it, but with the module split
once instead of once per function (per call, that split was 70 of the tiny recipe's 81 s of
deriving). "Documented" means public (no leading underscore) with a docstring of 20+ characters:
code shaped like HumanEval's problems, a signature and a description, then the body.
"""

from __future__ import annotations

import ast
import re
import warnings
from collections.abc import Iterator

MIN_DOCSTRING_CHARS = 20  # shorter docstrings ("Getter.") say too little to write a function from


def parse_module(text: str) -> ast.Module | None:
    """The module's syntax tree, or None when it does not parse (also for NUL bytes and nesting too
    deep for the parser: untrusted input)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # invalid escapes and the like are not errors
            return ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


def top_level_functions(text: str | ast.Module) -> Iterator[ast.FunctionDef]:
    """Top-level functions of a Python source or its tree (nothing when it does not parse)."""
    tree = parse_module(text) if isinstance(text, str) else text
    for node in tree.body if tree is not None else ():
        if isinstance(node, ast.FunctionDef):
            yield node


def is_documented(fn: ast.FunctionDef) -> bool:
    """Public, with a docstring of `MIN_DOCSTRING_CHARS`+ characters."""
    doc = ast.get_docstring(fn)
    return bool(doc) and len(doc) >= MIN_DOCSTRING_CHARS and not fn.name.startswith("_")


_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")


def source_lines(text: str) -> list[str]:
    """`text` split into lines as Python's parser splits it (line ends kept): at \\n, \\r\\n and \\r only,
    not at the form feeds, vertical tabs and Unicode separators `str.splitlines` also splits at."""
    return _LINE.findall(text)


def segment(lines: list[str], node: ast.AST) -> str:
    """`ast.get_source_segment` on a module already split into lines (keepends)."""
    first, last = node.lineno - 1, node.end_lineno - 1
    start, end = node.col_offset, node.end_col_offset
    if first == last:
        return lines[first].encode()[start:end].decode()
    head = lines[first].encode()[start:].decode()
    tail = lines[last].encode()[:end].decode()
    return head + "".join(lines[first + 1 : last]) + tail


def documented_sources(
    text: str, max_code_chars: int = 1500, tree: ast.Module | None = None
) -> Iterator[tuple[str, str]]:
    """(name, source as written) of every documented top-level function of a module whose source
    without its docstring has at most `max_code_chars` characters (as written: comments count).
    `tree`: the module already parsed."""
    lines = None
    for fn in top_level_functions(tree if tree is not None else text):
        if not is_documented(fn):
            continue
        lines = lines or source_lines(text)
        source = segment(lines, fn)
        if len(source) - len(segment(lines, fn.body[0])) <= max_code_chars:
            yield fn.name, source
