"""Learning-rate schedules: linear warmup, then cosine or linear decay to a floor (or constant).

The multiplier is a pure function of the optimizer step, wrapped in a `LambdaLR` so the scheduler
checkpoints like any other; resuming at step s therefore continues the curve exactly. Decay ends at
`max_steps` on `min_lr_ratio * lr`, the floor that Chinchilla-style runs and the code-model recipes
use (10% of peak is the common choice).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

DECAYS = ("cosine", "linear", "constant")


def lr_multiplier(
    step: int, *, warmup_steps: int, max_steps: int, decay: str = "cosine", min_lr_ratio: float = 0.1
) -> float:
    """Multiplier of the peak learning rate for the update at `step` (0-based)."""
    if decay not in DECAYS:
        raise ValueError(f"decay must be one of {DECAYS}, got {decay!r}")
    if warmup_steps and step < warmup_steps:
        return (step + 1) / warmup_steps
    if decay == "constant":
        return 1.0
    span = max(1, max_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    shape = 0.5 * (1.0 + math.cos(math.pi * progress)) if decay == "cosine" else 1.0 - progress
    return min_lr_ratio + (1.0 - min_lr_ratio) * shape


def make_scheduler(
    optimizer: torch.optim.Optimizer, *, warmup_steps: int, max_steps: int, decay: str, min_lr_ratio: float
) -> torch.optim.lr_scheduler.LambdaLR:
    """A LambdaLR following `lr_multiplier`; call `.step()` once per optimizer update."""
    fn: Callable[[int], float] = lambda s: lr_multiplier(  # noqa: E731
        s, warmup_steps=warmup_steps, max_steps=max_steps, decay=decay, min_lr_ratio=min_lr_ratio
    )
    return torch.optim.lr_scheduler.LambdaLR(optimizer, fn)
