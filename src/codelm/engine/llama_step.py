"""A hand-written one-token decode step for Llama-architecture models (Llama, Seed-Coder, CodeGemma).

At batch 1 a ~210M Llama in bf16 spends ~18 ms of a ~28 ms token in its weight products on 2 cores
and most of the rest in transformers' per-layer Python: module calls, keyword plumbing, mask
building, output records (bench/decode.py --profile: 20% of the wall time outside every torch op).
`LlamaStep` does the arithmetic of `LlamaForCausalLM.forward` (and of `GemmaForCausalLM`'s: the
same layer with its own norm and scaled embedding) for one new token per row over the engine's KV
cache, through the model's own modules for the products (packed, and stacked by
`cpu.fuse_projections`), the embedding, the rotary table and Gemma's norms, with only the arithmetic
between them. It serves the decode steps of those models loaded for inference on the CPU
(`load_checkpoint`, unless `pack=False`); prefill, scoring, other devices and other families keep
transformers' forward. In fp32 it computes what transformers computes, op for op. Figures:
docs/models.md "Decode speed on CPU".
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from codelm.engine.cpu import FP32_CACHE_ATTENTION, FUSED_GROUPS, FusedLinear, fused_name


def _llama_rms_norm(norm: torch.nn.Module, h: torch.Tensor) -> torch.Tensor:
    """`LlamaRMSNorm.forward`: the mean square in fp32, the weight applied in the input's dtype."""
    x = h.to(torch.float32)
    x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + norm.variance_epsilon)
    return norm.weight * x.to(h.dtype)


def _norm(norm: torch.nn.Module):
    """h -> norm(h): Llama's inlined, any other family's through its module (Gemma's scales by
    1 + weight, in fp32). Inlined, the 33 norm calls of a 16-layer token skip the module machinery.
    At ~210M bf16 (6 interleaved rounds), module norms with transformers' `rotate_half` made 46.6
    tokens/s against 48.5 inlined, and `rotate_half` alone 45.8 against 46.9; two identical steps
    compared the same way read 45.2 against 45.7."""
    if type(norm).__name__ == "LlamaRMSNorm":
        return lambda h: _llama_rms_norm(norm, h)
    return norm


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """`apply_rotary_pos_emb` for one tensor (the queries' and keys' heads at once), with
    transformers' `rotate_half` inlined (calling it measured slower: `_norm`)."""
    half = x.shape[-1] // 2
    return x * cos + torch.cat((-x[..., half:], x[..., :half]), dim=-1) * sin


def _linears(module: torch.nn.Module, names: tuple[str, ...]):
    """(the stacked product of `names`, None) where `cpu.fuse_projections` made one, else (None,
    the separate linears)."""
    fused = getattr(module, fused_name(names), None)
    if isinstance(fused, FusedLinear):
        return fused.linear, None
    return None, [getattr(module, n) for n in names]


