"""The decode loop: left-padded batched prefill, then one token per step with a KV cache.

Rows (one per sample) leave the batch as soon as they finish, and their cache rows are dropped,
so a long sample does not make short ones pay. Events are yielded as text becomes safe to show,
which is what streaming and the server need; `run_to_end` collects them for batch use.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
from transformers import DynamicCache

from codelm.engine.sampling import RowSampler, choose_tokens
from codelm.engine.text import IncrementalDecoder, StopMatcher


@dataclass
class Row:
    """One sample being generated."""

    prompt_ids: list[int]
    max_new_tokens: int
    stop_ids: frozenset[int]
    sampler: RowSampler
    decoder: IncrementalDecoder
    matcher: StopMatcher
    token_ids: list[int] = field(default_factory=list)
    text: str = ""
    generated: int = 0
    finish_reason: str | None = None

    def emit(self, piece: str) -> str:
        self.text += piece
        return piece


def _step_row(row: Row, token: int) -> str:
    """Advance one row by one token; returns the text that became safe to emit."""
    row.generated += 1
    if token in row.stop_ids:
        row.finish_reason = "stop"
        return row.emit(row.matcher.flush())
    row.token_ids.append(token)
    row.sampler.observe(token)
    piece, hit = row.matcher.feed(row.decoder.push(token))
    if hit:
        row.finish_reason = "stop"
        return row.emit(piece)
    if row.generated >= row.max_new_tokens:
        row.finish_reason = "length"
        return row.emit(piece + row.matcher.flush())
    return row.emit(piece)


def generate_rows(model, rows: list[Row], pad_id: int) -> Iterator[tuple[int, str]]:
    """Run `rows` to completion, yielding (row index, new text) as it becomes safe."""
    device = next(model.parameters()).device
    lengths = [len(r.prompt_ids) for r in rows]
    width = max(lengths)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, width - lengths[i] :] = torch.tensor(r.prompt_ids, dtype=torch.long)
        mask[i, width - lengths[i] :] = 1
    ids, mask = ids.to(device), mask.to(device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    padded = min(lengths) != width
    cache = DynamicCache(config=model.config)
    with torch.inference_mode():
        out = model(
            input_ids=ids,
            attention_mask=mask if padded else None,  # no mask lets SDPA take its causal fast path
            position_ids=positions,
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=1,
        )
        next_pos = positions[:, -1:] + 1
        active = list(range(len(rows)))
        while True:
            tokens = choose_tokens(out.logits[:, -1, :], [rows[i].sampler for i in active])
            keep = []
            for j, i in enumerate(active):
                piece = _step_row(rows[i], tokens[j])
                if piece:
                    yield i, piece
                if rows[i].finish_reason is None:
                    keep.append(j)
            if not keep:
                return
            step = torch.tensor([tokens[j] for j in keep], dtype=torch.long, device=device)[:, None]
            if len(keep) < len(active):
                index = torch.tensor(keep, dtype=torch.long, device=device)
                cache.batch_select_indices(index)
                mask, next_pos = mask[index], next_pos[index]
                active = [active[j] for j in keep]
            if padded:
                mask = torch.cat([mask, mask.new_ones((len(active), 1))], dim=-1)
            out = model(
                input_ids=step,
                attention_mask=mask if padded else None,
                position_ids=next_pos,
                past_key_values=cache,
                use_cache=True,
            )
            next_pos = next_pos + 1
