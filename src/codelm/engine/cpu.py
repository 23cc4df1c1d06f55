"""Decode speed on CPUs: which CPUs compute bf16 natively, bf16 linears prepacked for oneDNN, and fp32
linears that split their products over the threads.

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


def can_split(model: torch.nn.Module) -> bool:
    """An fp32 model of `SPLIT_MIN_PARAMS`+ parameters on the CPU."""
    return _on_cpu_in(model, torch.float32) and sum(p.numel() for p in model.parameters()) >= SPLIT_MIN_PARAMS


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
