"""The optimizer: AdamW, or Muon for the hidden matrices with AdamW for the rest (train/optim.py)."""

from __future__ import annotations

import pytest
import torch

from codelm.config import ConfigError

BASE = ("model.family=llama", "pretrain.shards=[unused]")  # configs only: nothing is read


def _model(tiny_checkpoint):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_checkpoint("llama"))


def test_orthogonalize_approximates_the_polar_factor():
    """Newton-Schulz lands the singular values near 1 (Muon's quintic: about [0.7, 1.2]) and keeps the
    singular vectors, for wide and tall matrices."""
    from codelm.train.optim import orthogonalize

    g = torch.Generator().manual_seed(0)
    for shape in [(64, 176), (176, 64), (32, 32)]:
        m = torch.randn(*shape, generator=g)
        u, _, vh = torch.linalg.svd(m, full_matrices=False)
        o = orthogonalize(m)
        assert o.shape == m.shape and o.dtype == torch.float32
        s = torch.linalg.svdvals(o)
        assert 0.6 < s.min() and s.max() < 1.3, s
        cos = (o * (u @ vh)).sum() / (o.norm() * (u @ vh).norm())
        assert cos > 0.97


def test_orthogonalize_all_batches_by_shape_and_computes_each_matrix_alone():
    """Matrices of one shape (wide, or tall transposed) go through one batched iteration; each result
    is the single-matrix one (float rounding apart), in the dtype asked for."""
    from codelm.train.optim import orthogonalize, orthogonalize_all

    g = torch.Generator().manual_seed(0)
    grads = [torch.randn(*s, generator=g) for s in [(32, 96), (96, 32), (32, 96), (16, 16), (8, 96)]]
    for got, m in zip(orthogonalize_all(grads), grads, strict=True):
        assert got.shape == m.shape and got.dtype == torch.float32
        torch.testing.assert_close(got, orthogonalize(m), rtol=1e-4, atol=1e-5)
    for got, m in zip(orthogonalize_all(grads, torch.bfloat16), grads, strict=True):
        ref = orthogonalize(m)
        assert got.dtype == torch.bfloat16 and got.shape == m.shape
        assert (got.float() * ref).sum() / (got.float().norm() * ref.norm()) > 0.99


def test_muon_routes_the_hidden_matrices_and_adamw_the_rest(tiny_checkpoint, make_config):
    from codelm.train.optim import MuonAdamW, make_optimizer

    model = _model(tiny_checkpoint)
    opt = make_optimizer(model, make_config("pretrain", *BASE, "optim.name=muon"))
    assert isinstance(opt, MuonAdamW)
    names = {id(p): n for n, p in model.named_parameters()}
    muon = {names[id(p)] for g in opt.param_groups if g["muon"] for p in g["params"]}
    rest = {names[id(p)] for g in opt.param_groups if not g["muon"] for p in g["params"]}
    assert muon and all(".layers." in n and n.endswith("proj.weight") for n in muon)
    assert any("embed_tokens" in n for n in rest) and all(model.get_parameter(n).ndim == 2 for n in muon)
    assert muon | rest == set(names.values()) and not muon & rest
    plain = make_optimizer(model, make_config("pretrain", *BASE))
    assert type(plain) is torch.optim.AdamW


