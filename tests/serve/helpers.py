"""Helpers for the server tests: SSE parsing, and hooks that slow, hold or steer a tiny model."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable


def sse_payloads(lines: Iterable[str]) -> list:
    """The `data:` payloads of an SSE body, parsed ('[DONE]' stays a string)."""
    out = []
    for line in lines:
        if line.startswith("data: "):
            data = line[6:]
            out.append(data if data == "[DONE]" else json.loads(data))
    return out


def slow_down(engine, seconds_per_forward: float) -> None:
    """Make every forward pass take at least this long: generation outlives the test's actions."""

    def hook(module, args, kwargs, output):
        time.sleep(seconds_per_forward)
        return output

    engine.model.register_forward_hook(hook, with_kwargs=True)


class Gate:
    """Hold every forward pass until `open()`: the scheduler's worker is parked mid-step."""

    def __init__(self, engine) -> None:
        self.entered = threading.Event()
        self._open = threading.Event()
        engine.model.register_forward_hook(self._hook, with_kwargs=True)

    def _hook(self, module, args, kwargs, output):
        self.entered.set()
        assert self._open.wait(60), "gate never opened"
        return output

    def open(self) -> None:
        self._open.set()


def boost_token(engine, token: str, after_steps: int, text: bool = False) -> None:
    """From the `after_steps`-th decode step on, the model strongly prefers `token` (a vocabulary
    entry such as a sentinel, or with text=True the first token of that plain text)."""
    if text:
        token_id = engine.tokenizer(token, add_special_tokens=False)["input_ids"][0]
    else:
        token_id = engine.tokenizer.convert_tokens_to_ids(token)
    steps = {"n": 0}

    def hook(module, args, kwargs, output):
        ids = kwargs.get("input_ids")
        if ids is not None and ids.shape[1] == 1:
            steps["n"] += 1
            if steps["n"] >= after_steps:
                output.logits[..., token_id] += 1e4
        return output

    engine.model.register_forward_hook(hook, with_kwargs=True)


def wait_until(predicate: Callable[[], bool], timeout_s: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)
