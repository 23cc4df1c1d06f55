import pytest

from codelm.errors import CodelmError
from codelm.models import FAMILY_NAMES, all_families, get_family


def test_all_families_load_with_required_facts():
    fams = all_families()
    assert [f.name for f in fams] == list(FAMILY_NAMES)
    for f in fams:
        assert f.tokenizer.eos in f.stop_tokens
        for tok in (f.tokenizer.bos, f.tokenizer.eos, f.tokenizer.pad):
            assert tok in f.tokenizer.special_tokens
        if f.fim:
            for s in f.fim.sentinels:
                assert s in f.tokenizer.special_tokens and s in f.stop_tokens
        if f.file_separator:
            assert f.file_separator in f.stop_tokens
        if f.chat:
            assert all(t in f.tokenizer.special_tokens for t in f.chat.stop_tokens)


@pytest.mark.parametrize(
    ("name", "arch", "order"),
    [
        ("codegen1", "CodeGenForCausalLM", None),
        ("codegemma", "GemmaForCausalLM", "psm"),
        ("stablecode", "StableLmForCausalLM", "psm"),
        ("seedcoder", "LlamaForCausalLM", "spm"),
        ("llama", "LlamaForCausalLM", "spm-joined"),
    ],
)
def test_family_architecture_and_fim_order(name, arch, order):
    f = get_family(name)
    assert f.architecture == arch
    assert (f.fim.order if f.fim else None) == order


def test_unknown_family_suggests():
    with pytest.raises(CodelmError, match="did you mean 'codegemma'"):
        get_family("codegema")


def test_unknown_size_suggests():
    with pytest.raises(CodelmError, match="did you mean '2b'"):
        get_family("codegemma").size("2B ")


def test_recommended_sampling_from_cards():
    assert get_family("seedcoder").sampling["chat"] == {
        "temperature": 0.6,
        "top_p": 0.8,
        "repetition_penalty": 1.05,
        "max_new_tokens": 512,
    }
    assert get_family("codegen1").sampling["completion"]["temperature"] == 0.2
    assert get_family("codegemma").sampling["completion"]["repetition_penalty"] == 1.0
