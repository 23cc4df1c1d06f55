"""Prompt helpers: stop strings, code taken from chat replies, the chat prompts' wording."""

from __future__ import annotations

from codelm.eval import prompts


def test_cut_at_stops_takes_the_earliest():
    assert prompts.cut_at_stops("a\nif x\ndef y", ["\ndef", "\nif"]) == "a"
    assert prompts.cut_at_stops("abc", []) == "abc" and prompts.cut_at_stops("abc", [""]) == "abc"


def test_extract_code_prefers_the_block_defining_the_entry_point():
    reply = (
        "Here:\n```text\nnot code\n```\n```python\ndef helper():\n    pass\n```\n"
        "```python\ndef f(x):\n    return x\n```"
    )
    assert prompts.extract_code(reply, "f") == "def f(x):\n    return x\n"
    assert prompts.extract_code(reply) == "def helper():\n    pass\n"  # first Python block
    assert prompts.extract_code("```\nx = 1\n```") == "x = 1\n"  # untagged fence
    assert prompts.extract_code("```python\ndef f():\n    return 1") == "def f():\n    return 1"  # cut off
    assert prompts.extract_code("def f():\n    return 1\n\n") == "def f():\n    return 1\n"  # no fence
    assert prompts.extract_code("   ") == ""
    cpp = "```cpp\nint add(int a, int b){ return a + b; }\n```"
    assert prompts.extract_code(cpp, "add", language="cpp").startswith("int add")


def test_chat_prompts():
    text = prompts.chat_function_prompt('def f():\n    """Doc."""\n')
    assert (
        text.startswith("Complete the following python code")
        and '```python\ndef f():\n    """Doc."""\n```' in text
    )
    task = prompts.chat_task_prompt("Write a function.", ["assert f(1) == 2"])
    assert task.startswith("You are an expert Python programmer, and here is your task: Write a function.")
    assert "assert f(1) == 2" in task and "```python" in task
