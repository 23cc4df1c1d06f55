"""The llama.cpp backend: `--model FILE.gguf` runs codelm's engine on llama.cpp's CPU kernels.

    engine = Engine.from_pretrained("tiny.gguf")   # a file from `codelm export gguf`
    engine.infill("def add(a, b):\\n    return ", "\\n").text

llama.cpp (through llama-cpp-python, the optional extra `codelm[llamacpp]`) only computes logits.
Everything a user sees is codelm's: the checkpoint's own tokenizer and family (stored in the GGUF
file by the exporter), FIM and chat rendering, sampling, stop tokens and strings, thinking budgets,
logprobs and streaming, through the same `Row`s the PyTorch engine decodes.

Rows are decoded together, as `llama-server -np N` does: one llama.cpp context holds up to N
sequences (one per row), and each step is one `llama_decode` of a batch holding the next token of
every decoding row plus chunks of the prompts of newly admitted rows, so `codelm serve --model
x.gguf` continuously batches concurrent requests (codelm.engine.scheduler) instead of queueing them.
The context keeps one KV stream per sequence (llama.cpp's non-unified cache): a token attends over
its own sequence only, where a unified cache makes every token of the batch attend over every
sequence's cells. llama.cpp then splits a batch into equal-length runs of consecutive sequence ids,
so tokens go in sequence-id order and new rows take the lowest free ids.

A finished or cancelled row hands its sequence back at once. Its cells keep what it evaluated, as
a prompt cache: a new row takes the free sequence sharing the longest prefix with its prompt and
drops the rest of that sequence (`llama_memory_seq_rm`), so a repeated prompt or the next turn of a
chat skips most of its prefill. The n samples of one request evaluate their prompt once: the other
samples wait for the first, then copy its sequence (`llama_memory_seq_cp`) and its logits.
"""

from __future__ import annotations

import ctypes
import json
import tempfile
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

from codelm.engine import decode
from codelm.engine.decode import Row, step_row
from codelm.engine.engine import Engine
from codelm.engine.loader import Loaded
from codelm.engine.sampling import choose_tokens
from codelm.errors import CheckpointError, CodelmError

META = "codelm."
STEP_TOKENS = 512  # tokens per llama_decode call: decoding rows first, then chunks of new prompts
KV_BUDGET_BYTES = 2 << 30  # KV cache (f16) the sequences may take together; fewer sequences past it
SHARE_MIN_TOKENS = 16  # a sample copies its sibling's prompt cache when that saves this much prefill


def _llama_cpp():
    try:
        import llama_cpp
    except ImportError:
        raise CodelmError(
            "a .gguf model needs llama-cpp-python: pip install 'codelm[llamacpp]' "
            "(it builds llama.cpp from source, a few minutes)"
        ) from None
    return llama_cpp


def read_metadata(path: Path) -> dict[str, str]:
    """The `codelm.*` strings the exporter stored (tokenizer, config, family)."""
    import gguf

    try:
        reader = gguf.GGUFReader(str(path))
    except (ValueError, OSError) as exc:
        raise CheckpointError(f"{path} is not a readable GGUF file: {exc}") from exc
    out = {}
    for name, fieldv in reader.fields.items():
        if name.startswith(META):
            out[name[len(META) :]] = bytes(fieldv.parts[fieldv.data[0]]).decode("utf-8")
    if "tokenizer_json" not in out or "config" not in out:
        raise CheckpointError(
            f"{path} has no codelm tokenizer metadata: export it with `codelm export gguf` "
            "(GGUF files from other converters are not supported yet)"
        )
    return out


