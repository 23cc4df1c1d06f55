import math

import pytest

from codelm.engine.params import Request, SamplingParams
from codelm.errors import RequestError


@pytest.mark.parametrize(
    "kwargs",
    [
        {"temperature": -0.1},
        {"temperature": math.nan},
        {"top_p": 0},
        {"top_p": 1.5},
        {"top_k": -1},
        {"max_new_tokens": 0},
        {"n": 0},
        {"repetition_penalty": 0},
        {"stop": "x"},
        {"stop": [""]},
        {"seed": 1.5},
        {"max_new_tokens": 2.5},
    ],
)
def test_invalid_values_are_rejected(kwargs):
    with pytest.raises(RequestError, match="invalid sampling parameter"):
        SamplingParams(**kwargs)


def test_build_merges_defaults_and_ignores_none():
    p = SamplingParams.build(
        {"temperature": 0.6, "top_p": 0.8, "max_new_tokens": 512}, top_p=None, n=3, stop=["\n"]
    )
    assert (p.temperature, p.top_p, p.max_new_tokens, p.n, p.stop) == (0.6, 0.8, 512, 3, ("\n",))


def test_build_rejects_unknown_keys():
    with pytest.raises(RequestError, match="unknown sampling parameter"):
        SamplingParams.build({}, temprature=1.0)


def test_request_kind_validated():
    with pytest.raises(RequestError):
        Request("x", kind="embed")
