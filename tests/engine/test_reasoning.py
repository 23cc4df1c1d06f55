"""Reasoning through the engine: thinking split from the answer (whole, streamed, batched through the
scheduler), markers cut across tokens, the thinking budget, and the reasoning chat template.

A random tiny model never writes `<think>`, so exact outputs come from a scripted tiny model
(`script_tokens`): the real model runs, its output head is steered to the scripted ids.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager

import pytest

from codelm.engine import Engine
from codelm.engine.loader import Loaded
from codelm.engine.scheduler import Scheduler
from codelm.errors import RequestError
from codelm.models.tiny import script_tokens

USER = [{"role": "user", "content": "Write f."}]
THOUGHT = "<think>\nf must return one.\n</think>\n\n"
ANSWER = "```python\ndef f():\n    return 1\n```"


def _ids(engine: Engine, text: str) -> list[int]:
    return engine.tokenizer(text, add_special_tokens=False)["input_ids"]


def _chars(engine: Engine, text: str) -> list[int]:
    """One token per character: every marker is cut across as many tokens as it has characters."""
    return [i for ch in text for i in _ids(engine, ch)]


@contextmanager
def scripted(engine: Engine, ids: list[int]):
    handle = script_tokens(engine.model, [*ids, engine.tokenizer.eos_token_id])
    try:
        yield
    finally:
        handle.remove()


def _variant(engine: Engine, **kwargs) -> Engine:
    """Another Engine over the same loaded model (chat format, reasoning switch)."""
    return Engine(Loaded(engine.model, engine.tokenizer, engine.family, engine.path), **kwargs)


@pytest.mark.parametrize("spell", [_ids, _chars], ids=["bpe", "char-by-char"])
def test_chat_separates_reasoning_whole_and_streamed(tiny_engine, spell):
    engine = tiny_engine("llama")
    script = spell(engine, THOUGHT + ANSWER)
    with scripted(engine, script):
        c = engine.chat(USER, max_new_tokens=200, temperature=0).completions[0]
    assert (c.reasoning, c.text, c.finish_reason) == ("f must return one.", ANSWER, "stop")
    assert c.token_ids == script  # the thinking is generated text like any other
    with scripted(engine, script):
        chunks = list(engine.stream(engine.chat_request(USER, max_new_tokens=200, temperature=0)))
    assert "".join(ch.reasoning for ch in chunks) == "f must return one."
    assert "".join(ch.text for ch in chunks) == ANSWER
    # no chunk mixes a marker's pieces into either part, and thinking comes before the answer
    first_answer = next(i for i, ch in enumerate(chunks) if ch.text)
    assert not any(ch.reasoning for ch in chunks[first_answer:])
    assert chunks[-1].finish_reason == "stop"


def test_reply_without_thinking_is_unchanged_and_reasoning_absent(tiny_engine):
    engine = tiny_engine("llama")
    with scripted(engine, _ids(engine, "  " + ANSWER)):
        c = engine.chat(USER, max_new_tokens=200, temperature=0).completions[0]
    assert c.reasoning is None and c.text == "  " + ANSWER
    # a random tiny model's own reply: nothing to separate, nothing lost
    plain = engine.chat(USER, max_new_tokens=12, temperature=0).completions[0]
    raw = _variant(engine, reasoning=False).chat(USER, max_new_tokens=12, temperature=0).completions[0]
    assert plain.token_ids == raw.token_ids and plain.text == raw.text and plain.reasoning is None


def test_unclosed_thinking_is_all_reasoning(tiny_engine):
    engine = tiny_engine("llama")
    with scripted(engine, _ids(engine, "<think>\nstill going and going")):
        c = engine.chat(USER, max_new_tokens=len(_ids(engine, "<think>")) + 4, temperature=0).completions[0]
    assert c.finish_reason == "length" and c.text == "" and c.reasoning and "<think>" not in c.reasoning


def test_reasoning_off_leaves_the_thinking_in_the_text(tiny_engine):
    engine = _variant(tiny_engine("llama"), reasoning=False)
    with scripted(engine, _ids(engine, THOUGHT + ANSWER)):
        c = engine.chat(USER, max_new_tokens=200, temperature=0).completions[0]
    assert c.reasoning is None and c.text == THOUGHT + ANSWER
    with pytest.raises(RequestError, match="max_thinking_tokens applies to chat requests whose reasoning"):
        engine.chat_request(USER, max_thinking_tokens=4)


@pytest.mark.parametrize("budget", [1, 3, 7])
def test_thinking_budget_writes_the_end_marker(tiny_engine, budget):
    """s1's budget forcing: after `budget` thinking tokens the end marker is written, the answer follows."""
    engine = tiny_engine("llama")
    thought = _ids(engine, "<think>") + _chars(engine, "abcdefghijklmnopqrstuvwxyz")
    with scripted(engine, thought):
        c = engine.chat(USER, max_new_tokens=60, temperature=0, max_thinking_tokens=budget).completions[0]
    assert c.reasoning == "abcdefghijklmnopqrstuvwxyz"[:budget]
    forced = _ids(engine, "\n</think>\n\n")
    start = len(_ids(engine, "<think>")) + budget
    assert c.token_ids[start : start + len(forced)] == forced
    # the model goes on after the marker: what it writes next is the answer
    assert c.text and c.text == engine.tokenizer.decode(c.token_ids[start + len(forced) :]).lstrip()
    with scripted(engine, thought):
        chunks = list(engine.stream(engine.chat_request(USER, max_new_tokens=60, max_thinking_tokens=budget)))
    assert (
        "".join(ch.reasoning for ch in chunks) == c.reasoning and "".join(ch.text for ch in chunks) == c.text
    )


