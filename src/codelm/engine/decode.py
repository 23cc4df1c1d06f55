"""The decode loop's building blocks: prefill, step, drop finished rows, merge batches.

A `Batch` is a set of sample rows sharing one KV cache, left-padded with an attention mask and
per-row positions. Rows leave as soon as they finish (their cache rows are dropped), and a new batch
can be merged into a running one between steps: that is all continuous batching needs
(`codelm.engine.scheduler`). `generate_rows` runs one batch to completion for offline use.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache

import torch
from transformers import DynamicCache

from codelm.engine.params import TokenLogprob
from codelm.engine.sampling import RowSampler, choose_tokens
from codelm.engine.text import IncrementalDecoder, StopMatcher
from codelm.engine.thinking import Thinking


@dataclass(eq=False)  # rows are compared and hashed by identity
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
    logprobs: list[TokenLogprob] | None = None  # filled when the request asks for logprobs
    logprobs_sent: int = 0  # how many of them the scheduler has already put in events
    index: int = 0  # which of its request's n samples
    owner: object = None  # whoever waits for this row's text (the scheduler's ticket)
    skip_ids: frozenset[int] = frozenset()  # special tokens kept out of the text (skip_special_tokens)
    thinking: Thinking | None = None  # reasoning models: split and budget of the thinking block

    def emit(self, piece: str) -> str:
        self.text += piece
        return piece

    def split(self, piece: str) -> tuple[str, str]:
        """(reasoning, answer) parts of released text; all answer unless reasoning is separated."""
        return self.thinking.split(piece) if self.thinking else ("", piece)

    def split_tail(self) -> tuple[str, str]:
        """What the split still holds when the row has ended."""
        return self.thinking.flush() if self.thinking else ("", "")

    def take_logprobs(self) -> list[TokenLogprob] | None:
        """Log-probabilities not yet sent with an event (None when not asked for)."""
        if self.logprobs is None:
            return None
        new = self.logprobs[self.logprobs_sent :]
        self.logprobs_sent = len(self.logprobs)
        return new

    def finish(self, reason: str) -> str:
        """End the row now (cancel, deadline); returns held-back text, if any is to be shown."""
        self.finish_reason = reason
        return self.emit(self.matcher.flush()) if reason == "length" else ""


def step_row(row: Row, token: int) -> str:
    """Advance one row by one token; returns the text that became safe to emit."""
    row.generated += 1
    if token in row.stop_ids:
        row.finish_reason = "stop"
        return row.emit(row.matcher.flush())
    row.token_ids.append(token)
    row.sampler.observe(token)
    skipped = token in row.skip_ids
    decoded = "" if skipped else row.decoder.push(token)
    if row.thinking is not None:
        row.thinking.observe(decoded)
    piece, hit = ("", False) if skipped else row.matcher.feed(decoded)
    if hit:
        row.finish_reason = "stop"
        return row.emit(piece)
    if row.generated >= row.max_new_tokens:
        row.finish_reason = "length"
        return row.emit(piece + row.matcher.flush())
    return row.emit(piece)


@dataclass
class Batch:
    model: torch.nn.Module
    rows: list[Row]
    cache: DynamicCache
    mask: torch.Tensor  # (rows, kv length), 0 on left padding; only kept up to date when padded
    next_pos: torch.Tensor  # (rows, 1) position of the next input token
    logits: torch.Tensor  # (rows, vocab) for the next choice
    padded: bool  # False: no padding anywhere, so no mask is passed (SDPA's causal fast path)


@cache
def _cache_kwarg(model_class: type) -> str:
    """The KV-cache argument's name: `cache` since transformers 5.24, `past_key_values` before.

    Passing the old name to 5.24+ prints a FutureWarning on every forward call; passing the new one
    to an older release would land in **kwargs and be ignored, silently turning the cache off."""
    params = inspect.signature(model_class.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def prefill(model, rows: list[Row], pad_id: int) -> Batch:
    """Run the prompts of `rows` (left-padded) and return the batch ready for its first choice."""
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
            attention_mask=mask if padded else None,
            position_ids=positions,
            use_cache=True,
            logits_to_keep=1,
            **{_cache_kwarg(type(model)): cache},
        )
    return Batch(model, rows, cache, mask, positions[:, -1:] + 1, out.logits[:, -1, :], padded)


def choose_and_advance(batch: Batch) -> Iterator[tuple[Row, str]]:
    """Choose every row's next token, advance the rows, drop the finished ones, run the next step."""
    tokens, chosen = choose_tokens(batch.logits, [r.sampler for r in batch.rows])
    chosen = _force(batch.rows, tokens, chosen)
    scored = _logprobs(batch, tokens)
    keep = []
    for j, row in enumerate(batch.rows):
        kept = len(row.token_ids)
        piece = step_row(row, tokens[j])
        if j in scored and len(row.token_ids) > kept:  # the token is part of the output
            scored[j].in_text = tokens[j] not in row.skip_ids
            row.logprobs.append(scored[j])
        if piece:
            yield row, piece
        if row.finish_reason is None:
            keep.append(j)
    if not keep:
        batch.rows = []
        return
    if len(keep) < len(batch.rows):
        select(batch, keep)
        chosen = chosen[torch.tensor(keep, dtype=torch.long, device=chosen.device)]
    forward(batch, chosen)


