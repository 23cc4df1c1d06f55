"""Stage losses: causal LM (pretraining, FIM, long context and SFT alike) and DPO.

An objective returns a *sum* over its units (target tokens, or preference pairs) and says how many
units a micro-batch holds; the loop divides by the units of the whole global batch, across every
micro-batch and process. That makes the loss the true per-token (per-pair) mean of the global batch,
independent of how it is split, which is what exact resume and the DDP-equals-single-process check
rely on. (Averaging per-micro-batch means would weigh short SFT rows more than long ones.)

DPO follows Rafailov et al. 2023, eq. 7: loss = -log sigmoid(beta * ((pi_c - ref_c) - (pi_r - ref_r)))
with sequence log-probs summed over reply tokens; reference log-probs come from a frozen copy of the
starting model, or were computed once before training (`reference: precomputed`).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from codelm.train.packing import IGNORE, Batch, model_inputs


def forward_logits(model: torch.nn.Module, batch: Batch, mode: str) -> torch.Tensor:
    """Logits of a micro-batch with packed documents kept apart (train/packing.py)."""
    base = getattr(model, "module", model)  # DDP wraps the model; its config is on the inner one
    dtype = next(base.parameters()).dtype
    impl = getattr(base.config, "_attn_implementation", None) or "eager"
    return model(**model_inputs(batch, mode, impl, dtype)).logits


def shifted_targets(labels: torch.Tensor) -> torch.Tensor:
    """Next-token targets aligned with the logits: labels shifted left, IGNORE at the end.

    Shifting the labels instead of slicing the logits avoids copying the [B, L, V] logits.
    """
    return F.pad(labels[:, 1:], (0, 1), value=IGNORE)


def token_logprobs(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-prob of each next-token target [B, L] (0 where ignored) and the target mask."""
    targets = shifted_targets(labels)
    mask = targets != IGNORE
    logp = torch.log_softmax(logits.float(), dim=-1)
    picked = logp.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return picked * mask, mask


class CausalLM:
    """Next-token cross-entropy on labelled tokens; SFT is this with labels on replies only."""

    name = "causal_lm"

    def __init__(self, packed_attention: str = "positions") -> None:
        self.mode = packed_attention

    def units(self, batch: Batch) -> int:
        return batch.targets

    def __call__(self, model: torch.nn.Module, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        logits = forward_logits(model, batch, self.mode)
        targets = shifted_targets(batch.labels)
        loss = F.cross_entropy(
            logits.flatten(0, 1).float(), targets.flatten(), ignore_index=IGNORE, reduction="sum"
        )
        return loss, {}


class DPO:
    """Direct preference optimisation on (chosen, rejected) row pairs."""

    name = "dpo"

    def __init__(
        self,
        beta: float,
        reference: torch.nn.Module | None,
        packed_attention: str = "positions",
        nll_weight: float = 0.0,
    ) -> None:
        self.beta, self.reference, self.mode = beta, reference, packed_attention
        self.nll_weight = nll_weight

    def units(self, batch: Batch) -> int:
        return batch.input_ids.shape[0] // 2

    def row_logprobs(self, model: torch.nn.Module, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Per row: each labelled token's log-probability under ``model`` and the label mask."""
        return token_logprobs(forward_logits(model, batch, self.mode), batch.labels)

    def sequence_logprobs(self, model: torch.nn.Module, batch: Batch) -> torch.Tensor:
        return self.row_logprobs(model, batch)[0].sum(-1)

    def reference_logprobs(self, batch: Batch) -> torch.Tensor:
        if batch.ref is not None:
            return batch.ref.to(torch.float32)
        if self.reference is None:
            raise RuntimeError("DPO needs a reference model or precomputed reference log-probs")
        with torch.no_grad():
            return self.sequence_logprobs(self.reference, batch)

    def __call__(self, model: torch.nn.Module, batch: Batch) -> tuple[torch.Tensor, dict[str, Any]]:
        logp, mask = self.row_logprobs(model, batch)
        policy = logp.sum(-1)
        ref = self.reference_logprobs(batch).to(policy.device)
        chosen = self.beta * (policy[0::2] - ref[0::2])  # implicit rewards
        rejected = self.beta * (policy[1::2] - ref[1::2])
        loss = -F.logsigmoid(chosen - rejected).sum()
        metrics = {}
        if self.nll_weight:  # RPO (Pang et al. 2024): the chosen reply's mean token NLL, per pair
            nll = -(policy[0::2] / mask[0::2].sum(-1).clamp(min=1)).sum()
            loss = loss + self.nll_weight * nll
            metrics["chosen_nll"] = nll.detach()
        metrics |= {
            "reward_accuracy": (chosen > rejected).float().sum().detach(),
            "reward_margin": (chosen - rejected).sum().detach(),
            "reward_chosen": chosen.sum().detach(),
            "reward_rejected": rejected.sum().detach(),
        }
        return loss, metrics
