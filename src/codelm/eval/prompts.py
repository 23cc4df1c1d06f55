"""Prompt handling shared by the benchmarks: stop strings, chat prompts, code from chat replies.

Base models get the benchmark's prompt byte for byte (the trailing newline is kept: stripping it
changes the first token and costs points; see bigcode-evaluation-harness, which strips only for
models that need it). Their texts are cut at the first stop string, again after the backend did,
since an OpenAI-compatible server may apply fewer stops than asked (OpenAI allows four).

Instruct/chat models get one user message asking for a fenced code block, and the completion is
the code inside the reply's fence (``extract_code``), chosen the way EvalPlus's sanitizer does in
spirit: the block that defines the entry point, else the first Python block, else the reply.
Code is taken from a reasoning model's answer, never from its thinking: backends return the answer
apart (codelm's engine and server, vLLM with a reasoning parser), and a reply that still opens with
a `<think>` block (servers that do not separate it, stored samples) loses the block first, so an
unfinished thinking block leaves no code at all (codelm.models.reasoning).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from codelm.models.reasoning import strip_reasoning

_FENCE = re.compile(r"```[ \t]*([\w+#.-]*)[^\n]*\n(.*?)(?:```|\Z)", re.S)


def cut_at_stops(text: str, stops: Iterable[str]) -> str:
    """``text`` up to the earliest occurrence of any stop string."""
    end = len(text)
    for stop in stops:
        if stop:
            i = text.find(stop)
            if 0 <= i < end:
                end = i
    return text[:end]


def fenced_blocks(reply: str) -> list[tuple[str, str]]:
    """``(language tag, code)`` of every fenced block; an unclosed last fence runs to the end."""
    return [(m.group(1).lower(), m.group(2)) for m in _FENCE.finditer(reply)]


def extract_code(reply: str, entry_point: str | None = None, language: str = "python") -> str:
    """The code a chat reply answers with (see the module docstring for the choice)."""
    reply = strip_reasoning(reply)
    blocks = fenced_blocks(reply)
    if not blocks:
        return reply.strip("\n") + "\n" if reply.strip() else ""
    aliases = {"python": ("python", "py", "python3"), "cpp": ("cpp", "c++"), "js": ("js", "javascript")}
    wanted = aliases.get(language, (language,))
    tagged = [code for tag, code in blocks if tag in wanted or not tag] or [code for _, code in blocks]
    if entry_point:
        pattern = re.compile(
            rf"\b(def|function|fn|func)\s+{re.escape(entry_point)}\b|\b{re.escape(entry_point)}\s*\("
        )
        defining = [code for code in tagged if pattern.search(code)]
        if defining:
            return defining[0]
    return tagged[0]


def chat_function_prompt(code_prompt: str, language: str = "python") -> str:
    """The user message for function-completion benchmarks (HumanEval and its variants)."""
    return (
        f"Complete the following {language} code. Answer with the complete function, including "
        f"its signature, in one ```{language} code block.\n\n```{language}\n{code_prompt.rstrip()}\n```\n"
    )


def chat_task_prompt(description: str, tests: Iterable[str]) -> str:
    """The user message for MBPP-style benchmarks: the task and the tests it must pass.

    Worded as in the MBPP paper's prompt (Austin et al. 2021, section 2.2), with a fence request.
    """
    test_text = "\n".join(tests)
    return (
        f"You are an expert Python programmer, and here is your task: {description.strip()} "
        f"Your code should pass these tests:\n\n{test_text}\n\n"
        "Answer with the complete solution in one ```python code block."
    )
