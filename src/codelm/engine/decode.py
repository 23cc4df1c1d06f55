"""The decode loop's building blocks: prefill, step, drop finished rows, merge batches.

A `Batch` is a set of sample rows sharing one KV cache, left-padded with an attention mask and
per-row positions. Rows leave as soon as they finish (their cache rows are dropped), and a new batch
can be merged into a running one between steps: that is all continuous batching needs
(`codelm.engine.scheduler`). `generate_rows` runs one batch to completion; `generate_pool` runs any
number of rows offline, a bounded batch at a time, admitting waiting rows as others finish.
"""

from __future__ import annotations

import inspect
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

from codelm.engine.cpu import cache_dtype
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


class GrowingLayer(DynamicLayer):
    """A `DynamicLayer` whose keys and values are views of buffers with room to grow.

    transformers' layer appends each step's key and value with `torch.cat`, copying the whole cache
    every step: at batch 16 that was 30% of the torch profiler's op time in the tiny recipe's
    HumanEval decode (1.3M parameters, completions up to 384 tokens; 120 us per aten::cat), and a
    16-row step at 400 cached tokens takes ~10% less without it. Here a step writes into spare room in
    place, and the buffer is reallocated only when full (room for max(256, length / 8) more
    tokens, so the copies cost O(1) amortized per step). Whoever replaces `keys`/`values` outright
    (`select` trimming padding, `merge`) gets a fresh buffer on the next update.

    `dtype` stores the keys and values in that dtype (fp32 for bf16 models on the CPU, whose
    attention reads strided bf16 views slowly: `codelm.engine.cpu.cache_dtype`).
    """

    _kbuf: torch.Tensor | None = None
    _vbuf: torch.Tensor | None = None

    def __init__(self, dtype: torch.dtype | None = None) -> None:
        super().__init__()
        self.store_dtype = dtype

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if self.store_dtype is not None:
            key_states, value_states = key_states.to(self.store_dtype), value_states.to(self.store_dtype)
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        self.keys, self._kbuf = _append(self.keys, self._kbuf, key_states)
        self.values, self._vbuf = _append(self.values, self._vbuf, value_states)
        return self.keys, self.values

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        """Keep rows `indices`, with their spare room (one copy, as the plain layer makes)."""
        if self.get_seq_length() == 0:
            return
        n = self.keys.shape[-2]
        if _owns(self.keys, self._kbuf) and _owns(self.values, self._vbuf):
            self._kbuf, self._vbuf = self._kbuf[indices], self._vbuf[indices]
            self.keys, self.values = self._kbuf[:, :, :n], self._vbuf[:, :, :n]
        else:
            super().batch_select_indices(indices)

    def reset(self) -> None:
        self._kbuf = self._vbuf = None
        super().reset()


def _owns(view: torch.Tensor, buf: torch.Tensor | None) -> bool:
    """`view` is the leading part of `buf` along the sequence (what `_append` returns)."""
    return (
        buf is not None
        and view.dim() == 4
        and view.data_ptr() == buf.data_ptr()
        and view.shape[:2] == buf.shape[:2]
        and view.stride() == buf.stride()
    )


