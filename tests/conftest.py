"""Shared fixtures: tiny checkpoints of every family, built once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

FAMILIES = ["codegen1", "codegemma", "stablecode", "seedcoder", "llama"]
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("tiny")


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_root):
    """tiny_checkpoint(family) -> directory of a tiny checkpoint (built on first use)."""
    from codelm.models.tiny import make_tiny

    built: dict[str, Path] = {}

    def get(family: str) -> Path:
        if family not in built:
            built[family] = make_tiny(family, tiny_root / family, corpus_bytes=1_000_000)
        return built[family]

    return get


@pytest.fixture(scope="session")
def tiny_engine(tiny_checkpoint):
    """tiny_engine(family) -> a loaded Engine on that family's tiny checkpoint (cached)."""
    from codelm.engine import Engine

    engines: dict = {}

    def get(family: str):
        if family not in engines:
            engines[family] = Engine.from_pretrained(str(tiny_checkpoint(family)))
        return engines[family]

    return get


@pytest.fixture(scope="session")
def byte_fallback_tokenizer():
    """A Gemma-style SentencePiece tokenizer: Unigram pieces with '▁' for space and <0xNN> byte fallback.

    Real Gemma tokenizers are gated downloads; this one has the same decoder and the property that matters:
    characters outside its pieces are spelled as one <0xNN> token per UTF-8 byte."""
    from tokenizers import Tokenizer, decoders, models, normalizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<eos>", "<bos>", "<unk>"]
    pieces = ["▁h", "é", "llo", "▁", "h", "l", "o"]
    vocab = [(t, 0.0) for t in specials] + [(f"<0x{b:02X}>", 0.0) for b in range(256)]
    vocab += [(p, -1.0 - i) for i, p in enumerate(pieces)]
    tok = Tokenizer(models.Unigram(vocab, unk_id=3, byte_fallback=True))
    tok.normalizer = normalizers.Replace(" ", "▁")
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", bos_token="<bos>", unk_token="<unk>"
    )


class Recording:
    """The real tiny engine, noting every conversation it is asked to answer (`codelm chat` tests)."""

    def __init__(self, engine) -> None:
        self.engine, self.sent = engine, []

    def chat_request(self, messages, **sampling):
        self.sent.append([dict(m) for m in messages])
        return self.engine.chat_request(messages, **sampling)

    def stream(self, request):
        return self.engine.stream(request)


@pytest.fixture
def recording():
    """recording(engine) -> the engine, noting every conversation sent to it in `.sent`."""
    return Recording