def test_budget_larger_than_the_thinking_changes_nothing(tiny_engine):
    engine = tiny_engine("llama")
    script = _ids(engine, THOUGHT + ANSWER)
    with scripted(engine, script):
        c = engine.chat(USER, max_new_tokens=200, temperature=0, max_thinking_tokens=500).completions[0]
    assert c.token_ids == script and c.reasoning == "f must return one." and c.text == ANSWER


def test_template_that_opens_thinking_and_a_zero_budget(own_tiny_llama):
    """DeepSeek-R1 / Qwen3 style: the prompt ends with <think>, the output only closes it."""
    engine = own_tiny_llama
    engine.tokenizer.chat_template = (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
        "<|im_start|>assistant\n<think>\n"
    )
    with scripted(engine, _ids(engine, "quick thought\n</think>\n\nok")):
        c = engine.chat(USER, max_new_tokens=40, temperature=0).completions[0]
    assert (c.reasoning, c.text) == ("quick thought", "ok")
    with scripted(engine, _ids(engine, "quick thought")):
        c = engine.chat(USER, max_new_tokens=40, temperature=0, max_thinking_tokens=0).completions[0]
    assert c.reasoning == "" and c.token_ids[: len(_ids(engine, "\n</think>\n\n"))] == _ids(
        engine, "\n</think>\n\n"
    )


@pytest.fixture
def own_tiny_llama(tiny_checkpoint):
    return Engine.from_pretrained(str(tiny_checkpoint("llama")))


@pytest.mark.parametrize("bad", [-1, 1.5, "3", True])
def test_bad_thinking_budgets_are_refused(tiny_engine, bad):
    with pytest.raises(RequestError, match="max_thinking_tokens must be an integer >= 0"):
        tiny_engine("llama").chat_request(USER, max_thinking_tokens=bad)


def test_budget_is_for_chat_requests_only(tiny_engine):
    with pytest.raises(RequestError, match="this is a completion request"):
        tiny_engine("llama").completion_request("x = ", max_thinking_tokens=3)


def test_scheduler_events_carry_reasoning_apart(tiny_engine):
    """The server's path: continuous batching, events per decode step."""
    engine = tiny_engine("llama")
    script = _chars(engine, THOUGHT) + _ids(engine, ANSWER)
    events, done = [], threading.Event()

    def on_event(ev):
        events.append(ev)
        if ev.finish_reason:
            done.set()

    scheduler = Scheduler(engine, max_batch_size=4).start()
    try:
        with scripted(engine, script):
            ticket = scheduler.submit(engine.chat_request(USER, max_new_tokens=200, temperature=0), on_event)
            assert done.wait(60)
    finally:
        scheduler.close()
    assert "".join(e.reasoning for e in events) == "f must return one."
    assert "".join(e.text for e in events) == ANSWER
    c = ticket.result().completions[0]
    assert (c.reasoning, c.text) == ("f must return one.", ANSWER)


def test_seedcoder_reasoning_template_through_the_engine(tiny_engine):
    """chat_format="reasoning" renders Seed-Coder-8B-Reasoning's template over the checkpoint's own."""
    base = tiny_engine("seedcoder")
    engine = _variant(base, chat_format="reasoning")
    request = engine.chat_request(USER)
    assert request.prompt == (
        "<[begin▁of▁sentence]>user\nWrite f.<[end▁of▁sentence]><[begin▁of▁sentence]>assistant\n"
    )
    assert "You are an AI programming assistant" in base.chat_request(USER).prompt  # the Instruct one
    with pytest.raises(RequestError, match="System role not supported"):
        engine.chat_request([{"role": "system", "content": "s"}, *USER])
    with scripted(engine, _ids(engine, THOUGHT + ANSWER)):
        c = engine.chat(USER, max_new_tokens=200, temperature=0).completions[0]
    assert (c.reasoning, c.text) == ("f must return one.", ANSWER)
    with pytest.raises(RequestError, match="unknown chat format"):
        _variant(base, chat_format="thinking")


def test_budget_per_row_in_one_batch(tiny_engine):
    """Rows of one batch think to their own budgets: forced tokens replace some rows' choices only."""
    engine = tiny_engine("llama")
    thought = _ids(engine, "<think>") + _chars(engine, "abcdefghijklmnopqrstuvwxyz")
    requests = [
        engine.chat_request(USER, max_new_tokens=50, temperature=0.7, seed=1, n=3, max_thinking_tokens=2),
        engine.chat_request(USER, max_new_tokens=50, temperature=0, max_thinking_tokens=5),
        engine.chat_request(USER, max_new_tokens=len(thought), temperature=0),
    ]
    with scripted(engine, thought):  # every row is steered to the same ids; budgets differ
        results = engine.generate(requests)
    assert [c.reasoning for c in results[0].completions] == ["ab"] * 3
    assert results[1].completions[0].reasoning == "abcde"
    assert results[2].completions[0].reasoning == "abcdefghijklmnopqrstuvwxyz"  # unclosed, no budget
    assert all(c.text for r in results[:2] for c in r.completions)
