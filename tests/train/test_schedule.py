"""Warmup then cosine or linear decay to the floor; the LambdaLR follows the same curve."""

from __future__ import annotations

import pytest
import torch

from codelm.train.schedule import lr_multiplier, make_scheduler


def curve(decay, **kw):
    args = {"warmup_steps": 4, "max_steps": 20, "decay": decay, "min_lr_ratio": 0.1} | kw
    return [lr_multiplier(s, **args) for s in range(args["max_steps"] + 2)]


def test_warmup_then_cosine_to_the_floor():
    c = curve("cosine")
    assert c[:4] == [0.25, 0.5, 0.75, 1.0]
    assert c[4] == 1.0 and c[12] == pytest.approx(0.55)  # halfway down the cosine
    assert c[20] == pytest.approx(0.1) and c[21] == pytest.approx(0.1)  # floor, and it stays there
    assert all(a >= b for a, b in zip(c[4:], c[5:], strict=False))


def test_linear_and_constant():
    c = curve("linear", min_lr_ratio=0.0)
    assert c[12] == pytest.approx(0.5) and c[20] == 0.0
    assert set(curve("constant", warmup_steps=0)) == {1.0}


def test_scheduler_applies_the_multiplier():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=2.0)
    sched = make_scheduler(opt, warmup_steps=2, max_steps=10, decay="cosine", min_lr_ratio=0.1)
    lrs = []
    for _ in range(11):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == pytest.approx([2 * m for m in curve("cosine", warmup_steps=2, max_steps=10)[:11]])
