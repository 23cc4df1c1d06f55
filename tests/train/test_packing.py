"""Packed documents cannot see each other: a packed document's logits equal its logits alone.

Checked for the four architectures codelm trains (Llama, Gemma, StableLM, CodeGen), with both ways of
keeping documents apart (restarting position ids; an explicit block-diagonal mask), under SDPA and
eager attention.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM

from codelm.models import get_family
from codelm.models.tiny import tiny_config
from codelm.train.objectives import CausalLM, forward_logits
from codelm.train.packing import IGNORE, block_causal_mask, collate, make_row, position_ids

ARCHS = ["llama", "codegemma", "stablecode", "codegen1"]
LENGTHS = [7, 1, 12, 5]


def tiny_model(family: str, attn: str | None = None):
    torch.manual_seed(0)
    config = tiny_config(get_family(family), 256, {"bos": 0, "eos": 1, "pad": 2})
    kwargs = {"attn_implementation": attn} if attn else {}
    return AutoModelForCausalLM.from_config(config, **kwargs).eval()


def docs() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(3, 256, size=n) for n in LENGTHS]


@pytest.mark.parametrize("attn", [None, "eager"])
@pytest.mark.parametrize("mode", ["positions", "block_mask"])
@pytest.mark.parametrize("family", ARCHS)
def test_packed_document_logits_equal_alone(family, mode, attn):
    if family == "codegen1" and attn is None:
        attn = "eager"  # CodeGen only has eager attention
    model = tiny_model(family, attn)
    ds = docs()
    packed = collate([make_row([(d, None) for d in ds])], pad_id=2)
    with torch.no_grad():
        together = forward_logits(model, packed, mode)[0]
        start = 0
        for d in ds:
            alone = forward_logits(model, collate([make_row([(d, None)])], 2), mode)[0]
            torch.testing.assert_close(together[start : start + len(d)], alone, atol=1e-5, rtol=1e-4)
            start += len(d)


@pytest.mark.parametrize("family", ["llama", "codegen1"])
def test_packed_loss_is_the_sum_of_document_losses(family):
    model = tiny_model(family, "eager" if family == "codegen1" else None)
    ds = docs()
    objective = CausalLM()
    packed = collate([make_row([(d, None) for d in ds])], pad_id=2)
    with torch.no_grad():
        total, _ = objective(model, packed)
        alone = [objective(model, collate([make_row([(d, None)])], 2))[0] for d in ds]
    assert packed.targets == sum(len(d) - 1 for d in ds)  # no target across a boundary
    torch.testing.assert_close(total, sum(alone), atol=1e-4, rtol=1e-5)


def test_padding_carries_no_loss_and_is_its_own_segment():
    a, b = make_row([(np.arange(3, 8), None)]), make_row([(np.arange(3, 6), None)])
    batch = collate([a, b], pad_id=2)
    assert batch.input_ids[1].tolist() == [3, 4, 5, 2, 2]
    assert batch.labels[1].tolist() == [IGNORE, 4, 5, IGNORE, IGNORE]
    assert batch.segments[1].tolist() == [0, 0, 0, 1, 1]
    assert batch.position_ids[1].tolist() == [0, 1, 2, 0, 1]
    assert batch.tokens == 8


def test_positions_restart_and_mask_is_block_diagonal():
    seg = np.array([[0, 0, 1, 1, 1, 2]])
    assert position_ids(seg).tolist() == [[0, 1, 0, 1, 2, 0]]
    mask = block_causal_mask(torch.from_numpy(seg))[0, 0]
    assert mask[3].tolist() == [False, False, True, True, False, False]
    additive = block_causal_mask(torch.from_numpy(seg), torch.float32)[0, 0]
    assert additive[3, 2] == 0 and additive[3, 1] == torch.finfo(torch.float32).min
