"""SAFIM's syntax-aware post-processing of fill-in-the-middle completions (gonglinyuan/safim
``prompt_utils.py``), which the paper applies before scoring:

* block: ``truncate_line_until_block``: drop trailing lines until the filled program parses and
  its syntax tree differs from the program with an empty block (Python: ``pass``) only by the
  inserted nodes (tree-sitter; with ``pip install 'codelm[data]'``, else the text is kept whole);
* control: ``truncate_control``: Python keeps the first non-empty line, other languages cut at the
  parenthesis that closes the control expression;
* api: ``truncate_api_call``: cut after the parenthesis that closes the call.
"""

from __future__ import annotations

import functools
import importlib.util
from typing import Any

_TS_NAMES = {"python": "python", "java": "java", "cpp": "cpp", "csharp": "csharp"}


def first_line(code: str) -> str:
    """SAFIM's ``truncate_to_first_line``: the first non-blank line."""
    return next((line for line in code.splitlines() if line.strip()), "")


def truncate_control(lang: str, completion: str) -> str:
    if lang == "python":
        return first_line(completion)
    depth = 0
    for i, ch in enumerate(completion):
        depth += (ch == "(") - (ch == ")")
        if depth == -1:
            return completion[:i]
    return completion


def truncate_api_call(completion: str) -> str:
    depth = 0
    for i, ch in enumerate(completion):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth <= 0:
                return completion[: i + 1]
    return completion


@functools.cache
def _parser(lang: str) -> Any | None:
    if importlib.util.find_spec("tree_sitter_language_pack") is None:
        return None
    from tree_sitter_language_pack import get_parser

    return get_parser(_TS_NAMES[lang])


def _trace(parser: Any, code: bytes) -> tuple[int, list[tuple[bool, str]]]:
    """(ERROR nodes other than a lone ';', the enter/leave sequence of node types), as SAFIM's
    ``ErrorCheckVisitor(with_ndtypes=True)`` records them."""
    errors, trace = 0, []
    stack = [(parser.parse(code).root_node, False)]
    while stack:
        node, leaving = stack.pop()
        if leaving:
            trace.append((False, node.type))
            continue
        trace.append((True, node.type))
        if node.type == "ERROR" and node.text != b";":
            errors += 1
        stack.append((node, True))
        stack.extend((child, False) for child in reversed(node.children))
    return errors, trace


def _matched(t0: list, t1: list) -> tuple[int, int]:
    p = 0
    while p < len(t0) and p < len(t1) and t0[p] == t1[p]:
        p += 1
    q = 0
    while -q < len(t0) and -q < len(t1) and t0[q - 1] == t1[q - 1]:
        q -= 1
    return p, q


def truncate_block(lang: str, eval_prompt: str, completion: str) -> str:
    """SAFIM's ``truncate_line_until_block`` (the completion unchanged without tree-sitter)."""
    parser = _parser(lang)
    if parser is None:
        return completion
    prefix, suffix = (part.encode() for part in eval_prompt.split("{{completion}}"))
    empty = prefix + (b"pass" if lang == "python" else b"") + suffix
    errors0, trace0 = _trace(parser, empty)
    lines = completion.splitlines(keepends=True)
    while lines:
        errors, trace1 = _trace(parser, prefix + "".join(lines).encode() + suffix)
        if errors == 0 and errors0 == 0 and len(trace0) <= len(trace1):
            p, q = _matched(trace0, trace1)
            diff = len(trace0) - (p - q) - (4 if lang == "python" else 0)
            if diff == 0:
                break
        lines.pop()
    return "".join(lines)
