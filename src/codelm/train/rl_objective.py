"""The rl stage's arithmetic: advantages, penalties, loss weights and the clipped objective.

Choices, with where they come from:

* group-relative advantages A = (r - mean(group)) / std(group): GRPO, DeepSeekMath (arXiv
  2402.03300) eq. 3 and section 4.1.2 (std unbiased, +1e-4, as TRL's GRPOTrainer); with
  `scale_rewards: false` A = r - mean (Dr. GRPO, arXiv 2503.20783 section 3.1: the std term biases
  towards too easy and too hard questions);
* clipped surrogate min(ratio A, clip(ratio, 1 - clip_low, 1 + clip_high) A), ratio against the
  policy that sampled: PPO via GRPO eq. 3; `clip_high` > `clip_low` is DAPO's clip-higher (arXiv
  2503.14476 section 3.1, 0.2 / 0.28) against entropy collapse;
* KL to the frozen starting model with the unbiased k3 estimator exp(ref - logp) - (ref - logp) - 1
  (GRPO eq. 4), weight `kl_coef` (GRPO 0.04); DAPO section 2.3 and Dr. GRPO drop it: at 0 no
  reference model is loaded;
* loss normalisation `loss_norm`: `sequence` averages tokens within each completion, then
  completions (GRPO eq. 3); `token` averages over all tokens of the batch (DAPO section 3.3: long
  completions weigh by their length); `constant` divides token sums by max_new_tokens per completion
  (Dr. GRPO section 3.1: no length bias at all);
* `filter_equal_groups`: groups whose rewards are all equal carry no advantage and are left out of
  the loss and its normaliser (DAPO's dynamic sampling, section 3.2; DAPO also over-samples to refill
  the batch, which this does not: the step trains on fewer groups and says how many it dropped);
* overlong: `overlong_buffer` N adds DAPO's soft overlong punishment (section 3.4, eq. 13), a
  penalty growing linearly to `overlong_penalty` over the last N tokens before max_new_tokens;
  `mask_truncated` takes completions cut at max_new_tokens out of the loss (DAPO's overlong
  filtering);
* `epochs` (GRPO's mu, algorithm 1): optimizer steps on the same rollout; the log-probs of the
  sampling policy are kept for the ratio (with one epoch the ratio is 1 and they are not needed).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import torch

from codelm.train.objectives import forward_logits, shifted_targets
from codelm.train.packing import IGNORE, Batch, Row, collate


@dataclass
class RLBatch:
    """A micro-batch of completions: the rows plus what the clipped objective needs per row."""

    rows: Batch
    advantages: torch.Tensor  # [B]
    token_weight: torch.Tensor  # [B]: each completion token's weight in the loss sum (0: filtered)
    old_logp: torch.Tensor | None  # [B, L] log-probs under the sampling policy (epochs > 1)
    ref_logp: torch.Tensor | None  # [B, L] log-probs under the frozen reference (kl_coef > 0)

    @property
    def tokens(self) -> int:
        return self.rows.tokens

    def to(self, device: torch.device | str) -> RLBatch:
        moved = {f.name: getattr(self, f.name) for f in fields(self)}
        return RLBatch(**{k: (v.to(device) if v is not None else None) for k, v in moved.items()})


class GRPOLoss:
    """The clipped, KL-regularised policy-gradient loss as a weighted token sum (see the docstring)."""

    name = "grpo"

    def __init__(self, clip_low: float, clip_high: float, kl_coef: float, packed_attention: str) -> None:
        self.clip_low, self.clip_high, self.kl_coef, self.mode = (
            clip_low,
            clip_high,
            kl_coef,
            packed_attention,
        )

    def __call__(
        self, model: torch.nn.Module, batch: RLBatch
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        logits = forward_logits(model, batch.rows, self.mode).float()
        targets = shifted_targets(batch.rows.labels)
        mask = targets != IGNORE
        logp_all = torch.log_softmax(logits, dim=-1)
        logp = logp_all.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        old = batch.old_logp if batch.old_logp is not None else logp.detach()
        ratio = torch.exp(logp - old)
        adv = batch.advantages[:, None].to(logp.dtype)
        clipped = torch.clamp(ratio, 1 - self.clip_low, 1 + self.clip_high)
        per_token = -torch.minimum(ratio * adv, clipped * adv)
        weight = batch.token_weight[:, None].to(logp.dtype) * mask
        metrics = {}
        if self.kl_coef:
            delta = batch.ref_logp - logp
            kl = torch.exp(delta) - delta - 1
            per_token = per_token + self.kl_coef * kl
            metrics["kl"] = (kl.detach() * weight).sum()
        was_clipped = ((ratio < 1 - self.clip_low) & (adv < 0)) | ((ratio > 1 + self.clip_high) & (adv > 0))
        entropy = -(logp_all.detach().exp() * logp_all.detach()).sum(-1)
        metrics["clip_fraction"] = (was_clipped.float() * weight).sum()
        metrics["entropy"] = (entropy * weight).sum()
        return (per_token * weight).sum(), metrics


@dataclass
class Sample:
    """One completion of a rollout (plain lists: it is saved with a checkpoint mid-rollout)."""

    prompt_ids: list[int]
    completion_ids: list[int]
    reward: float
    passed: float
    truncated: bool
    old_logp: list[float] | None = None
    ref_logp: list[float] | None = None


def advantages(rewards: np.ndarray, group: int, scale: bool) -> np.ndarray:
    """Group-relative advantages of rewards laid out group after group (GRPO eq. 3 / Dr. GRPO)."""
    r = rewards.reshape(-1, group)
    centred = r - r.mean(axis=1, keepdims=True)
    if scale:
        centred = centred / (r.std(axis=1, ddof=1, keepdims=True) + 1e-4)
    return centred.reshape(-1)


def overlong_penalty(lengths: np.ndarray, max_len: int, buffer: int, penalty: float) -> np.ndarray:
    """DAPO eq. 13: 0 up to max_len - buffer, then falling linearly to -penalty at max_len."""
    if buffer <= 0:
        return np.zeros(len(lengths))
    start = max_len - buffer
    return -penalty * np.clip((lengths - start) / buffer, 0.0, 1.0)


def rows_of(samples: list[Sample]) -> list[Row]:
    rows = []
    for s in samples:
        ids = np.asarray(s.prompt_ids + s.completion_ids, dtype=np.int64)
        labels = ids.copy()
        labels[: len(s.prompt_ids)] = IGNORE
        rows.append(Row(ids, labels, np.zeros(len(ids), dtype=np.int64)))
    return rows


def per_token(rows: Batch, values: list[list[float]]) -> torch.Tensor:
    """Per-completion-token values placed where the objective's targets are."""
    mask = shifted_targets(rows.labels) != IGNORE
    out = torch.zeros(mask.shape, dtype=torch.float32)
    out[mask] = torch.tensor([v for vs in values for v in vs], dtype=torch.float32)
    return out


