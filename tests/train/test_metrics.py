"""MFU arithmetic against hand-computed FLOPs, the peak table, and the loss plot."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForCausalLM

from codelm.models import get_family
from codelm.models.sizes import count_parameters, size_config
from codelm.models.tiny import tiny_config
from codelm.train.metrics import (
    PEAK_TFLOPS,
    device_peak_tflops,
    flop_parameters,
    flops_per_token,
    plot_metrics,
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
    name, peak = device_peak_tflops(torch.device("cpu"), "fp32")
    assert name.startswith("cpu") and peak == pytest.approx(0.1 * torch.get_num_threads())


def test_plot(tmp_path):
    pytest.importorskip("matplotlib")
    f = tmp_path / "metrics.jsonl"
    f.write_text(
        "".join(
            json.dumps({"step": s, "loss": 5 - s / 10, "lr": 1e-3, "tokens_per_s": 1e4}) + "\n"
            for s in range(1, 20)
        )
    )
    png = plot_metrics(f, tmp_path / "loss.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
