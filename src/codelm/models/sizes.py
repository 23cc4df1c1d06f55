"""Real-size model configs, built on the meta device to count parameters without memory."""

from __future__ import annotations

import torch
from transformers import AutoConfig, AutoModelForCausalLM, PretrainedConfig

from codelm.models.registry import Family


def size_config(family: Family, size: str) -> PretrainedConfig:
    """The published config of `family` at `size` as a transformers config object."""
    raw = dict(family.size(size).config_dict())
    model_type = raw.pop("model_type")
    raw.pop("architectures", None)
    return AutoConfig.for_model(model_type, **raw)


def count_parameters(config: PretrainedConfig) -> int:
    """Unique parameters of the model `config` describes (tied embeddings counted once)."""
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    seen: set[int] = set()
    total = 0
    for p in model.parameters():  # parameters() already yields a tied tensor once
        if id(p) not in seen:
            seen.add(id(p))
            total += p.numel()
    return total


def format_count(n: float) -> str:
    """`8.25B parameters` style, as in `codelm run --dry-run`."""
    for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(int(n))
