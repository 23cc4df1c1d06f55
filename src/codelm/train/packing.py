"""Packed rows, and the attention/position/label rules that keep packed documents apart.

Several documents share one row of `seq_len` tokens, so no compute is spent on padding. A packed
document must behave exactly as if it were alone: it may not attend to its neighbours, its positions
start at 0, and the loss never asks a document's last token to predict the next document's first.

What the installed transformers (5.23) does, checked for the four architectures (test_packing.py):
Llama, Gemma, StableLM and CodeGen all build their mask with `masking_utils.create_causal_mask`, which
detects packed documents from `position_ids` that restart at 0 -- but only when `attention_mask is
None` and no KV cache exists. A 2D attention mask, or `use_cache` left at its config default (True,
which creates a DynamicCache even in training), silently turns the detection off and documents leak
into each other. So `model_inputs` always passes restarting `position_ids`, `use_cache=False` and no 2D
mask ("positions" mode, O(L) memory, also what flash-attention's varlen path reads), or an explicit
additive 4D block-diagonal causal mask ("block_mask" mode, O(L^2), for attention implementations that
do not read positions; CodeGen's eager attention adds it to the scores before scaling, so the mask is
additive, not boolean). Padding is its own segment and never carries loss.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch

IGNORE = -100  # label of a token that carries no loss (CrossEntropyLoss's ignore_index)
PACKED_ATTENTION = ("positions", "block_mask")


@dataclass
class Row:
    """One training row: token ids, labels aligned to them (HF style), and a segment id per token.

    `labels[t]` is the target of the prediction made at position t-1, or IGNORE; `segments[t]` numbers
    the documents of the row from 0 in order. `ref` carries precomputed reference log-probs (DPO).
    """

    ids: np.ndarray
    labels: np.ndarray
    segments: np.ndarray
    ref: float | None = None

    def __len__(self) -> int:
        return len(self.ids)


def make_row(parts: Sequence[tuple[np.ndarray, np.ndarray | None]]) -> Row:
    """A row from (ids, labels-or-None) documents; a document's first token never carries loss."""
    ids = np.concatenate([np.asarray(p, dtype=np.int64) for p, _ in parts])
    labels = np.concatenate(
        [np.asarray(p if lab is None else lab, dtype=np.int64) for p, lab in parts]
    ).copy()
    segments = np.concatenate([np.full(len(p), i, dtype=np.int64) for i, (p, _) in enumerate(parts)])
    starts = np.cumsum([0, *[len(p) for p, _ in parts[:-1]]])
    labels[starts] = IGNORE
    return Row(ids, labels, segments)


def position_ids(segments: np.ndarray) -> np.ndarray:
    """Positions that restart at 0 at every segment change (one row or a batch of rows)."""
    segments = np.atleast_2d(segments)
    idx = np.broadcast_to(np.arange(segments.shape[1]), segments.shape)
    change = np.ones_like(segments, dtype=bool)
    change[:, 1:] = segments[:, 1:] != segments[:, :-1]
    start = np.maximum.accumulate(np.where(change, idx, 0), axis=1)
    return idx - start


def block_causal_mask(segments: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """[B, 1, L, L] mask where query q may see key k iff same segment and k <= q.

    Boolean (True = attend) when `dtype` is None, as SDPA takes it; additive (0 / most negative value of
    `dtype`) otherwise, as eager attention adds it to the scores (CodeGen, `attn_implementation=eager`).
    """
    L = segments.shape[1]
    same = segments[:, :, None] == segments[:, None, :]
    allowed = same & torch.ones(L, L, dtype=torch.bool, device=segments.device).tril()
    if dtype is None:
        return allowed[:, None]
    mask = torch.zeros(allowed.shape, dtype=dtype, device=segments.device)
    mask.masked_fill_(~allowed, torch.finfo(dtype).min)
    return mask[:, None]


@dataclass
class Batch:
    """A micro-batch of rows as tensors, padded to its longest row."""

    input_ids: torch.Tensor
    labels: torch.Tensor
    segments: torch.Tensor
    position_ids: torch.Tensor
    tokens: int  # real (non-padding) tokens
    ref: torch.Tensor | None = None

    def to(self, device: torch.device | str) -> Batch:
        moved = {
            f.name: (v.to(device) if isinstance(v := getattr(self, f.name), torch.Tensor) else v)
            for f in fields(self)
        }
        return Batch(**moved)

    @property
    def targets(self) -> int:
        return int((self.labels[:, 1:] != IGNORE).sum())


def collate(rows: Sequence[Row], pad_id: int) -> Batch:
    """Stack rows, padding each to the longest; padding is one more segment, with no loss."""
    L = max(len(r) for r in rows)
    ids = np.full((len(rows), L), pad_id, dtype=np.int64)
    labels = np.full((len(rows), L), IGNORE, dtype=np.int64)
    segments = np.empty((len(rows), L), dtype=np.int64)
    for i, r in enumerate(rows):
        n = len(r)
        ids[i, :n], labels[i, :n], segments[i, :n] = r.ids, r.labels, r.segments
        segments[i, n:] = (r.segments[-1] + 1) if n else 0
    refs = [r.ref for r in rows]
    ref = None if any(x is None for x in refs) else torch.tensor(refs, dtype=torch.float64)
    return Batch(
        input_ids=torch.from_numpy(ids),
        labels=torch.from_numpy(labels),
        segments=torch.from_numpy(segments),
        position_ids=torch.from_numpy(np.ascontiguousarray(position_ids(segments))),
        tokens=sum(len(r) for r in rows),
        ref=ref,
    )


def model_inputs(
    batch: Batch,
    mode: str = "positions",
    attn_implementation: str = "sdpa",
    dtype: torch.dtype = torch.float32,
) -> dict[str, Any]:
    """Forward kwargs under which packed documents cannot see each other (see the module docstring)."""
    if mode not in PACKED_ATTENTION:
        raise ValueError(f"packed attention mode must be one of {PACKED_ATTENTION}, got {mode!r}")
    kwargs: dict[str, Any] = {
        "input_ids": batch.input_ids,
        "position_ids": batch.position_ids,
        "use_cache": False,  # a cache (even an empty one) disables transformers' packed-sequence detection
        "attention_mask": None,  # so does any 2D mask
    }
    if mode == "block_mask":
        additive = attn_implementation == "eager"
        kwargs["attention_mask"] = block_causal_mask(batch.segments, dtype if additive else None)
    return kwargs