class _Layer:
    """One decoder layer's modules, looked up once (`nn.Module.__getattr__` is slow per token)."""

    def __init__(self, layer: torch.nn.Module, heads: int, kv_heads: int) -> None:
        attn, mlp = layer.self_attn, layer.mlp
        self.norm1, self.norm2 = _norm(layer.input_layernorm), _norm(layer.post_attention_layernorm)
        self.qkv, self.q_k_v = _linears(attn, FUSED_GROUPS[0])
        self.gate_up, self.gate_and_up = _linears(mlp, FUSED_GROUPS[1])
        self.o_proj, self.down_proj, self.act = attn.o_proj, mlp.down_proj, mlp.act_fn
        self.head_dim, self.scaling = attn.head_dim, attn.scaling
        self.heads, self.kv_heads = heads, kv_heads

    def attention_inputs(self, x: torch.Tensor, cos, sin):
        """Queries and keys rotated, values: (rows, heads, 1, head_dim) each."""
        rows, d, heads, kv = x.shape[0], self.head_dim, self.heads, self.kv_heads
        if self.qkv is not None:  # one product: the queries' and keys' heads rotate in one pass
            y = self.qkv(x).view(rows, 1, heads + 2 * kv, d).transpose(1, 2)
            qk = _rotate(y[:, : heads + kv], cos, sin)
            return qk[:, :heads], qk[:, heads:], y[:, heads + kv :]
        q, k, v = (lin(x) for lin in self.q_k_v)
        q = _rotate(q.view(rows, 1, heads, d).transpose(1, 2), cos, sin)
        k = _rotate(k.view(rows, 1, kv, d).transpose(1, 2), cos, sin)
        return q, k, v.view(rows, 1, kv, d).transpose(1, 2)

    def __call__(self, h, cos, sin, cache, index: int, mask: torch.Tensor | None) -> torch.Tensor:
        rows, d = h.shape[0], self.head_dim
        q, k, v = self.attention_inputs(self.norm1(h), cos, sin)
        k, v = cache.update(k, v, index)
        # one query per row: grouped heads become the query axis (transformers' `pack_gqa`), so any
        # SDPA kernel serves; the queries take the cache's dtype (fp32 for bf16 models: cpu.cache_dtype)
        q = q.reshape(rows, self.kv_heads, self.heads // self.kv_heads, d).to(k.dtype)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=self.scaling)
        h = h + self.o_proj(out.reshape(rows, 1, self.heads * d).to(h.dtype))
        x = self.norm2(h)
        if self.gate_up is not None:
            gate, up = self.gate_up(x).chunk(2, dim=-1)
        else:
            gate, up = (lin(x) for lin in self.gate_and_up)
        return h + self.down_proj(self.act(gate) * up)


class LlamaStep:
    """`step(ids, positions, cache, mask)` -> next-token logits (rows, vocab): `model`'s forward
    for one token per row, `ids` and `positions` (rows, 1), `mask` (rows, cached + 1) with 0 on
    left padding, or None for a batch without padding."""

    def __init__(self, model: torch.nn.Module) -> None:
        config, inner = model.config, model.model
        self.embed, self.rotary, self.norm = inner.embed_tokens, inner.rotary_emb, _norm(inner.norm)
        self.head = model.lm_head
        heads = config.num_attention_heads
        kv_heads = config.num_key_value_heads or heads
        self.layers = [_Layer(layer, heads, kv_heads) for layer in inner.layers[: config.num_hidden_layers]]

    def __call__(self, ids, positions, cache, mask: torch.Tensor | None) -> torch.Tensor:
        h = self.embed(ids)
        cos, sin = self.rotary(h, positions)
        cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
        bool_mask = None if mask is None else mask[:, None, None, :].bool()
        for index, layer in enumerate(self.layers):
            h = layer(h, cos, sin, cache, index, bool_mask)
        return self.head(self.norm(h))[:, -1, :]


# transformers' causal LMs whose decoder layer is Llama's (norm, attention with rotary, residual, norm,
# gated MLP, residual): Gemma differs only inside modules the step calls (its norm, its scaled embedding)
_SUPPORTED = {"LlamaForCausalLM": "llama", "GemmaForCausalLM": "gemma"}


def supports(model: torch.nn.Module) -> bool:
    """A transformers Llama (Llama, Seed-Coder) or Gemma (CodeGemma) causal LM whose arithmetic
    `LlamaStep` reproduces: one projection per head group (`pretraining_tp` 1), SDPA-style
    attention, no sliding window."""
    config = getattr(model, "config", None)
    return (
        _SUPPORTED.get(type(model).__name__) == getattr(config, "model_type", None)
        and getattr(config, "pretraining_tp", 1) in (None, 1)
        and getattr(config, "sliding_window", None) is None
        and getattr(config, "_attn_implementation", None) in ("sdpa", FP32_CACHE_ATTENTION)
    )
