"""Real-size configs built on the meta device match the published parameter counts within 1%."""

import pytest

from codelm.models import all_families, get_family
from codelm.models.sizes import count_parameters, format_count, size_config

CASES = [(f.name, size) for f in all_families() for size in f.sizes]


@pytest.mark.parametrize(("family", "size"), CASES)
def test_parameter_count_within_one_percent(family, size):
    fam = get_family(family)
    n = count_parameters(size_config(fam, size))
    published = fam.sizes[size].published_params
    assert abs(n / published - 1) < 0.01, (family, size, n, published)


def test_exact_counts_we_know():
    assert count_parameters(size_config(get_family("stablecode"), "3b")) == 2_795_443_200
    assert count_parameters(size_config(get_family("seedcoder"), "8b")) == 8_250_462_208
    # tied embeddings counted once
    assert count_parameters(size_config(get_family("codegemma"), "2b")) == 2_506_172_416


def test_architecture_facts_of_configs():
    sc = size_config(get_family("stablecode"), "3b")
    assert sc.rope_parameters["partial_rotary_factor"] == 0.25 and sc.use_qkv_bias is False
    seed = size_config(get_family("seedcoder"), "8b")
    assert (seed.num_hidden_layers, seed.num_attention_heads, seed.num_key_value_heads) == (32, 32, 8)
    gem = size_config(get_family("codegemma"), "2b")
    assert gem.num_key_value_heads == 1 and gem.head_dim == 256


def test_format_count():
    assert format_count(8_250_462_208) == "8.25B"
    assert format_count(356_712_448) == "356.71M"
