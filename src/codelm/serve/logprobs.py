"""Token log-probabilities in OpenAI's two shapes: legacy completions and chat.

Completions: parallel lists `tokens`, `token_logprobs`, `top_logprobs` (a token -> logprob map
per position) and `text_offset` (where each token starts in the choice's text). Chat: a `content`
list of `{token, logprob, bytes, top_logprobs: [{token, logprob, bytes}]}`. Values come from the
engine's `TokenLogprob`s, taken from the raw logits before sampling transforms, as vLLM does.

Tokens are spelled from their raw bytes (`Engine.token_bytes`), never by decoding one token alone:
a token holding part of a UTF-8 character (byte-level BPE splits CJK and emoji; SentencePiece has
`<0xNN>` byte pieces) would read as U+FFFD. `bytes` carries the token's own bytes, so clients can
reassemble such characters (the reason OpenAI defines the field); its `token` reads as OpenAI
spells partial tokens, `bytes:\\xe4\\xb8`. `text_offset` counts characters of the text: a
character counts once its last byte has arrived, so every offset lies within the text. Special
tokens skipped from the text (`skip_special_tokens`) are listed but do not move the offset.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable, Sequence

from codelm.engine import TokenLogprob
from codelm.serve.protocol import ChatLogprobs, ChatTokenLogprob, CompletionLogprobs, TopLogprob

TokenBytes = Callable[[int], bytes]


def spell(data: bytes) -> str:
    """A token's text, or OpenAI's `bytes:\\xNN...` form when it is not whole UTF-8 characters."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return "bytes:" + "".join(f"\\x{b:02x}" for b in data)


class TextOffsets:
    """Character offset of each token in the text; one per choice, kept across streamed chunks."""

    def __init__(self, start: int = 0) -> None:
        self.chars = start
        # "replace" counts an invalid byte as one U+FFFD, as the engine's decoded text shows it
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def advance(self, data: bytes, in_text: bool = True) -> int:
        """Where a token with bytes `data` starts; characters it completes move the offset on."""
        start = self.chars
        if in_text:
            self.chars += len(self._utf8.decode(data))
        return start


def completion_logprobs(
    entries: Sequence[TokenLogprob],
    token_bytes: TokenBytes,
    offsets: TextOffsets | None = None,
    top: bool = True,
) -> CompletionLogprobs:
    """The completions shape; pass the choice's `offsets` to continue a stream where it stopped."""
    offsets = offsets if offsets is not None else TextOffsets()
    raw = [token_bytes(e.token_id) for e in entries]
    starts = [offsets.advance(b, e.in_text) for b, e in zip(raw, entries, strict=True)]
    tops = [_top_map(e, token_bytes) for e in entries] if top else None
    return CompletionLogprobs(
        tokens=[spell(b) for b in raw],
        token_logprobs=[e.logprob for e in entries],
        top_logprobs=tops,
        text_offset=starts,
    )


def _top_map(entry: TokenLogprob, token_bytes: TokenBytes) -> dict[str, float]:
    """Alternatives keyed by text; when two ids read alike the likelier one keeps the key."""
    out: dict[str, float] = {}
    for token_id, logprob in entry.top:  # most likely first
        out.setdefault(spell(token_bytes(token_id)), logprob)
    return out


def _top(token_bytes: TokenBytes, token_id: int, logprob: float) -> TopLogprob:
    data = token_bytes(token_id)
    return TopLogprob(token=spell(data), logprob=logprob, bytes=list(data))


def chat_logprobs(entries: Sequence[TokenLogprob], token_bytes: TokenBytes) -> ChatLogprobs:
    content = []
    for e in entries:
        first = _top(token_bytes, e.token_id, e.logprob)
        alternatives = [_top(token_bytes, i, lp) for i, lp in e.top]
        content.append(ChatTokenLogprob(**first.model_dump(), top_logprobs=alternatives))
    return ChatLogprobs(content=content)
