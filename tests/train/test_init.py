"""Model init: every family at real sizes (on the meta device), continuing with a grown tokenizer."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoTokenizer

from codelm.errors import CodelmError
from codelm.models import get_family
from codelm.models.sizes import count_parameters, size_config
from codelm.train.config import ModelConfig
from codelm.train.init import build_model, padded_vocab

REAL = [
    ("codegen1", "350M"),
    ("codegen1", "2B"),
    ("codegemma", "2b"),
    ("codegemma", "7b"),
    ("stablecode", "3b"),
    ("seedcoder", "8b"),
]


@pytest.mark.parametrize(("family", "size"), REAL)
def test_real_sizes_build_with_the_published_shape(tokenizer_of, family, size):
    fam = get_family(family)
    real = size_config(fam, size)
    cfg = ModelConfig(family=family, size=size, overrides={"vocab_size": real.vocab_size})
    tok = tokenizer_of(family)  # built outside the meta device
    with torch.device("meta"):
        model = build_model(cfg, tok, fam, seq_len=2048)
    assert type(model).__name__ == fam.architecture
    assert sum(p.numel() for p in model.parameters()) == count_parameters(real)


def test_new_tiny_model_takes_the_tokenizers_vocabulary(tokenizer_of):
    tok = tokenizer_of("stablecode")
    model = build_model(ModelConfig(family="stablecode"), tok, get_family("stablecode"), seq_len=64)
    assert model.get_input_embeddings().weight.shape[0] == padded_vocab(len(tok))
    assert model.config.eos_token_id == tok.convert_tokens_to_ids("<|endoftext|>")
    assert tok.eos_token_id in model.generation_config.eos_token_id


def test_continue_with_a_grown_tokenizer_resizes_at_the_mean(tiny_checkpoint, tmp_path):
    base = tiny_checkpoint("llama")
    tok = AutoTokenizer.from_pretrained(base)
    added = [f"<extra_{i}>" for i in range(100)]
    tok.add_special_tokens({"additional_special_tokens": added})
    tok.save_pretrained(tmp_path)
    grown = AutoTokenizer.from_pretrained(tmp_path)
    cfg = ModelConfig(init_from=str(base), tokenizer=str(tmp_path))
    torch.manual_seed(0)
    model = build_model(cfg, grown, get_family("llama"), seq_len=64)
    emb = model.get_input_embeddings().weight
    old_rows = 2048
    assert emb.shape[0] == padded_vocab(len(grown)) > old_rows
    torch.testing.assert_close(
        emb[old_rows:], emb[:old_rows].mean(0).expand(emb.shape[0] - old_rows, -1), atol=1e-3, rtol=0
    )


def test_rope_and_context_rules(tiny_checkpoint, tokenizer_of):
    fam = get_family("codegen1")
    with pytest.raises(CodelmError, match="no configurable rope_theta"):
        build_model(
            ModelConfig(init_from=str(tiny_checkpoint("codegen1")), rope_theta=1e6),
            tokenizer_of("codegen1"),
            fam,
            seq_len=64,
        )
    with pytest.raises(CodelmError, match="exceeds the model's context of 1024"):
        build_model(ModelConfig(family="llama"), tokenizer_of("llama"), get_family("llama"), seq_len=4096)
    with pytest.raises(CodelmError, match="has no field"):
        build_model(
            ModelConfig(family="llama", overrides={"n_layerz": 1}),
            tokenizer_of("llama"),
            get_family("llama"),
            seq_len=64,
        )


def test_codegen1_tokenizer_whose_unk_is_eos_keeps_eos(tokenizer_of):
    """<|endoftext|> is CodeGen1's unk, bos and eos: "id == unk" once meant "missing" and dropped it."""
    tok = tokenizer_of("codegen1")
    assert tok.unk_token_id == tok.eos_token_id
    model = build_model(ModelConfig(family="codegen1"), tok, get_family("codegen1"), seq_len=64)
    assert model.config.eos_token_id == tok.eos_token_id
    assert model.generation_config.eos_token_id == [tok.eos_token_id]
