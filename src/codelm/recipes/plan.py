"""`codelm run RECIPE --dry-run`: what a recipe costs before anyone pays for it.

The model is built on the meta device (no memory), so the parameter count is the real one
(`8.25B parameters` for Seed-Coder-8B). Per stage: tokens, training FLOPs as 6N per token plus
attention (12 x layers x attention width x sequence length, PaLM appendix B; the same formula the
trainer's MFU uses), and GPU-hours and wall-clock days at the recipe's assumed MFU on its GPUs.
An RL stage's `tokens` are the tokens it samples (prompts and completions): generating them costs
one forward pass each (a third of training's per-token FLOPs, the KV cache doing the rest), training
on them a forward and backward pass per epoch, plus one forward pass each for the sampling policy's
log-probs (epochs > 1) and the frozen reference's (kl_coef > 0).
Memory per GPU follows mixed-precision Adam (bf16 weights and gradients, fp32 master copy and two
moments: 2 + 2 + 12 bytes per parameter, ZeRO, Rajbhandari et al. 2020), sharded by the ZeRO stage
over data-parallel ranks and by tensor parallelism, plus the activations of one sequence with flash
attention and no recomputation (34 x seq x hidden bytes per layer, Korthikanti et al. 2022).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import AutoModelForCausalLM, PretrainedConfig

from codelm.config import ConfigError
from codelm.models import get_family
from codelm.models.sizes import format_count
from codelm.recipes.schema import Recipe, StageSpec
from codelm.train.gpus import MEMORY_GIB, PEAK_TFLOPS
from codelm.train.metrics import flops_per_token


def recipe_config(recipe: Recipe) -> PretrainedConfig:
    """The model config a recipe trains, built by the same function as the run (`new_model_config`):
    the tokenizer's size padded as the trainer pads it, the recipe's overrides, the family's tying.
    With a trained tokenizer its `vocab_size` is the size; with `tokenizer.from` a real size keeps its
    published vocabulary (the tokenizer is not read while planning)."""
    from codelm.train.config import ModelConfig
    from codelm.train.init import new_model_config

    fam = get_family(recipe.model.family)
    m = recipe.model
    cfg = ModelConfig(family=m.family, size=m.size, overrides=dict(m.overrides))
    if recipe.tokenizer.train is not None:
        vocab = recipe.tokenizer.train.expected_size(fam)
    elif m.size != "tiny":
        from codelm.models.sizes import size_config

        vocab = size_config(fam, m.size).vocab_size
    else:
        raise ConfigError("planning a tiny model with `tokenizer.from` needs the tokenizer's size: train one")
    return new_model_config(cfg, fam, vocab)


@dataclass
class StagePlan:
    stage: StageSpec
    tokens: float
    flops: float
    gpu_hours: float
    days: float
    generation_flops: float = 0.0  # RL: the part of `flops` spent sampling


def rl_flops(per_token: float, tokens: float, rl: dict) -> tuple[float, float]:
    """(generation, total) FLOPs of an RL stage sampling `tokens` (see the module docstring)."""
    generation = per_token / 3 * tokens
    epochs = int(rl.get("epochs", 1))
    passes = epochs + (1 / 3 if epochs > 1 else 0) + (1 / 3 if float(rl.get("kl_coef", 0)) > 0 else 0)
    return generation, generation + passes * per_token * tokens


@dataclass
class Plan:
    recipe: Recipe
    params: int
    stages: list[StagePlan]
    memory_gib: dict[str, float]
    recompute_activations_gib: float

    @property
    def total_flops(self) -> float:
        return sum(s.flops for s in self.stages)

    @property
    def total_gpu_hours(self) -> float:
        return sum(s.gpu_hours for s in self.stages)


def _hidden_layers(config: PretrainedConfig) -> tuple[int, int]:
    hidden = getattr(config, "hidden_size", None) or config.n_embd
    layers = getattr(config, "num_hidden_layers", None) or config.n_layer
    return hidden, layers


def plan(recipe: Recipe) -> Plan:
    config = recipe_config(recipe)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    params = sum(p.numel() for p in model.parameters())
    hw = recipe.hardware
    peak = PEAK_TFLOPS[hw.gpu]["bf16"] * 1e12
    stages = []
    for s in recipe.stages:
        tokens = s.tokens or 0.0
        flops, generation = flops_per_token(model, s.seq_len) * tokens, 0.0
        if s.kind == "rl":
            generation, flops = rl_flops(flops_per_token(model, s.seq_len), tokens, s.train.get("rl") or {})
        gpu_hours = flops / (peak * hw.mfu) / 3600
        stages.append(StagePlan(s, tokens, flops, gpu_hours, gpu_hours / hw.gpus / 24, generation))
    dp = hw.gpus // hw.tensor_parallel
    shard = {"weights": hw.zero >= 3, "grads": hw.zero >= 2, "optimizer": hw.zero >= 1}
    per_param = {"weights": 2, "grads": 2, "optimizer": 12}
    memory = {
        k: params * b / hw.tensor_parallel / (dp if shard[k] else 1) / 2**30 for k, b in per_param.items()
    }
    hidden, layers = _hidden_layers(config)
    longest = max(s.seq_len for s in recipe.stages)
    memory["activations (1 sequence)"] = 34 * longest * hidden * layers / hw.tensor_parallel / 2**30
    # with full activation recomputation only each layer's bf16 input is kept
    recompute = 2 * longest * hidden * layers / hw.tensor_parallel / 2**30
    return Plan(recipe, params, stages, memory, recompute)


def fit_warning(p: Plan) -> str | None:
    """A line saying the plan does not fit the GPU's memory, and what would help; None if it fits."""
    hw = p.recipe.hardware
    capacity = MEMORY_GIB[hw.gpu]  # the recipe checked hardware.gpu is in the table
    need = sum(p.memory_gib.values())
    if need <= capacity:
        return None
    states = need - p.memory_gib["activations (1 sequence)"]
    hints = []
    if hw.zero < 3:
        hints.append("a higher ZeRO stage (hardware.zero)")
    if states > capacity:
        hints.append("more GPUs or tensor parallelism")
    else:
        hints.append("activation recomputation")
    return (
        f"warning: the plan needs {need:.1f} GiB per GPU but a {hw.gpu.upper()} has {capacity:.0f} GiB: "
        f"it does not fit; try {' or '.join(hints)}"
    )


