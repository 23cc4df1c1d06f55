"""MFU arithmetic against hand-computed FLOPs, the peak (table, config, measured), and the loss plot."""

from __future__ import annotations

import json
import math

import pytest
import torch
from transformers import AutoModelForCausalLM

from codelm.models import get_family
from codelm.models.sizes import count_parameters, size_config
from codelm.models.tiny import tiny_config
from codelm.train.metrics import (
    PEAK_TFLOPS,
    flop_parameters,
    flops_per_token,
    measure_matmul_tflops,
    plot_curves,
    plot_metrics,
    resolve_peak,
    table_peak_tflops,
)


def test_flops_per_token_is_6n_plus_attention():
    config = tiny_config(get_family("llama"), 256, {"bos": 0, "eos": 1, "pad": 2})
    model = AutoModelForCausalLM.from_config(config)
    n = sum(p.numel() for p in model.parameters()) - 256 * 64  # untied input embedding is a lookup
    assert flop_parameters(model) == n
    assert flops_per_token(model, 128) == 6 * n + 12 * 2 * 4 * 16 * 128


def test_tied_embeddings_count_once_as_matmul_weights():
    config = tiny_config(get_family("codegemma"), 256, {"bos": 0, "eos": 1, "pad": 2})
    model = AutoModelForCausalLM.from_config(config)
    assert flop_parameters(model) == sum(p.numel() for p in model.parameters())


def test_350m_flops_on_the_meta_device():
    config = size_config(get_family("codegen1"), "350M")
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    n = count_parameters(config)
    assert flops_per_token(model, 2048) == 6 * (n - 51200 * 1024) + 12 * 20 * 1024 * 2048


def test_peak_table():
    assert PEAK_TFLOPS["h100"]["bf16"] == PEAK_TFLOPS["h200"]["bf16"] == 989.4
    assert PEAK_TFLOPS["a100"]["bf16"] == 312.0
    assert table_peak_tflops(torch.device("cpu"), "fp32") is None  # a CPU is measured, never guessed


def test_cpu_peak_is_measured_and_config_wins():
    peak = resolve_peak(torch.device("cpu"), "fp32")
    assert peak.source == "measured" and peak.device.startswith("cpu")
    assert math.isfinite(peak.tflops) and peak.tflops > 0
    assert peak.measured == {"fp32": peak.tflops}
    assert resolve_peak(torch.device("cpu"), "bf16", 2.5).as_dict() == {
        "name": peak.device,
        "peak_tflops": 2.5,
        "peak_source": "config",
    }


def test_measuring_the_peak_draws_no_rng():
    torch.manual_seed(3)
    want = torch.rand(4)
    torch.manual_seed(3)
    flops = measure_matmul_tflops(torch.device("cpu"), "fp32", n=128, repeats=2)
    assert torch.equal(torch.rand(4), want) and flops > 0


def test_plot_draws_the_heldout_loss_beside_the_training_loss(tmp_path):
    pytest.importorskip("matplotlib")
    f = tmp_path / "metrics.jsonl"
    rows = [{"step": 0, "heldout_loss": 5.2, "tokens": 0}]  # the held-out loss before training
    rows += [{"step": s, "loss": 5 - s / 10, "lr": 1e-3, "tokens_per_s": 1e4} for s in range(1, 20)]
    rows[-1]["heldout_loss"] = 3.5
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    panels = plot_curves(rows)
    assert list(panels) == ["loss", "lr", "tokens_per_s"]
    assert panels["loss"]["held-out"] == [(0, 5.2), (19, 3.5)] and len(panels["loss"]["train"]) == 19
    assert list(panels["lr"]) == ["train"]
    png = plot_metrics(f, tmp_path / "loss.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_mfu_of_a_tiny_run_is_against_the_measured_peak(pretrain_run):
    """On a CPU the loop measures its peak (no table guess) and records it in metrics and meta.json."""
    from codelm.train.metrics import read_metrics

    records = [r for r in read_metrics(pretrain_run.parent / "metrics.jsonl") if "loss" in r]
    device = json.loads((pretrain_run / "meta.json").read_text())["device"]
    assert device["peak_source"] == "measured" and device["name"] == "cpu x1"  # run.threads=1
    measured = device["peak_tflops_measured"]["fp32"]
    assert math.isfinite(measured) and measured > 0 and device["peak_tflops"] == measured
    for r in records:
        assert r["peak_source"] == "measured" and r["peak_tflops"] == measured
        assert 0 < r["mfu"] < 1.5, r


def test_bf16_run_measures_both_peaks(tiny_checkpoint, shards_of, make_config):
    """bf16 autocast trains on a CPU; MFU is against the best measured matmul peak (fp32 or bf16)."""
    from codelm.train.loop import train
    from codelm.train.metrics import read_metrics

    cfg = make_config(
        "pretrain",
        "model.family=llama",
        f"model.tokenizer={tiny_checkpoint('llama')}",
        f"pretrain.shards=[{shards_of('llama')}]",
        "run.precision=bf16",
        "run.max_steps=2",
    )
    final = train(cfg)
    device = json.loads((final / "meta.json").read_text())["device"]
    assert sorted(device["peak_tflops_measured"]) == ["bf16", "fp32"]
    # the best of the two: a CPU without native bf16 emulates it far below its fp32 rate
    assert device["peak_tflops"] == max(device["peak_tflops_measured"].values()) > 0
    records = read_metrics(final.parent / "metrics.jsonl")
    assert all(math.isfinite(r["loss"]) and 0 < r["mfu"] < 1.5 for r in records)


def test_precision_auto_follows_the_hardware(monkeypatch):
    """`run.precision: auto` is bf16 only where the CPU computes bf16 natively (AVX512-BF16 or AMX)."""
    import torch

    from codelm.train.loop import resolve_precision

    assert resolve_precision("fp32") == "fp32" and resolve_precision("bf16") == "bf16"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for avx512_bf16, amx, want in [(True, False, "bf16"), (False, True, "bf16"), (False, False, "fp32")]:
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda v=avx512_bf16: v, raising=False)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda v=amx: v, raising=False)
        assert resolve_precision("auto") == want