def kv_bytes_per_token(config: dict) -> int:
    """Bytes of f16 keys and values one token takes in the cache, from the HF config."""
    layers = int(config.get("num_hidden_layers") or config.get("n_layer") or 1)
    heads = int(config.get("num_attention_heads") or config.get("n_head") or 1)
    kv_heads = int(config.get("num_key_value_heads") or heads)
    hidden = int(config.get("hidden_size") or config.get("n_embd") or 64 * heads)
    head_dim = int(config.get("head_dim") or hidden // heads)
    return 2 * 2 * layers * kv_heads * head_dim


def common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


_BACKEND_READY = False


class LlamaCppModel:
    """One llama.cpp context of `n_seq` sequences of up to `n_ctx` tokens each.

    It owns the sequences: `acquire` hands out a free one (the one whose cached tokens share the
    longest prefix with a prompt), `release` takes it back; `decode` runs one batch and returns the
    logits of the tokens that asked for them.
    """

    def __init__(self, path: Path, n_ctx: int, threads: int | None = None, n_seq: int = 1) -> None:
        import os

        llama_cpp = _llama_cpp()
        from llama_cpp import _internals
        from llama_cpp._logger import set_verbose

        global _BACKEND_READY
        set_verbose(False)
        if not _BACKEND_READY:
            llama_cpp.llama_backend_init()
            _BACKEND_READY = True
        n_seq = max(1, min(n_seq, STEP_TOKENS, int(llama_cpp.llama_max_parallel_sequences())))
        try:
            self._model = _internals.LlamaModel(
                path_model=str(path), params=llama_cpp.llama_model_default_params(), verbose=False
            )
        except ValueError as exc:  # llama-cpp-python's "Failed to load model from file"
            raise CheckpointError(f"llama.cpp could not load {path}: {exc}") from exc
        params = llama_cpp.llama_context_default_params()
        cores = os.cpu_count() or 1
        params.n_ctx = n_ctx * n_seq
        params.n_batch = params.n_ubatch = STEP_TOKENS
        params.n_seq_max = n_seq
        params.n_threads = threads or max(cores // 2, 1)  # llama-cpp-python's defaults
        params.n_threads_batch = threads or cores
        params.kv_unified = False  # one stream per sequence: attention over its own cells only
        params.no_perf = True
        try:
            self._ctx = _internals.LlamaContext(model=self._model, params=params, verbose=False)
        except ValueError as exc:
            raise CodelmError(
                f"llama.cpp could not create a context of {n_seq} x {n_ctx} tokens: {exc}"
            ) from exc
        # freed while the interpreter is still whole: llama-cpp-python's own __del__ at exit prints
        # a TypeError traceback (its C bindings are gone by then)
        weakref.finalize(self, _close, self._ctx, self._model)
        self.ctx, self.mem = self._ctx.ctx, self._ctx.memory
        self.path = path
        self.n_seq = int(llama_cpp.llama_n_seq_max(self.ctx))
        self.n_ctx = min(n_ctx, int(llama_cpp.llama_n_ctx_seq(self.ctx)))  # tokens per sequence
        self.n_vocab = int(llama_cpp.llama_vocab_n_tokens(self._model.vocab))
        self.free = set(range(self.n_seq))
        self.cached: list[list[int]] = [[] for _ in range(self.n_seq)]  # token ids each sequence holds
        self.owner: dict[int, Row | None] = {}  # sequences in use -> their row
        self.evaluated = 0  # tokens run through llama_decode, for tests and benches
        self._lib = llama_cpp
        self._decode, self._get_logits = llama_cpp.llama_decode, llama_cpp.llama_get_logits
        self._seq_rm, self._seq_cp = llama_cpp.llama_memory_seq_rm, llama_cpp.llama_memory_seq_cp
        # the batch arrays are numpy buffers llama.cpp reads in place; each token has one sequence id
        cap = STEP_TOKENS
        self.tok = np.zeros(cap, np.int32)
        self.pos = np.zeros(cap, np.int32)
        self.seq = np.zeros(cap, np.int32)
        self.want = np.zeros(cap, np.int8)
        self._n_seq_id = np.ones(cap, np.int32)
        p_i32 = ctypes.POINTER(ctypes.c_int32)
        base = self.seq.ctypes.data
        self._seq_ptrs = (p_i32 * cap)(*[ctypes.cast(base + 4 * i, p_i32) for i in range(cap)])
        self._batch = llama_cpp.llama_batch(
            n_tokens=0,
            token=self.tok.ctypes.data_as(p_i32),
            embd=None,
            pos=self.pos.ctypes.data_as(p_i32),
            n_seq_id=self._n_seq_id.ctypes.data_as(p_i32),
            seq_id=self._seq_ptrs,
            logits=self.want.ctypes.data_as(ctypes.POINTER(ctypes.c_int8)),
        )

    # -- sequences -------------------------------------------------------------------------------
    def acquire(self, prompt: list[int], row: Row | None = None) -> tuple[int, int] | None:
        """(sequence, tokens of `prompt` already cached in it), or None when all are taken.

        The free sequence whose cache covers at least half of `prompt` with the longest prefix (as
        llama-server picks a slot by prompt similarity 0.5); failing that, the one holding the fewest
        tokens, so that a new prompt takes an empty sequence before it overwrites another prompt's
        cache (taking the lowest id instead, the first burst of 16 requests after a warm-up of 2
        re-evaluated the 2 cached prompts: 14% more prefill). Ties go to the lowest id: consecutive
        ids batch together. At least the last prompt token is left to evaluate: its logits are needed."""
        if not self.free:
            self._reclaim()
            if not self.free:
                return None
        best, keep, rank = -1, 0, None
        for s in self.free:
            n = common_prefix(self.cached[s], prompt)
            r = (n if 2 * n >= len(prompt) else 0, -len(self.cached[s]), -s)
            if rank is None or r > rank:
                best, keep, rank = s, n, r
        keep = min(keep, len(prompt) - 1)
        self.free.discard(best)
        self.owner[best] = row
        self.trim(best, keep)
        return best, keep

    def trim(self, s: int, keep: int) -> None:
        """Drop sequence `s`'s tokens from position `keep` on."""
        if keep < len(self.cached[s]) and not self._seq_rm(self.mem, s, keep, -1):
            self._seq_rm(self.mem, s, -1, -1)  # a partial removal can fail; a whole one cannot
            keep = 0
        del self.cached[s][keep:]

    def release(self, s: int) -> None:
        """Hand sequence `s` back; its cells stay as a prefix cache for the next prompt."""
        self.owner.pop(s, None)
        self.free.add(s)

    def _reclaim(self) -> None:
        """Take back sequences whose row ended without being released (a failed step)."""
        for s, row in list(self.owner.items()):
            if row is not None and row.finish_reason is not None:
                self.release(s)

    def copy(self, src: int, dst: int) -> None:
        """Sequence `dst` becomes a copy of `src` (llama.cpp copies the stream's buffer)."""
        self._seq_cp(self.mem, src, dst, -1, -1)
        self.cached[dst] = list(self.cached[src])

    # -- evaluation ------------------------------------------------------------------------------
    def decode(self, n: int) -> np.ndarray:
        """Run the first `n` entries of the batch arrays; logits (outputs, vocab) of the entries
        with `want` set, in batch order. A view into llama.cpp's buffer: valid until the next call."""
        self._batch.n_tokens = n
        self.evaluated += n
        rc = self._decode(self.ctx, self._batch)
        if rc != 0:  # what the failed batch left in its sequences is unknown: drop them whole
            for s in set(self.seq[:n].tolist()):
                self._seq_rm(self.mem, s, -1, -1)
                self.cached[s] = []
            raise CodelmError(f"llama_decode failed (code {rc}) on a batch of {n} tokens")
        outputs = int(self.want[:n].sum())
        return np.ctypeslib.as_array(self._get_logits(self.ctx), shape=(outputs, self.n_vocab))

    def logits_after(self, ids: list[int]) -> torch.Tensor:
        """Logits (vocab,) after the sequence `ids`, evaluating only what a free sequence lacks."""
        got = self.acquire(ids)
        if got is None:
            raise CodelmError("every llama.cpp sequence is in use")
        s, done = got
        try:
            logits = None
            while done < len(ids):
                n = min(STEP_TOKENS, len(ids) - done)
                self.tok[:n] = ids[done : done + n]
                self.pos[:n] = np.arange(done, done + n)
                self.seq[:n] = s
                self.want[:n] = 0
                self.want[n - 1] = done + n == len(ids)
                logits = self.decode(n)
                self.cached[s] += ids[done : done + n]
                done += n
            return torch.from_numpy(logits[0].copy())
        finally:
            self.release(s)


def _close(ctx, model) -> None:
    ctx.close()
    model.close()


@dataclass(eq=False)
class _Seq:
    """Where a row stands in the context."""

    seq: int | None = None  # its sequence id, once it has one
    n_past: int = 0  # its tokens in the cache (prompt and generated)
    leader: Row | None = None  # a sibling sample evaluating the same prompt, to copy when done


@dataclass(eq=False)
class SeqBatch:
    """The rows of one llama.cpp context: `rows[:n_ready]` have logits (`logits[j]` for row j)
    and choose a token next; the rest still wait for a sequence or evaluate their prompt."""

    model: LlamaCppModel
    rows: list[Row]
    n_ready: int = 0
    logits: torch.Tensor | None = None
    state: dict[Row, _Seq] = field(default_factory=dict)


def prefill(model: LlamaCppModel, rows: list[Row], pad_id: int) -> SeqBatch:
    """A batch of new `rows`; their prompts are evaluated by the next steps, in chunks."""
    return SeqBatch(model, list(rows), state={r: _Seq() for r in rows})


def merge(a: SeqBatch, b: SeqBatch) -> SeqBatch:
    """One batch: the ready rows of both, then the waiting rows of both."""
    if b.n_ready:
        a.logits = b.logits if not a.n_ready else torch.cat([a.logits, b.logits])
    a.rows = a.rows[: a.n_ready] + b.rows[: b.n_ready] + a.rows[a.n_ready :] + b.rows[b.n_ready :]
    a.n_ready += b.n_ready
    a.state.update(b.state)
    return a


def _release(batch: SeqBatch, row: Row) -> None:
    st = batch.state.pop(row)
    if st.seq is not None:
        batch.model.release(st.seq)
    for other in batch.state.values():  # its siblings evaluate the prompt themselves now
        if other.leader is row:
            other.leader = None


def select(batch: SeqBatch, keep: list[int]) -> None:
    """Keep rows `keep` (indices into batch.rows); the others hand back their sequences."""
    kept = set(keep)
    for j, row in enumerate(batch.rows):
        if j not in kept:
            _release(batch, row)
    ready = [j for j in keep if j < batch.n_ready]
    if len(ready) < batch.n_ready:
        batch.logits = batch.logits[torch.tensor(ready, dtype=torch.long)] if ready else None
    batch.rows = [batch.rows[j] for j in keep]
    batch.n_ready = len(ready)


def choose_and_advance(batch: SeqBatch) -> Iterator[tuple[Row, str]]:
    """Choose the ready rows' tokens, then one llama_decode of those tokens and of prompt chunks."""
    model, state = batch.model, batch.state
    going: list[tuple[Row, int]] = []  # ready rows that continue, with the token to feed
    if batch.n_ready:
        ready = batch.rows[: batch.n_ready]
        logits = batch.logits
        tokens, chosen = choose_tokens(logits, [r.sampler for r in ready])
        decode._force(ready, tokens, chosen)
        scored = decode._logprobs(SimpleNamespace(rows=ready, logits=logits), tokens)
        for j, row in enumerate(ready):
            kept = len(row.token_ids)
            piece = step_row(row, tokens[j])
            if j in scored and len(row.token_ids) > kept:  # the token is part of the output
                scored[j].in_text = tokens[j] not in row.skip_ids
                row.logprobs.append(scored[j])
            if row.finish_reason is None and state[row].n_past + 1 > model.n_ctx:
                piece += row.finish("length")  # the sequence is full (the budget normally ends it first)
            if piece:
                yield row, piece
            if row.finish_reason is None:
                going.append((row, tokens[j]))
            else:
                _release(batch, row)
    waiting = [r for r in batch.rows[batch.n_ready :] if r in state]
    batch.rows, batch.n_ready, batch.logits = [r for r, _ in going] + waiting, 0, None
    _assign(batch, waiting)
    entries = [(state[r].seq, r, None, t) for r, t in going]  # (sequence, row, prompt end, token)
    budget = STEP_TOKENS - len(entries)
    for row in waiting:
        st = state[row]
        if budget <= 0:
            break
        if st.seq is None or st.leader is not None:
            continue
        end = min(len(row.prompt_ids), st.n_past + budget)
        entries.append((st.seq, row, end, None))
        budget -= end - st.n_past
    if not entries:
        if waiting:  # nothing can run: every sequence is held by rows outside this batch
            raise CodelmError(f"no free llama.cpp sequence for {len(waiting)} waiting row(s)")
        return
    entries.sort(key=lambda e: e[0])  # llama.cpp batches runs of consecutive sequence ids
    n = 0
    outputs: list[Row] = []
    tok, pos, seq, want = model.tok, model.pos, model.seq, model.want
    for s, row, end, token in entries:
        st = state[row]
        if end is None:
            tok[n], pos[n], seq[n], want[n] = token, st.n_past, s, 1
            model.cached[s].append(token)
            st.n_past += 1
            n += 1
            outputs.append(row)
            continue
        k = end - st.n_past
        tok[n : n + k] = row.prompt_ids[st.n_past : end]
        pos[n : n + k] = np.arange(st.n_past, end, dtype=np.int32)
        seq[n : n + k] = s
        want[n : n + k] = 0
        model.cached[s] += row.prompt_ids[st.n_past : end]
        st.n_past = end
        n += k
        if end == len(row.prompt_ids):
            want[n - 1] = 1
            outputs.append(row)
    out = torch.from_numpy(model.decode(n))
    index = list(range(len(outputs)))
    for i, lead in enumerate(list(outputs)):
        if state[lead].n_past != len(lead.prompt_ids):
            continue  # a decoding row, not a prompt just finished
        for row in waiting:
            st = state[row]
            if st.leader is lead:
                model.copy(state[lead].seq, st.seq)
                st.leader, st.n_past = None, len(row.prompt_ids)
                outputs.append(row)
                index.append(i)
    batch.logits = out if len(index) == len(out) else out[torch.tensor(index, dtype=torch.long)]
    done = set(outputs)
    batch.rows = outputs + [r for r in batch.rows if r not in done]
    batch.n_ready = len(outputs)


def _assign(batch: SeqBatch, waiting: list[Row]) -> None:
    """Give waiting rows free sequences; a sample whose sibling evaluates the same prompt waits
    for it (and copies its cache) instead of evaluating the prompt a second time."""
    model, state = batch.model, batch.state
    for row in waiting:
        st = state[row]
        if st.seq is not None:
            continue
        got = model.acquire(row.prompt_ids, row)
        if got is None:
            return
        st.seq, st.n_past = got
        if len(row.prompt_ids) - 1 - st.n_past < SHARE_MIN_TOKENS:
            continue
        for other in waiting:
            o = state[other]
            if other is row:
                break
            if other.prompt_ids == row.prompt_ids and o.seq is not None and o.leader is None:
                st.leader = other  # o is still evaluating: rows with logits are not in `waiting`
                break


def generate_rows(model: LlamaCppModel, rows: list[Row], pad_id: int) -> Iterator[tuple[int, str]]:
    """Run `rows` to completion together, yielding (row index, new text)."""
    position = {row: i for i, row in enumerate(rows)}
    batch = prefill(model, rows, pad_id)
    try:
        while batch.rows:
            for row, piece in choose_and_advance(batch):
                yield position[row], piece
    finally:  # also when the caller stops early or a step fails: the sequences go back
        for row in list(batch.state):
            _release(batch, row)


def generate_pool(
    model: LlamaCppModel, rows: list[Row], pad_id: int, max_rows: int
) -> Iterator[tuple[int, str]]:
    """Run `rows` to completion `max_rows` at a time (in order), yielding (row index, new text)."""
    for start in range(0, len(rows), max_rows):
        for i, piece in generate_rows(model, rows[start : start + max_rows], pad_id):
            yield start + i, piece


class _Ops:
    """The decode functions the engine and the scheduler call, for llama.cpp."""

    prefill = staticmethod(prefill)
    merge = staticmethod(merge)
    select = staticmethod(select)
    choose_and_advance = staticmethod(choose_and_advance)
    generate_rows = staticmethod(generate_rows)
    generate_pool = staticmethod(generate_pool)


class LlamaCppEngine(Engine):
    """codelm's Engine with llama.cpp computing the logits (see the module docstring)."""

    decoder = _Ops
    can_score = False  # no torch forward pass: perplexity and reply scoring need a checkpoint

    @classmethod
    def from_gguf(
        cls,
        path: str | Path,
        *,
        family: str | None = None,
        device: str | None = None,
        dtype: Any = None,
        threads: int | None = None,
        max_batch_size: int = 32,
        chat_format: str = "chat",
        reasoning: bool = True,
        allow_pickle: bool = False,  # GGUF holds no pickles; accepted so every --model takes the same flags
    ) -> LlamaCppEngine:
        from transformers import AutoConfig, AutoTokenizer, GenerationConfig

        from codelm.models.registry import get_family

        path = Path(path).expanduser()
        if not path.is_file():
            raise CheckpointError(f"no GGUF file at {path}")
        if device not in (None, "", "cpu"):
            raise CodelmError(f"--device {device}: the llama.cpp backend runs on the CPU; drop --device")
        if dtype not in (None, ""):
            raise CodelmError(f"--dtype {dtype}: a GGUF file's own type fixes the precision; drop --dtype")
        meta = read_metadata(path)
        with tempfile.TemporaryDirectory() as tmp:  # the checkpoint's own tokenizer, rebuilt exactly
            for key, name in (
                ("config", "config.json"),
                ("tokenizer_json", "tokenizer.json"),
                ("tokenizer_config", "tokenizer_config.json"),
                ("generation_config", "generation_config.json"),
            ):
                if key in meta:
                    (Path(tmp) / name).write_text(meta[key], encoding="utf-8")
            tokenizer = AutoTokenizer.from_pretrained(tmp)
            config = AutoConfig.from_pretrained(tmp)
            generation = GenerationConfig.from_pretrained(tmp) if "generation_config" in meta else None
        fam = get_family(family or meta.get("family", ""))
        raw = json.loads(meta["config"])
        n_ctx = int(raw.get("max_position_embeddings") or 2048)
        # one sequence per row of the batch, as many as the KV budget holds at the full context
        n_seq = max(1, min(max_batch_size, KV_BUDGET_BYTES // (kv_bytes_per_token(raw) * n_ctx)))
        model = LlamaCppModel(path, n_ctx, threads, n_seq)
        model.config, model.generation_config = config, generation
        engine = cls(
            Loaded(model=model, tokenizer=tokenizer, family=fam, path=path),  # type: ignore[arg-type]
            max_batch_size=max_batch_size,
            chat_format=chat_format,
            reasoning=reasoning,
        )
        return engine

    def _vocab_size(self) -> int:
        return self.model.n_vocab

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")
