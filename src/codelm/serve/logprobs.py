"""Token log-probabilities in OpenAI's two shapes: legacy completions and chat.

Completions: parallel lists `tokens`, `token_logprobs`, `top_logprobs` (a token -> logprob map
per position) and `text_offset` (where each token starts in the choice's text). Chat: a `content`
list of `{token, logprob, bytes, top_logprobs: [{token, logprob, bytes}]}`. Values come from the
engine's `TokenLogprob`s, taken from the raw logits before sampling transforms, as vLLM does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from codelm.engine import TokenLogprob
from codelm.serve.protocol import ChatLogprobs, ChatTokenLogprob, CompletionLogprobs, TopLogprob

TokenText = Callable[[int], str]


def completion_logprobs(
    entries: Sequence[TokenLogprob], token_text: TokenText, offset: int = 0, top: bool = True
) -> CompletionLogprobs:
    """The completions shape; `offset` is where the first token starts (streaming continues it)."""
    tokens = [token_text(e.token_id) for e in entries]
    offsets = []
    for t in tokens:
        offsets.append(offset)
        offset += len(t)
    tops = [_top_map(e, token_text) for e in entries] if top else None
    return CompletionLogprobs(
        tokens=tokens, token_logprobs=[e.logprob for e in entries], top_logprobs=tops, text_offset=offsets
    )


def _top_map(entry: TokenLogprob, token_text: TokenText) -> dict[str, float]:
    """Alternatives keyed by text; when two ids read alike the likelier one keeps the key."""
    out: dict[str, float] = {}
    for token_id, logprob in entry.top:  # most likely first
        out.setdefault(token_text(token_id), logprob)
    return out


def _top(token_text: TokenText, token_id: int, logprob: float) -> TopLogprob:
    text = token_text(token_id)
    return TopLogprob(token=text, logprob=logprob, bytes=list(text.encode("utf-8")))


def chat_logprobs(entries: Sequence[TokenLogprob], token_text: TokenText) -> ChatLogprobs:
    content = []
    for e in entries:
        first = _top(token_text, e.token_id, e.logprob)
        alternatives = [_top(token_text, i, lp) for i, lp in e.top]
        content.append(ChatTokenLogprob(**first.model_dump(), top_logprobs=alternatives))
    return ChatLogprobs(content=content)
