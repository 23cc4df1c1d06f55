"""The llama.cpp backend: `--model FILE.gguf` runs codelm's engine on llama.cpp's CPU kernels.

    engine = Engine.from_pretrained("tiny.gguf")   # a file from `codelm export gguf`
    engine.infill("def add(a, b):\\n    return ", "\\n").text

llama.cpp (through llama-cpp-python, the optional extra `codelm[llamacpp]`) only computes logits.
Everything a user sees is codelm's: the checkpoint's own tokenizer and family (stored in the GGUF
file by the exporter), FIM and chat rendering, sampling, stop tokens and strings, thinking budgets,
logprobs and streaming, through the same `Row`s the PyTorch engine decodes.

One llama.cpp context holds one sequence, so rows are decoded one after another: a `SerialBatch`
advances its first row until it finishes, then starts the next (reusing the KV cache of the prompt
prefix it shares with the previous one, so the n samples of a request pay for one prompt). Under
`codelm serve` concurrent requests therefore queue, as in llama-cpp-python's own server; streaming,
cancellation and deadlines work as with the PyTorch engine.
"""

from __future__ import annotations

import json
import tempfile
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from codelm.engine import decode
from codelm.engine.decode import Row, step_row
from codelm.engine.engine import Engine
from codelm.engine.loader import Loaded
from codelm.engine.sampling import choose_tokens
from codelm.errors import CheckpointError, CodelmError

META = "codelm."


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


class LlamaCppModel:
    """One llama.cpp context: evaluates token ids and returns the last position's logits."""

    def __init__(self, path: Path, n_ctx: int, threads: int | None = None) -> None:
        llama_cpp = _llama_cpp()
        kwargs: dict[str, Any] = {"n_ctx": n_ctx, "n_batch": min(512, n_ctx), "verbose": False}
        if threads:
            kwargs.update(n_threads=threads, n_threads_batch=threads)
        try:
            self.llm = llama_cpp.Llama(model_path=str(path), logits_all=False, **kwargs)
        except ValueError as exc:  # llama-cpp-python's "Failed to load model from file"
            raise CheckpointError(f"llama.cpp could not load {path}: {exc}") from exc
        # freed while the interpreter is still whole: llama-cpp-python's own __del__ at exit prints
        # a TypeError traceback (its C bindings are gone by then)
        weakref.finalize(self, self.llm.close)
        self._get_logits = llama_cpp.llama_get_logits_ith
        self.path = path
        self.n_ctx = n_ctx
        self.n_vocab = self.llm.n_vocab()

    @property
    def cached(self) -> list[int]:
        """The token ids whose keys and values are in the context now."""
        return self.llm.input_ids[: self.llm.n_tokens].tolist()

    def logits_after(self, ids: list[int]) -> torch.Tensor:
        """Logits (vocab,) after the sequence `ids`, evaluating only what the cache lacks."""
        cached = self.cached
        keep = 0
        for a, b in zip(cached, ids, strict=False):
            if a != b:
                break
            keep += 1
        keep = min(keep, len(ids) - 1)  # at least one token is evaluated: its logits are needed
        self.llm.n_tokens = keep  # llama-cpp-python's eval drops the cache past n_tokens
        return self.step(ids[keep:])

    def step(self, ids: list[int]) -> torch.Tensor:
        """Append `ids` to the context; logits (vocab,) of the last one."""
        import numpy as np

        self.llm.eval(ids)  # without logits_all it keeps no scores: read the last row from llama.cpp
        row = np.ctypeslib.as_array(self._get_logits(self.llm.ctx, -1), shape=(self.n_vocab,))
        return torch.from_numpy(row.copy())


@dataclass(eq=False)
class SerialBatch:
    """The rows waiting or decoding on one llama.cpp context; rows[0] is the one advancing."""

    model: LlamaCppModel
    rows: list[Row]
    active: Row | None = None  # the row whose tokens the context holds
    logits: torch.Tensor | None = None
    finished: list[Row] = field(default_factory=list)


def prefill(model: LlamaCppModel, rows: list[Row], pad_id: int) -> SerialBatch:
    """A batch of `rows`; each prompt is evaluated when its row's turn comes."""
    return SerialBatch(model, list(rows))


def merge(a: SerialBatch, b: SerialBatch) -> SerialBatch:
    a.rows += b.rows
    return a


def select(batch: SerialBatch, keep: list[int]) -> None:
    batch.rows = [batch.rows[j] for j in keep]


def choose_and_advance(batch: SerialBatch) -> Iterator[tuple[Row, str]]:
    """One token of the first row (evaluating its prompt first when it is new)."""
    row = batch.rows[0]
    if batch.active is not row:
        batch.logits = batch.model.logits_after(row.prompt_ids)
        batch.active = row
    logits = batch.logits[None, :]
    tokens, chosen = choose_tokens(logits, [row.sampler])
    decode._force([row], tokens, chosen)
    view = decode.Batch(batch.model, [row], None, None, None, logits, False)  # what _logprobs reads
    scored = decode._logprobs(view, tokens)
    kept = len(row.token_ids)
    piece = step_row(row, tokens[0])
    if 0 in scored and len(row.token_ids) > kept:
        scored[0].in_text = tokens[0] not in row.skip_ids
        row.logprobs.append(scored[0])
    if piece:
        yield row, piece
    if row.finish_reason is not None:
        batch.rows.pop(0)
        return
    if len(row.prompt_ids) + len(row.token_ids) + 1 > batch.model.n_ctx:
        row.finish_reason = "length"  # the context is full (the budget normally ends it first)
        batch.rows.pop(0)
        return
    batch.logits = batch.model.step([tokens[0]])


def generate_rows(model: LlamaCppModel, rows: list[Row], pad_id: int) -> Iterator[tuple[int, str]]:
    """Run `rows` to completion one after another, yielding (row index, new text)."""
    position = {row: i for i, row in enumerate(rows)}
    batch = prefill(model, rows, pad_id)
    while batch.rows:
        for row, piece in choose_and_advance(batch):
            yield position[row], piece


class _Ops:
    """The decode functions the engine and the scheduler call, for llama.cpp."""

    prefill = staticmethod(prefill)
    merge = staticmethod(merge)
    select = staticmethod(select)
    choose_and_advance = staticmethod(choose_and_advance)
    generate_rows = staticmethod(generate_rows)


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
        n_ctx = int(json.loads(meta["config"]).get("max_position_embeddings") or 2048)
        model = LlamaCppModel(path, n_ctx, threads)
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