def _append(view: torch.Tensor, buf: torch.Tensor | None, new: torch.Tensor):
    """(`view` + `new` along the sequence as a view of a buffer, that buffer)."""
    n = view.shape[-2] if view.dim() == 4 else 0
    end = n + new.shape[-2]
    if not _owns(view, buf) or end > buf.shape[-2] or buf.dtype != new.dtype:
        b, h, _, d = new.shape
        buf = new.new_empty((b, h, end + max(256, end // 8), d))
        if n:
            buf[:, :, :n] = view
    buf[:, :, n:end] = new
    return buf[:, :, :end], buf


def new_cache(model) -> DynamicCache:
    """The model's dynamic cache, its full-attention layers growing in place (`GrowingLayer`), in
    the dtype `codelm.engine.cpu.cache_dtype` gives."""
    cache = DynamicCache(config=model.config)
    dtype = cache_dtype(model)
    cache.layers = [GrowingLayer(dtype) if type(layer) is DynamicLayer else layer for layer in cache.layers]
    return cache


@cache
def _cache_kwarg(model_class: type) -> str:
    """The KV-cache argument's name: `cache` since transformers 5.24, `past_key_values` before.

    Passing the old name to 5.24+ prints a FutureWarning on every forward call; passing the new one
    to an older release would land in **kwargs and be ignored, silently turning the cache off."""
    params = inspect.signature(model_class.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def left_pad(prompts: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, attention mask), each (len(prompts), longest): the prompts right-aligned, `pad_id` and
    mask 0 on the left."""
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for i, prompt in enumerate(prompts):
        ids[i, width - len(prompt) :] = torch.tensor(prompt, dtype=torch.long)
        mask[i, width - len(prompt) :] = 1
    return ids, mask


def prefill(model, rows: list[Row], pad_id: int) -> Batch:
    """Run the prompts of `rows` (left-padded) and return the batch ready for its first choice."""
    cache, mask, padded, next_pos, logits = run_prompts(model, [r.prompt_ids for r in rows], pad_id)
    return Batch(model, rows, cache, mask, next_pos, logits, padded)


def run_prompts(model, prompts: list[list[int]], pad_id: int):
    """Prefill token-id prompts, left-padded: (cache, mask, padded, next positions (rows, 1), logits
    of each row's last position (rows, vocab))."""
    device = next(model.parameters()).device
    ids, mask = left_pad(prompts, pad_id)
    padded = not bool(mask[:, 0].all())
    ids, mask = ids.to(device), mask.to(device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    cache = new_cache(model)
    with torch.inference_mode():
        out = model(
            input_ids=ids,
            attention_mask=mask if padded else None,
            position_ids=positions,
            use_cache=True,
            logits_to_keep=1,
            **{_cache_kwarg(type(model)): cache},
        )
    return cache, mask, padded, positions[:, -1:] + 1, out.logits[:, -1, :]


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
    model = batch.model
    fast = getattr(model, "codelm_step", None)  # engine.llama_step, set at load where it serves
    # hooks on the model's forward (instrumentation, tests steering a random model) see every step
    hooked = bool(model._forward_hooks or model._forward_pre_hooks)
    with torch.inference_mode():
        if fast is not None and not hooked:
            batch.logits = fast(step, batch.next_pos, batch.cache, batch.mask if batch.padded else None)
        else:
            out = batch.model(
                input_ids=step,
                attention_mask=batch.mask if batch.padded else None,
                position_ids=batch.next_pos,
                use_cache=True,
                **{_cache_kwarg(type(batch.model)): batch.cache},
            )
            batch.logits = out.logits[:, -1, :]
    batch.next_pos.add_(1)


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


REFILL_SHARE = 0.25  # generate_pool admits waiting rows once this share of the batch is free


def generate_pool(model, rows: list[Row], pad_id: int, max_rows: int) -> Iterator[tuple[int, str]]:
    """Run `rows` (in the given order) to completion, at most `max_rows` at a time, yielding
    (row index, new text).

    Waiting rows join the running batch (`merge`) as soon as a quarter of it is free, instead of
    the batch draining to its longest row: in the tiny recipe's HumanEval (164 prompts, greedy, up
    to 384 tokens, batches of 16) a trained model's completions averaged 157 tokens but most
    batches held one that ran to the limit, so fixed batches took 4,224 steps for what 16 busy rows
    do in about 1,600. Admitting in groups amortizes a merge's cache copy.
    """
    position = {row: i for i, row in enumerate(rows)}
    waiting = deque(rows)
    batch: Batch | None = None
    refill = max(1, int(max_rows * REFILL_SHARE))
    while waiting or (batch is not None and batch.rows):
        running = len(batch.rows) if batch is not None else 0
        room = max_rows - running
        if waiting and (running == 0 or room >= min(refill, len(waiting))):
            fresh = prefill(model, [waiting.popleft() for _ in range(min(room, len(waiting)))], pad_id)
            batch = fresh if running == 0 else merge(batch, fresh)
        for row, piece in choose_and_advance(batch):
            yield position[row], piece
