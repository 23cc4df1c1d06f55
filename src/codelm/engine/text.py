"""Turning streamed token ids into safe text: incremental decoding and stop-string hold-back."""

from __future__ import annotations

import threading
from array import array
from collections.abc import Iterable, Sequence
from weakref import WeakValueDictionary

from codelm.models.codegen_truncate import codegen_truncate


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


class StopSet:
    """Stop strings prepared once and shared, read-only, by every sample that uses them.

    Memory is linear in the strings' total length (the strings, plus a 4-byte KMP failure entry
    per character, built only for a string that has partly matched) and independent of how many
    samples share it: keeping every prefix of every string per sample instead is quadratic (a
    30 KB stop string cost 440 MB).
    """

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops: tuple[str, ...] = tuple(s for s in dict.fromkeys(stops) if s)
        self._fail: list[array | None] = [None] * len(self.stops)
        first: dict[str, list[int]] = {}
        for i, s in enumerate(self.stops):
            first.setdefault(s[0], []).append(i)
        self._by_first = {c: tuple(ids) for c, ids in first.items()}

    def candidates(self, delta: str, partial: Iterable[int]) -> set[int]:
        """Stops that `delta` can touch: those partly matched already, and those starting with
        one of its characters (any other stop can neither end nor begin inside `delta`)."""
        found = set(partial)
        for c in set(delta):
            found.update(self._by_first.get(c, ()))
        return found

    @classmethod
    def of(cls, stops: Sequence[str]) -> StopSet:
        """The shared StopSet of `stops` (one per distinct list while any sample uses it)."""
        key = tuple(stops)
        with _LOCK:
            found = _SHARED.get(key)
            if found is None:
                found = _SHARED[key] = cls(key)
            return found

    def _failure(self, i: int) -> array:
        """KMP failure table of stop i: fail[k] = longest proper border of stops[i][:k + 1]."""
        table = self._fail[i]
        if table is None:
            s = self.stops[i]
            table = array("i", bytes(4 * len(s)))
            b = 0
            for k in range(1, len(s)):
                while b and s[k] != s[b]:
                    b = table[b - 1]
                if s[k] == s[b]:
                    b += 1
                table[k] = b
            self._fail[i] = table  # a race only computes the same table twice
        return table

    def advance(self, i: int, overlap: int, delta: str) -> int:
        """The longest suffix of `text + delta` that is a proper prefix of stop i, given that
        `overlap` is that length for `text` and that `text + delta` holds no whole stop i.

        Candidates that begin before `delta` are the borders of the current overlap (KMP's
        failure chain, amortized O(1) per character); the rest begin inside `delta`.
        """
        s, d = self.stops[i], len(delta)
        b = overlap
        while b:
            if b + d < len(s) and s.startswith(delta, b):
                return b + d
            b = self._failure(i)[b - 1]
        j = delta.find(s[0], max(0, d - len(s) + 1))
        while j != -1:
            if s.startswith(delta[j:]):
                return d - j
            j = delta.find(s[0], j + 1)
        return 0


_SHARED: WeakValueDictionary[tuple[str, ...], StopSet] = WeakValueDictionary()
_LOCK = threading.Lock()


class StopMatcher:
    """Emit text as it arrives, holding back any tail that could be the start of a stop string.

    Per sample it keeps the held-back tail (shorter than the longest stop) and, per stop string,
    the length of its partial match; everything else is the shared `StopSet`.
    """

    def __init__(self, stops: Sequence[str]) -> None:
        self._set = StopSet.of(stops)
        self.stops = list(self._set.stops)
        self.pending = ""
        self._partial: dict[int, int] = {}  # stop index -> how much of it `pending` ends with

    def feed(self, delta: str) -> tuple[str, bool]:
        """(text safe to emit, whether a stop string was reached)."""
        held, text = len(self.pending), self.pending + delta
        candidates = self._set.candidates(delta, self._partial)
        best = len(text)  # the earliest start of a stop; one can only end inside `delta`
        for i in candidates:
            s = self.stops[i]
            j = text.find(s, held - self._partial.get(i, 0), best + len(s) - 1)
            if j != -1:
                best = j
        if best < len(text):
            self.pending, self._partial = "", {}
            return text[:best], True
        partial = {}
        for i in candidates:
            k = self._set.advance(i, self._partial.get(i, 0), delta)
            if k:
                partial[i] = k
        self._partial = partial
        keep = len(text) - max(partial.values(), default=0)
        self.pending = text[keep:]
        return text[:keep], False

    def flush(self) -> str:
        out, self.pending, self._partial = self.pending, "", {}
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