def _force(rows: list[Row], tokens: list[int], chosen: torch.Tensor) -> torch.Tensor:
    """Write the tokens a thinking budget forces (the end marker) over the sampled ones."""
    forced = {}
    for j, row in enumerate(rows):
        token = row.thinking.next_forced() if row.thinking is not None else None
        if token is not None:
            forced[j] = tokens[j] = token
    if not forced:
        return chosen
    chosen = chosen.clone()
    index = torch.tensor(list(forced), dtype=torch.long, device=chosen.device)
    chosen[index] = torch.tensor(list(forced.values()), dtype=chosen.dtype, device=chosen.device)
    return chosen


def _logprobs(batch: Batch, tokens: list[int]) -> dict[int, TokenLogprob]:
    """Log-probabilities of the chosen tokens for the rows that asked, from the raw logits."""
    want = [j for j, r in enumerate(batch.rows) if r.logprobs is not None]
    if not want:
        return {}
    logp = torch.log_softmax(batch.logits[want].float(), dim=-1)
    out = {}
    for i, j in enumerate(want):
        k = batch.rows[j].sampler.params.logprobs or 0
        top = []
        if k:
            values, ids = torch.topk(logp[i], k)
            top = list(zip(ids.tolist(), values.tolist(), strict=True))
        out[j] = TokenLogprob(tokens[j], float(logp[i, tokens[j]]), top)
    return out


def forward(batch: Batch, tokens: torch.Tensor) -> None:
    """Feed every row its next token (rows,) and store the logits for the next choice."""
    step = tokens[:, None]
    if batch.padded:
        batch.mask = torch.cat([batch.mask, batch.mask.new_ones((len(batch.rows), 1))], dim=-1)
    with torch.inference_mode():
        out = batch.model(
            input_ids=step,
            attention_mask=batch.mask if batch.padded else None,
            position_ids=batch.next_pos,
            use_cache=True,
            **{_cache_kwarg(type(batch.model)): batch.cache},
        )
    batch.next_pos.add_(1)
    batch.logits = out.logits[:, -1, :]


def select(batch: Batch, keep: list[int]) -> None:
    """Keep only rows `keep` (cache, mask, positions), then drop all-padding columns on the left."""
    index = torch.tensor(keep, dtype=torch.long, device=batch.mask.device)
    batch.cache.batch_select_indices(index)
    batch.rows = [batch.rows[j] for j in keep]
    batch.mask, batch.next_pos, batch.logits = batch.mask[index], batch.next_pos[index], batch.logits[index]
    if batch.padded:
        used = batch.mask.any(dim=0).nonzero()
        first = int(used[0]) if len(used) else 0
        if first:
            batch.mask = batch.mask[:, first:]
            for layer in batch.cache.layers:
                layer.keys, layer.values = layer.keys[..., first:, :], layer.values[..., first:, :]


def _pad_left(x: torch.Tensor, width: int, dim: int) -> torch.Tensor:
    missing = width - x.shape[dim]
    if missing == 0:
        return x
    shape = list(x.shape)
    shape[dim] = missing
    return torch.cat([x.new_zeros(shape), x], dim=dim)


def _mask(batch: Batch) -> torch.Tensor:
    """The attention mask over the whole cache (an unpadded batch does not maintain one)."""
    if batch.padded:
        return batch.mask
    return batch.mask.new_ones((len(batch.rows), batch.cache.get_seq_length()))


def merge(a: Batch, b: Batch) -> Batch:
    """One batch holding the rows of `a` then `b`; shorter caches are left-padded and masked."""
    mask_a, mask_b = _mask(a), _mask(b)
    width = max(mask_a.shape[1], mask_b.shape[1])
    for la, lb in zip(a.cache.layers, b.cache.layers, strict=True):
        la.keys = torch.cat([_pad_left(la.keys, width, 2), _pad_left(lb.keys, width, 2)], dim=0)
        la.values = torch.cat([_pad_left(la.values, width, 2), _pad_left(lb.values, width, 2)], dim=0)
    return Batch(
        a.model,
        a.rows + b.rows,
        a.cache,
        torch.cat([_pad_left(mask_a, width, 1), _pad_left(mask_b, width, 1)], dim=0),
        torch.cat([a.next_pos, b.next_pos], dim=0),
        torch.cat([a.logits, b.logits], dim=0),
        True,
    )


def generate_rows(model, rows: list[Row], pad_id: int) -> Iterator[tuple[int, str]]:
    """Run `rows` to completion, yielding (row index, new text) as it becomes safe."""
    position = {row: i for i, row in enumerate(rows)}
    batch = prefill(model, rows, pad_id)
    while batch.rows:
        for row, piece in choose_and_advance(batch):
            yield position[row], piece
