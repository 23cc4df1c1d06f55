"""Reasoning models' thinking: separate it from the answer, as text streams in, and render it back.

A reasoning model writes `<think>` thinking `</think>` then its answer (DeepSeek-R1, Qwen3, QwQ and,
by what its derivatives' drivers strip, Seed-Coder-8B-Reasoning; see families/seedcoder.yaml). Some
templates open the block themselves (the prompt ends with `<think>`): the output then starts inside
the thinking and only the end marker appears.

`ReasoningParser` is incremental, so the engine, the server and `codelm chat` split streams the
same way `split_reasoning` splits a whole text: markers may arrive cut across tokens, so any tail
that could still become a marker is held back (as `engine.text.StopMatcher` holds stop strings).
Rules, chosen so that a model that does not think is never changed:

* a thinking block opens only at the very start of the output (after whitespace), or in the prompt;
* the thinking runs to the end marker; unclosed (the sample hit its token limit), it is all thinking
  and the answer is empty, as vLLM's `deepseek_r1` parser reports it;
* whitespace around the thinking and at the start of the answer is dropped (the templates put
  newlines there); everything else is passed through byte for byte.

Pure string work: no tokenizer, no torch.
"""

from __future__ import annotations

from codelm.models.registry import Family, ReasoningSpec

THINK = ReasoningSpec()  # <think> ... </think>

_LEAD, _THINK, _ANSWER = "lead", "think", "answer"


def reasoning_spec(family: Family | None) -> ReasoningSpec:
    """The family's markers, or the generic `<think>` ones every other reasoning model uses."""
    return family.reasoning if family is not None and family.reasoning else THINK


def opens_thinking(spec: ReasoningSpec, prompt: str) -> bool:
    """Whether the rendered prompt itself opened a thinking block (DeepSeek-R1's later template,
    Qwen3's thinking mode end the generation prompt with `<think>\\n`)."""
    return prompt.rstrip().endswith(spec.start)


class ReasoningParser:
    """Split streamed text into (reasoning, answer) deltas; see the module docstring for the rules."""

    def __init__(self, spec: ReasoningSpec = THINK, inside: bool = False) -> None:
        self.spec = spec
        self.state = _THINK if inside else _LEAD
        self.saw_thinking = inside  # a block was opened: the reasoning is "" rather than absent
        self._pending = ""  # held back: could still turn into a marker, or is whitespace to drop
        self._strip = inside  # drop whitespace at the start of the current part

    @property
    def thinking(self) -> bool:
        """Inside the thinking block now (what a thinking-token budget counts)."""
        return self.state == _THINK

    def feed(self, delta: str) -> tuple[str, str]:
        """(reasoning, answer) text that became final with `delta`."""
        text, self._pending = self._pending + delta, ""
        reasoning = answer = ""
        while text:
            if self.state == _LEAD:
                body = text.lstrip()
                if body.startswith(self.spec.start):
                    text = body[len(self.spec.start) :]
                    self.state, self.saw_thinking, self._strip = _THINK, True, True
                    continue
                if self.spec.start.startswith(body):  # whitespace, or the marker's beginning
                    self._pending = text
                    break
                self.state = _ANSWER  # no thinking: the text is the answer as it is
                continue
            if self._strip:
                text = text.lstrip()
                if not text:
                    break
                self._strip = False
            if self.state == _ANSWER:
                answer += text
                break
            end = text.find(self.spec.end)
            if end >= 0:
                reasoning += text[:end].rstrip()
                text = text[end + len(self.spec.end) :]
                self.state, self._strip = _ANSWER, True
                continue
            keep = _held(text, self.spec.end)
            reasoning += text[:keep]
            self._pending = text[keep:]
            break
        return reasoning, answer

    def flush(self) -> tuple[str, str]:
        """The held-back tail at the end of the text: unfinished markers are plain text."""
        text, self._pending = self._pending, ""
        if self.state == _THINK:
            return text.rstrip(), ""
        if self.state == _LEAD:
            self.state = _ANSWER
            return "", text
        return "", text


def _held(text: str, marker: str) -> int:
    """Where the tail to hold back starts: a proper prefix of `marker` ending `text`, and the
    whitespace before it (dropped if the marker does come next)."""
    keep = len(text)
    if not text[-1].isspace() and text[-1] not in marker:  # the common case: nothing to hold
        return keep
    for k in range(min(len(marker) - 1, len(text)), 0, -1):
        if text.endswith(marker[:k]):
            keep = len(text) - k
            break
    while keep > 0 and text[keep - 1].isspace():
        keep -= 1
    return keep


def split_reasoning(text: str, spec: ReasoningSpec = THINK, inside: bool = False) -> tuple[str | None, str]:
    """(reasoning, answer) of a whole output; reasoning is None when no thinking block was opened."""
    parser = ReasoningParser(spec, inside)
    r1, a1 = parser.feed(text)
    r2, a2 = parser.flush()
    return (r1 + r2 if parser.saw_thinking else None), a1 + a2


def format_reasoning(reasoning: str | None, answer: str, spec: ReasoningSpec = THINK) -> str:
    """An assistant turn as a reasoning model writes it: the thinking block, a blank line, the answer
    (for training data and reward checks; `split_reasoning` inverts it)."""
    if reasoning is None:
        return answer
    return f"{spec.start}\n{reasoning}\n{spec.end}\n\n{answer}"


def strip_reasoning(text: str, spec: ReasoningSpec = THINK) -> str:
    """The answer of an output that may open with a thinking block (past turns of a conversation,
    replies of servers that do not parse reasoning): never the thinking."""
    return split_reasoning(text, spec)[1]