def completion_logprobs(
    model: torch.nn.Module, samples: list[Sample], pad_id: int, micro: int, mode: str, device
) -> list[list[float]]:
    """Log-prob of every completion token under `model`, in micro-batches, without gradients."""
    out: list[list[float]] = []
    for i in range(0, len(samples), micro):
        chunk = samples[i : i + micro]
        batch = collate(rows_of(chunk), pad_id).to(device)
        with torch.no_grad():
            logits = forward_logits(model, batch, mode).float()
            targets = shifted_targets(batch.labels)
            logp = torch.log_softmax(logits, -1).gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        mask = targets != IGNORE
        out.extend(logp[r][mask[r]].cpu().tolist() for r in range(len(chunk)))
    return out


@dataclass
class RLSettings:
    """What the producer needs from the config, as plain values."""

    group: int
    prompts_per_step: int
    max_new_tokens: int
    temperature: float
    top_p: float
    prompt_format: str
    epochs: int
    kl: bool
    loss_norm: str
    scale_rewards: bool
    filter_equal_groups: bool
    overlong_buffer: int
    overlong_penalty: float
    mask_truncated: bool
    generation_batch: int
    seed: int


def rollout_fields(rollout: list[Sample], s: RLSettings) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
    """Advantages, per-completion loss weights (0: left out) and the rollout's logged statistics."""
    rewards = np.array([x.reward for x in rollout], dtype=np.float64)
    lengths = np.array([len(x.completion_ids) for x in rollout], dtype=np.float64)
    rewards = rewards + overlong_penalty(lengths, s.max_new_tokens, s.overlong_buffer, s.overlong_penalty)
    adv = advantages(rewards, s.group, s.scale_rewards)
    keep = np.ones(len(rollout))
    groups = rewards.reshape(-1, s.group)
    equal = (groups.max(axis=1) - groups.min(axis=1)) == 0
    if s.filter_equal_groups:
        keep *= np.repeat(~equal, s.group)
    truncated = np.array([x.truncated for x in rollout])
    if s.mask_truncated:
        keep *= ~truncated
    passed = np.array([x.passed for x in rollout])
    stats = {
        "reward_mean": float(rewards.mean()),
        "reward_std": float(rewards.std()),
        "pass_rate": float(passed.mean()) if not np.isnan(passed).any() else None,
        "completion_len": float(lengths.mean()),
        "truncated": float(truncated.mean()),
        "equal_groups": float(equal.mean()),
        "trained_share": float(keep.mean()),
    }
    return adv, keep, {k: v for k, v in stats.items() if v is not None}


def loss_weights(keep: np.ndarray, lengths: np.ndarray, norm: str, max_len: int) -> tuple[np.ndarray, float]:
    """Each completion's per-token weight and the loss's normaliser (the loop divides the weighted
    token sum by it): token = DAPO, sequence = GRPO, constant = Dr. GRPO (see the module docstring)."""
    if norm == "token":
        return keep, float((keep * lengths).sum())
    if norm == "sequence":
        return keep / np.maximum(lengths, 1), float(keep.sum())
    return keep / max_len, float(keep.sum())
