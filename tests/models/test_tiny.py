"""Tiny checkpoints load with plain transformers, offline, and carry their family's tokens."""

import json

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from codelm.models import FAMILY_NAMES as FAMILIES
from codelm.models import get_family
from codelm.models.tokenizer import whitespace_run_tokens


@pytest.mark.parametrize("family", FAMILIES)
def test_tiny_checkpoint_loads_with_auto_classes(tiny_checkpoint, family):
    path = tiny_checkpoint(family)
    fam = get_family(family)
    model = AutoModelForCausalLM.from_pretrained(path)
    tok = AutoTokenizer.from_pretrained(path)
    assert type(model).__name__ == fam.architecture
    assert (path / "model.safetensors").is_file()
    assert tok.convert_tokens_to_ids(fam.tokenizer.eos) == tok.eos_token_id
    for t in fam.tokenizer.special_tokens:  # atomic, never split
        assert tok(t, add_special_tokens=False)["input_ids"] == [tok.convert_tokens_to_ids(t)]
    assert model.get_input_embeddings().weight.shape[0] >= len(tok)
    text = "def add(a, b):\n    return a + b  # ünïcode\n"
    assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == text
    if fam.chat:
        assert tok.chat_template == fam.chat.template
    gen = json.loads((path / "generation_config.json").read_text())
    assert tok.eos_token_id in gen["eos_token_id"]


def test_real_ids_where_known(tiny_checkpoint):
    gem = AutoTokenizer.from_pretrained(tiny_checkpoint("codegemma"))
    assert (gem.pad_token_id, gem.eos_token_id, gem.bos_token_id) == (0, 1, 2)
    assert gem("x")["input_ids"][0] == 2  # the Gemma tokenizer prepends <bos>
    seed = AutoTokenizer.from_pretrained(tiny_checkpoint("seedcoder"))
    assert (seed.bos_token_id, seed.eos_token_id) == (0, 2)
    sc = AutoTokenizer.from_pretrained(tiny_checkpoint("stablecode"))
    assert sc.convert_tokens_to_ids("<|endoftext|>") == 0


def test_codegen1_whitespace_run_tokens(tiny_checkpoint):
    runs = whitespace_run_tokens(get_family("codegen1"))
    assert len(runs) == 38 and runs[0] == " " * 31 and runs[29] == "  " and runs[30] == "\t" * 9
    tok = AutoTokenizer.from_pretrained(tiny_checkpoint("codegen1"))
    assert type(tok).__name__ == "CodeGenTokenizer"
    ids = tok(" " * 8, add_special_tokens=False)["input_ids"]
    assert ids == [tok.convert_tokens_to_ids(" " * 8)]
