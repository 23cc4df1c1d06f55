"""Turning streamed token ids into safe text: incremental decoding and stop-string hold-back."""

from __future__ import annotations

from collections.abc import Sequence

from codelm.models.codegen_truncate import codegen_truncate
from codelm.models.formats import cut_at_first


class IncrementalDecoder:
    """Decode one token at a time without O(n^2) re-decoding or split UTF-8 characters.

    The window starts with a few prompt tokens so tokenizers that drop a leading space when
    decoding from a word start (SentencePiece) still produce it (the vLLM approach).
    """

    def __init__(self, tokenizer, context_ids: Sequence[int] = ()) -> None:
        # the raw `tokenizers` backend decodes without the Python wrapper's per-call overhead
        backend = getattr(tokenizer, "_tokenizer", None)
        self._decode_fn = (
            (lambda ids: backend.decode(ids, skip_special_tokens=False))
            if backend is not None and getattr(tokenizer, "clean_up_tokenization_spaces", False) is False
            else (
                lambda ids: tokenizer.decode(
                    ids, skip_special_tokens=False, clean_up_tokenization_spaces=False
                )
            )
        )
        self.ids: list[int] = list(context_ids[-4:])
        self.prefix = 0
        self.read = len(self.ids)

    def push(self, token: int) -> str:
        self.ids.append(token)
        before = self._decode_fn(self.ids[self.prefix : self.read])
        after = self._decode_fn(self.ids[self.prefix :])
        if after.endswith("\ufffd"):  # an incomplete multi-byte character: wait for more bytes
            return ""
        self.prefix, self.read = self.read, len(self.ids)
        return after[len(before) :]


class StopMatcher:
    """Emit text as it arrives, holding back any tail that could be the start of a stop string."""

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = [s for s in dict.fromkeys(stops) if s]
        self.pending = ""
        # for each last character, the stop prefixes ending in it, longest first
        self._prefixes: dict[str, list[str]] = {}
        for s in self.stops:
            for k in range(1, len(s)):
                self._prefixes.setdefault(s[k - 1], []).append(s[:k])
        for v in self._prefixes.values():
            v.sort(key=len, reverse=True)

    def feed(self, delta: str) -> tuple[str, bool]:
        """(text safe to emit, whether a stop string was reached)."""
        self.pending += delta
        cut, hit = cut_at_first(self.pending, self.stops)
        if hit:
            self.pending = ""
            return cut, True
        hold = 0
        text = self.pending
        for prefix in self._prefixes.get(text[-1:], ()):
            if text.endswith(prefix):
                hold = len(prefix)
                break
        emit = text[: len(text) - hold]
        self.pending = text[len(text) - hold :]
        return emit, False

    def flush(self) -> str:
        out, self.pending = self.pending, ""
        return out


class CodegenTruncatingMatcher(StopMatcher):
    """StopMatcher plus CodeGen1's `truncate_before_pattern`, applied while streaming.

    Every CodeGen terminal (and its print/def heuristics) cuts at a line start or at the newline
    run before one, so text before the newline run that precedes the unfinished last line is final
    and can be emitted; the rest waits. When a terminal appears the sample stops there, which also
    saves the tokens the post-hoc cut would have thrown away.
    """

    def __init__(self, stops: Sequence[str], patterns: Sequence[str]) -> None:
        super().__init__(stops)
        self.patterns = list(patterns)
        self.text = ""  # everything past the stop-string hold-back
        self.emitted = 0

    @staticmethod
    def _final_len(text: str) -> int:
        j = text.rfind("\n")
        if j < 0:
            return 0
        while j > 0 and text[j - 1] == "\n":
            j -= 1
        return j

    def _release(self, upto: int) -> str:
        out = self.text[self.emitted : max(upto, self.emitted)]
        self.emitted = max(upto, self.emitted)
        return out

    def feed(self, delta: str) -> tuple[str, bool]:
        piece, hit = super().feed(delta)
        self.text += piece
        cut = len(codegen_truncate(self.text, self.patterns))
        if cut < len(self.text):
            return self._release(cut), True
        if hit:
            return self._release(len(self.text)), True
        return self._release(self._final_len(self.text)), False

    def flush(self) -> str:
        self.text += super().flush()
        return self._release(len(codegen_truncate(self.text, self.patterns)))
