"""The optimizer of every stage: AdamW, or Muon for the hidden matrices with AdamW for the rest.

`optim.name: adamw` (the default) is AdamW with weight decay on matrices only. `optim.name: muon`
updates each 2-D weight inside the transformer blocks with Muon, momentum orthogonalised by a
Newton-Schulz iteration (Jordan et al. 2024, https://kellerjordan.github.io/posts/muon/), and
everything else (token embeddings, the output head, norms, biases) with AdamW, as Muon's authors and
Moonshot's "Muon is Scalable for LLM Training" (Liu et al. 2025, arXiv:2502.16982) do. Muon's step
is scaled by 0.2 * sqrt(max(rows, cols)) (that paper's "match RMS of AdamW"), so one `optim.lr` and
one `optim.weight_decay` serve both halves and one schedule drives them. The class below is torch's
AdamW with its Muon groups routed to Muon's rule, so accelerate, the LR schedule and checkpoints see
one ordinary optimizer.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from codelm.errors import CodelmError
from codelm.train.config import TrainConfig

SHARDING = ("FSDP", "DEEPSPEED", "MEGATRON_LM")  # accelerate strategies that hand the optimizer shards


def check_strategy(name: str, strategy: str) -> None:
    """Refuse Muon where the optimizer would see shards: it orthogonalises whole matrices, and FSDP and
    DeepSpeed ZeRO give each process flat pieces of them (one process and DDP keep them whole)."""
    if name == "muon" and strategy.upper() in SHARDING:
        raise CodelmError(
            f"optim.name muon needs whole matrices: run it in one process or with DDP, not {strategy}"
            " (or use optim.name adamw)"
        )


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """The stage's optimizer over the trainable parameters (no weight decay on norms and biases)."""
    o = cfg.optim
    params = [p for p in model.parameters() if p.requires_grad]
    fused = o.fused and all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in params)
    kwargs: dict[str, Any] = {"lr": o.lr, "betas": tuple(o.betas), "eps": o.eps, "fused": fused or None}
    vectors = {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}
    if o.name == "adamw":
        matrices = {"params": [p for p in params if p.ndim >= 2], "weight_decay": o.weight_decay}
        return torch.optim.AdamW([matrices, vectors], **kwargs)
    tables = _embedding_tables(model)
    hidden = [p for p in params if p.ndim == 2 and id(p) not in tables]
    ids = {id(p) for p in hidden}
    rest = [p for p in params if p.ndim >= 2 and id(p) not in ids]
    others = {"params": rest, "weight_decay": o.weight_decay}
    muon = {"params": hidden, "weight_decay": o.weight_decay, "muon": True, "momentum": o.muon_momentum}
    ns_dtype = torch.bfloat16 if cfg.run.precision == "bf16" else None
    return MuonAdamW([g for g in (muon, others, vectors) if g["params"]], ns_dtype=ns_dtype, **kwargs)


def _embedding_tables(model: torch.nn.Module) -> set[int]:
    """ids of the weights that stay on AdamW under Muon although 2-D: every embedding table (tokens,
    learned positions) and the output head (transformers' `get_output_embeddings`), by module, not name."""
    tables = {id(m.weight) for m in model.modules() if isinstance(m, torch.nn.Embedding)}
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if head is not None:
        tables.add(id(head.weight))
    return tables