def data_sources(r: Recipe) -> list[str]:
    """The corpus's parts (`data.sources`) with their published sizes and shares of the listed total."""
    if not r.data.sources:
        return []
    total = sum(s.tokens or 0.0 for s in r.data.sources)
    lines = ["", f"{'data source':<20}{'tokens':>10}{'share':>8}  {'run':<10}note"]
    for s in r.data.sources:
        share = f"{s.tokens / total:.1%}" if s.tokens and total else "n/a"
        run = ("curated" if s.use == "corpus" else s.use) if s.curated else ("off" if s.curate else "listed")
        size = format_count(s.tokens) if s.tokens else "n/a"
        lines.append(f"{s.name:<20}{size:>10}{share:>8}  {run:<10}{s.note}")
    return lines


def render(p: Plan) -> str:
    r, hw = p.recipe, p.recipe.hardware
    fam = get_family(r.model.family)
    lines = [
        f"recipe {r.name}: {fam.display_name} ({fam.architecture}, size {r.model.size}), "
        f"{format_count(p.params)} parameters ({p.params:,})",
        f"plan on {hw.gpus} x {hw.gpu.upper()} (bf16 peak {PEAK_TFLOPS[hw.gpu]['bf16']:.0f} TFLOP/s) at "
        f"{hw.mfu:.0%} MFU, ZeRO-{hw.zero}, tensor parallel {hw.tensor_parallel}",
        "",
        f"{'stage':<14}{'kind':<10}{'seq':>7}{'tokens':>10}{'FLOPs':>11}{'GPU-hours':>12}{'days':>8}",
    ]
    for s in p.stages:
        if s.stage.tokens is None:  # unpublished size: nothing to plan, and say so
            lines.append(
                f"{s.stage.name:<14}{s.stage.kind:<10}{s.stage.seq_len:>7}{'n/a':>10}   (tokens not set)"
            )
            continue
        lines.append(
            f"{s.stage.name:<14}{s.stage.kind:<10}{s.stage.seq_len:>7}{format_count(s.tokens):>10}"
            f"{s.flops:>11.2e}{s.gpu_hours:>12,.0f}{s.days:>8.1f}"
        )
        if s.generation_flops:
            lines.append(
                f"{'':<14}(generation {s.generation_flops:.2e}, training {s.flops - s.generation_flops:.2e})"
            )
    lines.append(
        f"{'total':<14}{'':<10}{'':>7}{format_count(sum(s.tokens for s in p.stages)):>10}"
        f"{p.total_flops:>11.2e}{p.total_gpu_hours:>12,.0f}{p.total_gpu_hours / hw.gpus / 24:>8.1f}"
    )
    lines += data_sources(r)
    mem = ", ".join(f"{k} {v:.2f} GiB" for k, v in p.memory_gib.items())
    lines += [
        "",
        f"memory per GPU: {mem}; total {sum(p.memory_gib.values()):.2f} GiB "
        f"(activations {p.recompute_activations_gib:.2f} GiB with full recomputation)",
    ]
    warning = fit_warning(p)
    if warning:
        lines.append(warning)
    return "\n".join(lines)
