"""Decode speed on CPUs: which CPUs compute bf16 natively, bf16 linears prepacked for oneDNN (q/k/v
and gate/up stacked), fp32 linears that split their products over the threads, and an fp32 KV cache
for bf16 models.

Batch-1 decode reads every weight once per token, so at ~200M parameters it is bound by memory
bandwidth: bf16 weights halve the bytes. On CPUs with AVX512-BF16 or AMX the arithmetic is native
too, but torch's plain bf16 `F.linear` on one row runs at about half fp32's speed (bench/decode.py,
docs/models.md "Decode speed on CPU"); oneDNN's kernel on a weight reordered once at load into its
blocked layout (what inductor's freezing pass does under `torch.compile`) is what turns the halved
bytes into speed. `pack_linears` swaps a loaded model's `nn.Linear`s for `PackedLinear`s holding
that layout.

In fp32, torch's `F.linear` on one row (MKL's gemv) keeps one core busy however many threads torch has:
on the 2-core AVX2 machine it streamed ~16 GB/s of weights with 1 thread or 2, where the memory gives
~29 and llama.cpp f32 reads at 0.98 of that (bench/RESULTS.md). The same product as a batch of row
blocks, `torch.bmm(W.view(k, out / k, in), x)` with k = the thread count (or the most blocks up to it
that divide the rows), runs one block per thread and streamed ~24-26 GB/s. MKL's gemm on a few rows does
worse still (2-32 rows of a 210M model's matrices streamed 4-9 GB/s with 2 threads, the row blocks
6.5-17), and for hundreds of rows (prefill) the blocks tie it. `split_linears` swaps in
`RowSplitLinear`, which computes every product that way, sharing the weight of the linear it replaces.

Only inference loads pack (`codelm.engine.loader`): a packed weight is a copy that training would
not update, so an `Engine` wrapped around a live policy (RL rollouts) keeps plain linears.

Attention over a bf16 KV cache is the other cost that grows with the context. The engine's cache
(`codelm.engine.decode.GrowingLayer`) holds keys and values as views of buffers with room to grow,
and torch's bf16 batched matmuls (oneDNN) copy such strided views before every product, where MKL's
fp32 ones read them in place: a one-query product over 900 cached keys of 16 heads took 383 us in
bf16 against 50 in fp32 (63 when the keys were contiguous), and a ~210M model decoding after an
826-token prompt made ~25 tokens/s against ~40 after a short one. So bf16 models on the CPU keep
their cache in fp32 (`cache_dtype`) and attend through `FP32_CACHE_ATTENTION`, transformers' SDPA
with the queries cast up and the output cast back: ~33 tokens/s at that context, at the price of a
cache twice as large (docs/models.md "Decode speed on CPU").
"""

from __future__ import annotations

import functools
import platform
from pathlib import Path

import torch

# /proc/cpuinfo flags of native bf16 arithmetic: AVX512-BF16 (Cooper Lake, Zen 4+) and AMX (Sapphire Rapids+)
BF16_FLAGS = ("avx512_bf16", "amx_bf16")
# below this many parameters decode time is mostly per-layer overhead, not weight reads: bf16 gained
# ~1.2x at 28M against ~1.6x at 210M (bench/decode.py), too little to give up fp32's exact agreement
# with fp32 references (and the tiny test models' greedy ties) by default
AUTO_BF16_MIN_PARAMS = 64_000_000


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (Linux); empty elsewhere, which means "assume no native bf16"."""
    if platform.system() != "Linux":
        return frozenset()
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.partition(":")[2].split())
    return frozenset()


def native_bf16() -> bool:
    """True when this CPU computes bf16 natively and torch's oneDNN can use it."""
    return (
        any(f in cpu_flags() for f in BF16_FLAGS)
        and torch.backends.mkldnn.is_available()
        and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    )