class MuonAdamW(torch.optim.AdamW):
    """AdamW whose parameter groups marked ``muon: True`` take Muon's update instead.

    Those groups hold 2-D tensors only; their state is one Nesterov momentum buffer per tensor.
    Everything an AdamW has (state_dict, fused kernels, schedulers, accelerate's wrapper) works as is.
    ``ns_dtype``: what the Newton-Schulz iteration computes in (None: `orthogonalize`'s default);
    `make_optimizer` passes bf16 where the stage trains in bf16.
    """

    def __init__(self, params: Any, ns_dtype: torch.dtype | None = None, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        self.ns_dtype = ns_dtype
        for group in self.param_groups:
            group.setdefault("muon", False)
            if group["muon"] and any(p.ndim != 2 for p in group["params"]):
                raise ValueError("Muon groups take 2-D weights only")

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Loading a state dict: AdamW's upgrade of old states expects a `step` in every non-empty
        state, which Muon's (a momentum buffer) has not; it sees the AdamW groups only."""
        groups = state["param_groups"]
        super().__setstate__({**state, "param_groups": [g for g in groups if not g.get("muon")]})
        self.param_groups = groups

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:  # noqa: D102 - AdamW's contract
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        groups = self.param_groups
        self.param_groups = [g for g in groups if not g["muon"]]
        try:
            super().step()
        finally:
            self.param_groups = groups
        for group in groups:
            if group["muon"]:
                self._muon_step(group)
        return loss

    def _muon_step(self, group: dict[str, Any]) -> None:
        """Muon's update (as torch.optim.Muon with Nesterov momentum and Moonshot's scaling), every
        matrix of the group orthogonalised in one batched iteration (`orthogonalize_all`)."""
        lr, momentum, decay = group["lr"], group["momentum"], group["weight_decay"]
        params = [p for p in group["params"] if p.grad is not None]
        nesterov = []
        for p in params:
            state = self.state[p]
            if "momentum_buffer" not in state:
                state["momentum_buffer"] = torch.zeros_like(p)
            buf = state["momentum_buffer"]
            buf.lerp_(p.grad, 1 - momentum)
            nesterov.append(p.grad.lerp(buf, momentum))
        for p, update in zip(params, orthogonalize_all(nesterov, self.ns_dtype), strict=True):
            p.mul_(1 - lr * decay)
            p.add_(update.to(p.dtype), alpha=-lr * 0.2 * math.sqrt(max(p.shape)))


# the quintic Newton-Schulz coefficients of Jordan et al. (torch.optim.Muon's defaults)
NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)


def orthogonalize(g: torch.Tensor, steps: int = 5, dtype: torch.dtype | None = None) -> torch.Tensor:
    """An approximation of U V^T for G = U S V^T by a quintic Newton-Schulz iteration (singular values
    land in about [0.7, 1.2], which Muon's authors found does not hurt), of one matrix or of a stack
    of equal-shaped ones (..., rows, cols). ``dtype`` None: bf16 on GPUs as theirs, fp32 on CPUs, where
    most lack native bf16 matmuls (torch's Muon always casts to bf16: 2.4x slower steps on an AVX2-only
    CPU); the optimizer passes bf16 where the stage trains in bf16."""
    a, b, c = NS_COEFFICIENTS
    if dtype is None:
        dtype = torch.bfloat16 if g.device.type == "cuda" else torch.float32
    x = g.to(dtype)
    tall = x.size(-2) > x.size(-1)
    if tall:
        x = x.mT
    stacked = x.dim() == 3
    if not stacked:
        x = x.unsqueeze(0)
    x = x / x.norm(dim=(-2, -1), keepdim=True).clamp(min=1e-7)
    for _ in range(steps):
        gram = x @ x.mT
        x = torch.baddbmm(x, torch.baddbmm(gram, gram, gram, beta=b, alpha=c), x, beta=a)
    x = x if stacked else x.squeeze(0)
    return x.mT if tall else x


def orthogonalize_all(grads: list[torch.Tensor], dtype: torch.dtype | None = None) -> list[torch.Tensor]:
    """`orthogonalize` of each matrix, the matrices of one shape (a wide one and the transpose of a
    tall one count as one shape) stacked into one batched iteration: a Llama block's seven matrices
    have three shapes, so 28 matrices of a 4-layer model take 3 x 15 batched matmuls instead of 420
    small ones (batched and in bf16 on a bf16-native CPU, the tiny recipe's pretraining step took
    0.219 s instead of 0.267: docs/recipes.md, "Batched Newton-Schulz")."""
    wide = [g if g.size(0) <= g.size(1) else g.T for g in grads]
    by_shape: dict[tuple[int, int, str], list[int]] = {}
    for i, g in enumerate(wide):
        by_shape.setdefault((g.size(0), g.size(1), str(g.device)), []).append(i)
    out: dict[int, torch.Tensor] = {}
    for indices in by_shape.values():
        done = orthogonalize(torch.stack([wide[i] for i in indices]), dtype=dtype)
        for i, o in zip(indices, done, strict=True):
            out[i] = o if wide[i] is grads[i] else o.T
    return [out[i] for i in range(len(grads))]
