"""Reasoning: the think-marker parser (whole and streamed), per family template, and rendering."""

import random

import pytest

from codelm.errors import RequestError
from codelm.models import get_family
from codelm.models.formats import render_chat
from codelm.models.reasoning import (
    THINK,
    ReasoningParser,
    format_reasoning,
    opens_thinking,
    reasoning_spec,
    split_reasoning,
    strip_reasoning,
)
from codelm.models.registry import ReasoningSpec

SEED = reasoning_spec(get_family("seedcoder"))
SEED_OSS = ReasoningSpec("<seed:think>", "</seed:think>")  # another vendor's markers: any pair works

CASES = [
    # (output, inside, reasoning, answer)
    ("<think>\nplan it\n</think>\n\n```python\nx = 1\n```", False, "plan it", "```python\nx = 1\n```"),
    ("  <think>a</think>b", False, "a", "b"),
    ("<think></think>answer", False, "", "answer"),
    ("no thinking here", False, None, "no thinking here"),
    ("  indented answer\n", False, None, "  indented answer\n"),
    ("answer mentions <think> later", False, None, "answer mentions <think> later"),
    ("<think>cut off by the token limit", False, "cut off by the token limit", ""),
    (
        "<think>has < and </thin but not the marker</think>ok",
        False,
        "has < and </thin but not the marker",
        "ok",
    ),
    ("still thinking\n</think>\n\nanswer", True, "still thinking", "answer"),  # the prompt opened it
    ("</think>answer", True, "", "answer"),
    ("", True, "", ""),
    ("", False, None, ""),
    ("<thi", False, None, "<thi"),  # an unfinished marker at the end is plain text
    ("<think>x</think>a</think>b", False, "x", "a</think>b"),  # only the first end marker counts
]


@pytest.mark.parametrize("text,inside,reasoning,answer", CASES)
def test_split_reasoning(text, inside, reasoning, answer):
    assert split_reasoning(text, THINK, inside) == (reasoning, answer)


def _stream(text: str, cuts: list[int], spec=THINK, inside=False) -> tuple[str, str, bool]:
    parser = ReasoningParser(spec, inside)
    reasoning = answer = ""
    bounds = [0, *cuts, len(text)]
    for a, b in zip(bounds, bounds[1:], strict=False):
        r, c = parser.feed(text[a:b])
        reasoning, answer = reasoning + r, answer + c
    r, c = parser.flush()
    return reasoning + r, answer + c, parser.saw_thinking


@pytest.mark.parametrize("text,inside,reasoning,answer", CASES)
def test_streamed_split_matches_whole_at_every_cut(text, inside, reasoning, answer):
    """Markers cut anywhere between chunks (one character at a time, every single cut point)."""
    want = (reasoning or "", answer, reasoning is not None)
    assert _stream(text, list(range(1, len(text))), inside=inside) == want
    for cut in range(len(text) + 1):
        assert _stream(text, [cut], inside=inside) == want


def test_streamed_split_random_chunkings_with_other_markers():
    rng = random.Random(0)
    text = "\n<seed:think>\n  step 1 </seed:thin\nstep 2\n</seed:think>\n\nfinal </seed:think>"
    for _ in range(200):
        cuts = sorted(rng.sample(range(1, len(text)), rng.randint(0, 12)))
        assert _stream(text, cuts, SEED_OSS) == ("step 1 </seed:thin\nstep 2", "final </seed:think>", True)


def test_parser_never_emits_a_marker_prefix_it_may_still_need():
    parser = ReasoningParser(THINK)
    assert parser.feed("<th") == ("", "")
    assert parser.feed("ink>abc </") == ("abc", "")  # " </" may be the end marker's start
    assert parser.thinking
    assert parser.feed("think>") == ("", "")
    assert not parser.thinking
    assert parser.feed("\n\nok") == ("", "ok")


def test_format_and_split_round_trip():
    text = format_reasoning("think hard", "def f(): ...", SEED)
    assert text == "<think>\nthink hard\n</think>\n\ndef f(): ..."
    assert split_reasoning(text, SEED) == ("think hard", "def f(): ...")
    assert format_reasoning(None, "plain") == "plain"
    assert strip_reasoning(text) == "def f(): ..."


def test_opens_thinking_from_the_rendered_prompt():
    assert opens_thinking(THINK, "<|im_start|>assistant\n<think>\n")
    assert not opens_thinking(THINK, "<|im_start|>assistant\n")
    assert not opens_thinking(THINK, "user said <think> earlier\nassistant\n")


def test_markers_must_differ():
    with pytest.raises(ValueError, match="two different non-empty"):
        ReasoningSpec("<think>", "<think>")
    with pytest.raises(ValueError, match="two different non-empty"):
        ReasoningSpec("", "</think>")


def test_families_without_their_own_markers_use_think():
    assert reasoning_spec(get_family("llama")) == THINK
    assert reasoning_spec(None) == THINK


# -- Seed-Coder-8B-Reasoning's template (llama.cpp PR #13472, Seed-Coder issue 2) ------------------


def test_seedcoder_reasoning_template_renders_turns_without_a_system_prompt():
    fam = get_family("seedcoder")
    convo = [
        {"role": "user", "content": " Write a quick sort. "},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "more"},
    ]
    assert render_chat(fam, convo, chat_format="reasoning") == (
        "<[begin▁of▁sentence]>user\nWrite a quick sort.<[end▁of▁sentence]>"
        "<[begin▁of▁sentence]>assistant\nok<[end▁of▁sentence]>"
        "<[begin▁of▁sentence]>user\nmore<[end▁of▁sentence]><[begin▁of▁sentence]>assistant\n"
    )
    # the template does not open a thinking block: the model writes <think> itself
    assert not opens_thinking(SEED, render_chat(fam, convo[:1], chat_format="reasoning"))


def test_seedcoder_reasoning_template_refuses_system_and_non_alternating():
    fam = get_family("seedcoder")
    with pytest.raises(RequestError, match="System role not supported"):
        render_chat(fam, [{"role": "system", "content": "x"}, {"role": "user", "content": "y"}], "reasoning")
    with pytest.raises(RequestError, match="alternate"):
        render_chat(fam, [{"role": "user", "content": "x"}, {"role": "user", "content": "y"}], "reasoning")


def test_past_thinking_is_not_rendered_back():
    """Earlier assistant turns keep only their answer (DeepSeek-R1 and Qwen3 templates do the same)."""
    fam = get_family("llama")
    convo = [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "<think>\nlong thoughts\n</think>\n\nshort answer"},
        {"role": "user", "content": "q2"},
    ]
    out = render_chat(fam, convo)
    assert "long thoughts" not in out and "<|im_start|>assistant\nshort answer<|im_end|>" in out


def test_reasoning_format_needs_a_family_template():
    with pytest.raises(RequestError, match="no reasoning chat template"):
        render_chat(get_family("llama"), [{"role": "user", "content": "x"}], chat_format="reasoning")
    with pytest.raises(RequestError, match="unknown chat format"):
        render_chat(get_family("llama"), [{"role": "user", "content": "x"}], chat_format="fancy")