def test_muon_step_is_torchs_muon_and_adamw_steps_are_adamws(tiny_checkpoint, make_config, monkeypatch):
    """Two steps on the same gradients: the hidden matrices move as torch.optim.Muon moves them
    (Nesterov momentum, Moonshot's lr scaling, decoupled decay), the rest as torch.optim.AdamW does.
    torch orthogonalises in bf16 (a cosine of ~0.986 to the fp32 result on this model), ours in fp32 on
    a CPU: torch's cast is made a no-op so that the two compute the same thing."""
    from codelm.train.optim import make_optimizer

    monkeypatch.setattr(torch.Tensor, "bfloat16", lambda self: self.float())

    cfg = make_config("pretrain", *BASE, "optim.name=muon", "optim.lr=0.01", "optim.weight_decay=0.1")
    ours, theirs = _model(tiny_checkpoint), _model(tiny_checkpoint)
    ids = torch.randint(0, 100, (2, 16), generator=torch.Generator().manual_seed(0))
    for m in (ours, theirs):
        m(input_ids=ids, labels=ids).loss.backward()
    opt = make_optimizer(ours, cfg)
    index = {id(p): i for i, p in enumerate(ours.parameters())}
    theirs_params = list(theirs.parameters())
    ref = []
    for g in opt.param_groups:
        params = [theirs_params[index[id(p)]] for p in g["params"]]
        if g["muon"]:
            ref.append(torch.optim.Muon(params, lr=0.01, weight_decay=0.1, adjust_lr_fn="match_rms_adamw"))
        else:
            ref.append(torch.optim.AdamW(params, lr=0.01, betas=(0.9, 0.95), weight_decay=g["weight_decay"]))
    before = [p.detach().clone() for p in ours.parameters()]
    for _ in range(2):  # the second step uses the momentum the first left
        opt.step()
        for r in ref:
            r.step()
    for g in opt.param_groups:
        for p in g["params"]:
            q, b = theirs_params[index[id(p)]], before[index[id(p)]]
            if g["muon"]:
                moved, want = p.detach() - b, q.detach() - b
                torch.testing.assert_close(moved, want, rtol=1e-4, atol=1e-4 * want.abs().max().item())
                assert opt.state[p].keys() == {"momentum_buffer"}
            else:
                torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-7)


def test_muon_in_bf16_where_the_stage_trains_in_bf16(tiny_checkpoint, make_config):
    """A bf16 stage orthogonalises in bf16, as torch.optim.Muon does everywhere: one step moves the
    hidden matrices as torch's (cosine 0.9999995; fp32 iterations give 0.986); an fp32 stage keeps fp32."""
    from codelm.train.optim import make_optimizer

    args = (*BASE, "optim.name=muon", "optim.lr=0.01", "optim.weight_decay=0.0")
    assert make_optimizer(_model(tiny_checkpoint), make_config("pretrain", *args)).ns_dtype is None
    ours, theirs = _model(tiny_checkpoint), _model(tiny_checkpoint)
    ids = torch.randint(0, 100, (2, 16), generator=torch.Generator().manual_seed(0))
    for m in (ours, theirs):
        m(input_ids=ids, labels=ids).loss.backward()
    opt = make_optimizer(ours, make_config("pretrain", *args, "run.precision=bf16"))
    assert opt.ns_dtype == torch.bfloat16
    muon = [p for g in opt.param_groups if g["muon"] for p in g["params"]]
    index = {id(p): i for i, p in enumerate(ours.parameters())}
    mirror = [list(theirs.parameters())[index[id(p)]] for p in muon]
    before = [p.detach().clone() for p in muon]
    opt.step()
    torch.optim.Muon(mirror, lr=0.01, weight_decay=0.0, adjust_lr_fn="match_rms_adamw").step()
    for p, q, b in zip(muon, mirror, before, strict=True):
        moved, want = (p - b).flatten(), (q - b).flatten()
        assert torch.dot(moved, want) / (moved.norm() * want.norm()) > 0.9999  # fp32 NS: 0.986


def test_optimizer_name_is_checked(make_config):
    with pytest.raises(ConfigError, match="optim.name"):
        make_config("pretrain", *BASE, "optim.name=sgd")
    with pytest.raises(ConfigError, match="muon_momentum"):
        make_config("pretrain", *BASE, "optim.muon_momentum=1.0")


def test_muon_is_refused_where_the_optimizer_sees_shards():
    from accelerate.utils import DistributedType

    from codelm.errors import CodelmError
    from codelm.train.optim import check_strategy

    for kind in (DistributedType.FSDP, DistributedType.DEEPSPEED):
        with pytest.raises(CodelmError, match="muon needs whole matrices.*" + kind.name):
            check_strategy("muon", kind.name)
        check_strategy("adamw", kind.name)
    for kind in (DistributedType.NO, DistributedType.MULTI_CPU, DistributedType.MULTI_GPU):
        check_strategy("muon", kind.name)
