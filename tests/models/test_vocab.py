"""Vocabulary lookups against the properties of real tokenizers: unk == eos, byte pieces, added tokens."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from codelm.models.vocab import TokenBytes, special_ids, token_id, token_ids

# CJK (3 bytes each), an emoji and a supplementary-plane ideograph (4 bytes), an accented letter
TEXT = "中文 🙂 \U0002070e héllo"


@pytest.fixture(scope="module")
def tokenizers(tiny_checkpoint, byte_fallback_tokenizer):
    return {
        "byte-level BPE": AutoTokenizer.from_pretrained(tiny_checkpoint("llama")),
        "SentencePiece byte fallback": byte_fallback_tokenizer,
    }


@pytest.mark.parametrize("kind", ["byte-level BPE", "SentencePiece byte fallback"])
def test_token_bytes_reassemble_characters_split_across_tokens(tokenizers, kind):
    tok = tokenizers[kind]
    ids = tok(TEXT, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == TEXT
    token_bytes = TokenBytes(tok)
    raw = [token_bytes(i) for i in ids]
    assert b"".join(raw) == TEXT.encode("utf-8")
    partial = [b for b in raw if not _valid_utf8(b)]
    assert len(partial) >= 4  # the property under test is really there: tokens holding part of a character
    assert all(b"\xef\xbf\xbd" not in b for b in raw)  # never U+FFFD in place of the real bytes
    if kind == "SentencePiece byte fallback":
        assert "<0xE4>" in tok.convert_ids_to_tokens(ids)


def _valid_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def test_added_tokens_are_their_text_not_byte_mapped(tiny_checkpoint):
    tok = AutoTokenizer.from_pretrained(tiny_checkpoint("codegen1"))
    token_bytes = TokenBytes(tok)
    eight = tok.convert_tokens_to_ids(" " * 8)  # one of CodeGen1's whitespace-run tokens
    assert token_bytes(eight) == b" " * 8
    assert token_bytes(tok.eos_token_id) == b"<|endoftext|>"


def test_unk_that_is_also_eos_is_a_present_token(tiny_checkpoint):
    """GPT-2 / NeoX: <|endoftext|> is unk, bos and eos; "id == unk" cannot mean "missing"."""
    tok = AutoTokenizer.from_pretrained(tiny_checkpoint("codegen1"))
    assert tok.unk_token_id == tok.eos_token_id  # the real CodeGen1 property, kept by the tiny one
    assert token_id(tok, "<|endoftext|>") == tok.eos_token_id
    # a missing token maps to unk in convert_tokens_to_ids; it must read as absent, not as EOS
    assert tok.convert_tokens_to_ids("<fim_prefix>") == tok.eos_token_id
    assert token_id(tok, "<fim_prefix>") is None
    assert token_ids(tok, ["<|endoftext|>", "<fim_prefix>"]) == {tok.eos_token_id}
    no_unk = AutoTokenizer.from_pretrained(tiny_checkpoint("llama"))
    assert no_unk.unk_token_id is None and token_id(no_unk, "<[fim-suffix]>") is None


def test_special_ids_leave_whitespace_runs_as_text(tiny_checkpoint):
    tok = AutoTokenizer.from_pretrained(tiny_checkpoint("codegen1"))
    specials = special_ids(tok)
    assert tok.eos_token_id in specials
    assert tok.convert_tokens_to_ids(" " * 8) not in specials
    gemma = AutoTokenizer.from_pretrained(tiny_checkpoint("codegemma"))
    assert {gemma.convert_tokens_to_ids(t) for t in ("<bos>", "<start_of_turn>")} <= special_ids(gemma)