class PackedLinear(torch.nn.Module):
    """`nn.Linear` for inference with its bf16 weight in oneDNN's blocked layout (no autograd)."""

    def __init__(self, linear: torch.nn.Linear) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        # a plain attribute, not a buffer: an opaque mkldnn tensor has no storage to save or move
        self.packed = torch.ops.mkldnn._reorder_linear_weight(linear.weight.detach(), None)
        self.bias = None if linear.bias is None else torch.nn.Parameter(linear.bias.detach(), False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.mkldnn._linear_pointwise(x, self.packed, self.bias, "none", [], "")

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, packed bf16"


# below this many parameters a decode step is mostly per-layer overhead, and the matrices sit in cache
SPLIT_MIN_PARAMS = 16_000_000


class RowSplitLinear(torch.nn.Module):
    """fp32 `nn.Linear` for inference whose product runs one block of output rows per thread (module
    docstring). Shares the weight and bias of the linear it replaces; with grad on it is `F.linear`."""

    def __init__(self, linear: torch.nn.Linear) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.weight, self.bias = linear.weight, linear.bias
        self._threads, self._blocks = 0, 1

    def blocks(self) -> int:
        """Blocks for torch's current thread count: the most, up to one per thread, that divide the
        output rows evenly (1: no split)."""
        threads = torch.get_num_threads()
        if threads != self._threads:
            top = min(threads, self.out_features)
            self._threads = threads
            self._blocks = next((k for k in range(top, 1, -1) if self.out_features % k == 0), 1)
        return self._blocks

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        blocks = self.blocks()
        if blocks < 2 or torch.is_grad_enabled():
            return torch.nn.functional.linear(x, self.weight, self.bias)
        rows = x.numel() // self.in_features
        w = self.weight.view(blocks, self.out_features // blocks, self.in_features)
        x2 = x.reshape(rows, self.in_features).t().unsqueeze(0).expand(blocks, -1, -1)
        y = torch.bmm(w, x2)  # (blocks, out / blocks, rows)
        y = y.permute(2, 0, 1).reshape(*x.shape[:-1], self.out_features)
        return y if self.bias is None else y + self.bias

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, row-split fp32"


def _on_cpu_in(model: torch.nn.Module, dtype: torch.dtype) -> bool:
    first = next(model.parameters())
    return first.device.type == "cpu" and first.dtype == dtype


# the attention implementation registered with transformers for models whose KV cache is fp32
FP32_CACHE_ATTENTION = "codelm_fp32_cache"


@functools.cache
def _register_fp32_cache_attention() -> None:
    from transformers import AttentionInterface
    from transformers.integrations.sdpa_attention import sdpa_attention_forward
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    def attention(module, query, key, value, attention_mask, **kwargs):
        """transformers' SDPA attention over keys and values that may be fp32 while the queries are
        bf16: the queries are cast to the cache's dtype and the output back (a no-op where they agree)."""
        cast = query.to(key.dtype)
        out, weights = sdpa_attention_forward(module, cast, key, value, attention_mask, **kwargs)
        return out.to(query.dtype), weights

    AttentionInterface.register(FP32_CACHE_ATTENTION, attention)
    AttentionMaskInterface.register(FP32_CACHE_ATTENTION, sdpa_mask)


def attend_over_fp32_cache(model: torch.nn.Module) -> bool:
    """Switch a bf16 or fp16 model on the CPU that uses transformers' SDPA attention to
    `FP32_CACHE_ATTENTION`, so that `cache_dtype` keeps its KV cache in fp32; True when switched.
    Models with attention of their own (no transformers attention interface) are left as they are."""
    if not (_on_cpu_in(model, torch.bfloat16) or _on_cpu_in(model, torch.float16)):
        return False
    config = getattr(model, "config", None)
    if getattr(config, "_attn_implementation", None) != "sdpa" or not model._can_set_attn_implementation():
        return False
    _register_fp32_cache_attention()
    model.set_attn_implementation(FP32_CACHE_ATTENTION)
    return config._attn_implementation == FP32_CACHE_ATTENTION


def cache_dtype(model: torch.nn.Module) -> torch.dtype | None:
    """The dtype the engine's KV cache holds for `model`: fp32 where `attend_over_fp32_cache`
    switched it, else None (the keys' and values' own dtype)."""
    config = getattr(model, "config", None)
    return torch.float32 if getattr(config, "_attn_implementation", None) == FP32_CACHE_ATTENTION else None


def can_split(model: torch.nn.Module) -> bool:
    """An fp32 model of `SPLIT_MIN_PARAMS`+ parameters on the CPU."""
    return _on_cpu_in(model, torch.float32) and sum(p.numel() for p in model.parameters()) >= SPLIT_MIN_PARAMS


# sibling linears that read the same input in transformers' decoders (Llama, Gemma, Qwen, Mistral,
# StableLM, Seed-Coder): the attention's projections and the gated MLP's two
FUSED_GROUPS = (("q_proj", "k_proj", "v_proj"), ("gate_proj", "up_proj"))


def fused_name(names: tuple[str, ...]) -> str:
    """The attribute under which `fuse_projections` registers the `FusedLinear` of `names`."""
    return "fused_" + "_".join(n.removesuffix("_proj") for n in names)


class FusedLinear(torch.nn.Module):
    """Sibling linears that read one input, as one product over their stacked weights.

    At batch 1 each product is a pass over its weights plus a kernel call, and a 210M Llama makes 113
    of them a token; stacking q/k/v and gate/up makes 65, fewer and larger (bench/decode.py).
    transformers' modules still call `q_proj(x)`, `k_proj(x)`, `v_proj(x)`: each is a `LinearPart`,
    and the first call on an input computes every part, the others take theirs from that result (a
    part called on another input recomputes, so the answer is always right). `linear` is a plain
    `nn.Linear`, so `pack_linears` / `split_linears` wrap it like any other."""

    def __init__(self, linears: list[torch.nn.Linear]) -> None:
        super().__init__()
        weight = torch.cat([lin.weight.detach() for lin in linears])
        has_bias = linears[0].bias is not None
        # built on the meta device: no throwaway weight is allocated and initialized
        self.linear = torch.nn.Linear(weight.shape[1], weight.shape[0], bias=has_bias, device="meta")
        self.linear.weight = torch.nn.Parameter(weight, requires_grad=False)
        if has_bias:
            bias = torch.cat([lin.bias.detach() for lin in linears])
            self.linear.bias = torch.nn.Parameter(bias, requires_grad=False)
        self.sizes = [lin.out_features for lin in linears]
        self._input: torch.Tensor | None = None
        self._outputs: tuple[torch.Tensor, ...] = ()
        self._left = 0

    def part(self, index: int, x: torch.Tensor) -> torch.Tensor:
        """Part `index` of the product with `x`, computing all of them on a new input."""
        # the same tensor object (held here, so never a recycled one; inference tensors keep no
        # version counter, and transformers' modules do not write to the input between the calls)
        if x is not self._input or not self._left:
            self._outputs = tuple(self.linear(x).split(self.sizes, dim=-1))
            self._input, self._left = x, len(self.sizes)
        out = self._outputs[index]
        self._left -= 1
        if not self._left:  # every part taken: hold no activations between steps
            self._input, self._outputs = None, ()
        return out

    def extra_repr(self) -> str:
        return f"parts={self.sizes}"


class LinearPart(torch.nn.Module):
    """One linear of a `FusedLinear`, where transformers' module calls it."""

    def __init__(self, fused: FusedLinear, index: int) -> None:
        super().__init__()
        object.__setattr__(self, "fused", fused)  # not a submodule: the parent registers it once
        self.index = index
        self.in_features, self.out_features = fused.linear.in_features, fused.sizes[index]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fused.part(self.index, x)

    def extra_repr(self) -> str:
        return f"part {self.index} of {self.fused.sizes}"


def fuse_projections(model: torch.nn.Module) -> int:
    """Replace each `FUSED_GROUPS` group of plain sibling `nn.Linear`s (same input size, dtype and
    bias presence) by a `FusedLinear` registered on their parent and `LinearPart`s; returns how
    many groups. For inference only: the stacked weight is a copy that training would not update."""
    count = 0
    for module in list(model.modules()):
        for names in FUSED_GROUPS:
            linears = [getattr(module, n, None) for n in names]
            if not all(type(lin) is torch.nn.Linear for lin in linears):
                continue
            first = linears[0]
            if any(
                lin.in_features != first.in_features
                or lin.weight.dtype != first.weight.dtype
                or (lin.bias is None) != (first.bias is None)
                for lin in linears
            ):
                continue
            fused = FusedLinear(linears)
            module.add_module(fused_name(names), fused)
            for i, name in enumerate(names):
                setattr(module, name, LinearPart(fused, i))
            count += 1
    return count


def _swap_linears(model: torch.nn.Module, dtype: torch.dtype, wrap: type[torch.nn.Module]) -> int:
    """Replace every plain `nn.Linear` of `model` whose weight is `dtype` by `wrap(linear)`."""
    count = 0
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if type(child) is torch.nn.Linear and child.weight.dtype == dtype:
                setattr(module, name, wrap(child))
                count += 1
    return count


def split_linears(model: torch.nn.Module) -> int:
    """Replace every fp32 `nn.Linear` of `model` by a `RowSplitLinear`; returns how many."""
    return _swap_linears(model, torch.float32, RowSplitLinear)


def can_pack(model: torch.nn.Module) -> bool:
    """A bf16 model on the CPU, on a CPU with native bf16."""
    return _on_cpu_in(model, torch.bfloat16) and native_bf16()


def pack_linears(model: torch.nn.Module) -> int:
    """Replace every bf16 `nn.Linear` of `model` by a `PackedLinear`; returns how many."""
    return _swap_linears(model, torch.bfloat16, PackedLinear)
