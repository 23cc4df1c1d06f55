"""Vocabulary facts that real tokenizers make subtle: which tokens exist, and each token's raw bytes.

`token_id`: GPT-2 and GPT-NeoX tokenizers (CodeGen1, Stable Code) use `<|endoftext|>` as unk, bos
and eos at once, so "the id equals unk_token_id" cannot mean "missing": that test threw EOS out of
the stop ids. A token is present when its id spells it back.

`TokenBytes`: one token alone may hold part of a UTF-8 character (byte-level BPE splits CJK and
emoji across tokens; SentencePiece falls back to `<0xNN>` byte pieces), so decoding it alone gives
U+FFFD. Its raw bytes come from the vocabulary instead: the byte-level alphabet mapped back to
bytes (GPT-2's byte decoder), `<0xNN>` pieces as byte NN and `▁` as a space (SentencePiece), added
tokens as their UTF-8 text.
"""

from __future__ import annotations

import json
import re
from typing import Any

_BYTE_PIECE = re.compile(r"<0x([0-9A-Fa-f]{2})>")
_SPACE = "\u2581"  # SentencePiece's word-boundary marker


def token_id(tokenizer: Any, token: str) -> int | None:
    """The id of `token` if the vocabulary holds it, else None (never a stand-in unk id)."""
    i = tokenizer.convert_tokens_to_ids(token)
    if i is None or isinstance(i, list):
        return None
    return i if tokenizer.convert_ids_to_tokens(i) == token else None


def token_ids(tokenizer: Any, tokens: list[str] | tuple[str, ...]) -> set[int]:
    """Ids of those `tokens` the vocabulary holds; absent ones are skipped."""
    return {i for i in (token_id(tokenizer, t) for t in tokens) if i is not None}


def special_ids(tokenizer: Any) -> frozenset[int]:
    """Ids that `decode(skip_special_tokens=True)` drops: named specials and special added tokens.

    CodeGen1's whitespace-run tokens are added but not special, so they stay text."""
    ids = set(getattr(tokenizer, "all_special_ids", ()) or ())
    for i, tok in (getattr(tokenizer, "added_tokens_decoder", None) or {}).items():
        if getattr(tok, "special", False):
            ids.add(int(i))
    return frozenset(ids)


def _decoder_types(tokenizer: Any) -> set[str]:
    """Types of the backend decoder and its parts ('ByteLevel', 'ByteFallback', 'Replace', ...)."""
    decoder = getattr(getattr(tokenizer, "backend_tokenizer", None), "decoder", None)
    if decoder is None:
        return set()
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "type" in node:
                found.add(str(node["type"]))
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(json.loads(decoder.__getstate__()))
    return found


class TokenBytes:
    """`token_bytes(id) -> bytes`: the raw bytes a token stands for (see the module docstring)."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        types = _decoder_types(tokenizer)
        self.byte_level = "ByteLevel" in types
        self.byte_fallback = "ByteFallback" in types
        self.metaspace = bool(types & {"Metaspace", "Replace"}) or self.byte_fallback
        self.added = {
            int(i): t.content for i, t in (getattr(tokenizer, "added_tokens_decoder", None) or {}).items()
        }
        self._byte_decoder: dict[str, int] | None = None
        if self.byte_level:
            from transformers.convert_slow_tokenizer import bytes_to_unicode

            self._byte_decoder = {c: b for b, c in bytes_to_unicode().items()}
        self._cache: dict[int, bytes] = {}

    def __call__(self, token_id: int) -> bytes:
        out = self._cache.get(token_id)
        if out is None:
            out = self._cache[token_id] = self._bytes(token_id)
        return out

    def _bytes(self, token_id: int) -> bytes:
        if token_id in self.added:  # added tokens are stored as plain text, never byte-mapped
            return self.added[token_id].encode("utf-8")
        piece = self.tokenizer.convert_ids_to_tokens(token_id)
        if piece is None:
            return b""
        if self._byte_decoder is not None and all(c in self._byte_decoder for c in piece):
            return bytes(self._byte_decoder[c] for c in piece)
        if self.byte_fallback:
            m = _BYTE_PIECE.fullmatch(piece)
            if m:
                return bytes([int(m.group(1), 16)])
        if self.metaspace:
            return piece.replace(_SPACE, " ").encode("utf-8")
        return self.tokenizer.decode(
            [token_id], skip_special_tokens=False, clean_up_tokenization_spaces=False
        ).encode("utf-8")
