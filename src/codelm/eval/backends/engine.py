"""The in-process backend: codelm's own engine on a local checkpoint (or a hub id).

Requests become engine requests of the same kind (the engine renders FIM and chat in the model
family's own formats) and are generated in batches by ``Engine.generate``. Sampling is exactly
the run's: the family's recommended settings are overridden, not merged, so that every model is
evaluated the same way. A batch whose requests the engine refuses (a prompt longer than the
context window) is retried request by request, so only the offending ones fail.

Scoring (``score``, for perplexity) runs plain forward passes. A text longer than the context window
is cut into windows of the window's length that share one token (the last of a window is the first,
context-only, token of the next), so every token after the first is predicted exactly once and whole
documents count. Windows are right-padded into batches (padding after a causal row changes none of
its logits) within a logits budget; log-softmax is taken in float32.

Replies (``score_replies``, for the preference task) are scored exactly as the DPO stage scores them
in training: rendered by ``codelm.train.chat.ChatEncoder.reply`` (the chat template, loss mask on
the reply and its end-of-turn marker; plain prompt + reply + EOS without a chat format), cut at the
context window as DPO cuts at ``seq_len``, and summed by ``codelm.train.objectives.DPO``'s own
``sequence_logprobs``.

Infills (``score_infills``, for the fim-loss task) are scored as the pretraining stage trains FIM:
the engine's own infilling prompt (``render_fim``, the family's sentinels and order, BOS by family
rule) followed by the middle, tokenized on its own as the FIM transform tokenizes each piece, and
the end-of-sequence token that ends every FIM example in training; the loss is over the middle
and that end token (the FIM test loss of Bavarian et al. 2022, section 4).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from codelm.errors import CodelmError, RequestError

from ..generation import LOGLIKELIHOOD, GenerationFailed, GenRequest

log = logging.getLogger(__name__)
LOGITS_BUDGET = 1 << 27  # logits (batch x window x vocab) of one scoring forward pass: 512 MiB in fp32
# on a CPU, tokens (batch x window) of one scoring forward pass: past a few thousand its activations
# no longer stay in the caches and the elementwise ops wait on memory (the tiny recipe's perplexity,
# 40 documents in 1,024-token windows: 6.5 s in passes of 2 windows against 8.5 s in passes of 64)
CPU_PASS_TOKENS = 2048


WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt", ".pth")


def weights_fingerprint(path: str | Path) -> str | None:
    """A digest of the name, size and modification time of a local checkpoint's weight files (or of
    the one .gguf file): how a resumed `codelm eval` sees that the model behind the same path was
    trained again, whose stored answers it must not reuse. Cheap at any model size (no file is
    read); None for a hub id."""
    import hashlib

    root = Path(path)
    if root.is_file():
        files = [root]
    elif root.is_dir():
        files = sorted(f for f in root.iterdir() if f.suffix in WEIGHT_SUFFIXES and f.is_file())
    else:
        return None
    digest = hashlib.sha256()
    for f in files:
        st = f.stat()
        # surrogateescape: a file name the filesystem encoding cannot decode is hashed as its bytes
        digest.update(f"{f.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()[:16]


class EngineBackend:
    pregenerated = False

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.name = f"engine:{engine.path}"
        self.weights = weights_fingerprint(engine.path)
        self.tokenizer = engine.tokenizer

    @classmethod
    def from_pretrained(cls, model: str, **load_kwargs: Any) -> EngineBackend:
        from codelm.engine import Engine

        return cls(Engine.from_pretrained(model, **load_kwargs))

    def supports(self, kind: str) -> str | None:
        family = self.engine.family
        if kind == LOGLIKELIHOOD:
            if not getattr(self.engine, "can_score", True):
                return (
                    "a .gguf model (llama.cpp) does not score log-likelihoods: use the checkpoint directory"
                )
            return None
        if kind == "infill" and family.fim is None:
            return f"model family {family.name} does not support fill-in-the-middle"
        if (
            kind == "chat"
            and family.chat is None
            and not getattr(self.engine.tokenizer, "chat_template", None)
        ):
            return f"model family {family.name} has no chat format (it is a base model): drop --chat"
        return None

    def _request(self, request: GenRequest):
        s = request.sampling
        sampling = {
            "max_new_tokens": s.max_new_tokens,
            "temperature": s.temperature,
            "top_p": s.top_p,
            "top_k": s.top_k or 0,
            "repetition_penalty": s.repetition_penalty or 1.0,
            "n": request.n,
            "seed": s.seed,
            "stop": list(request.stop),
        }
        if request.kind == "infill":
            return self.engine.infill_request(request.prompt, request.suffix, **sampling)
        if request.kind == "chat":
            return self.engine.chat_request([dict(m) for m in request.messages], **sampling)
        return self.engine.completion_request(request.prompt, **sampling)

    def generate(self, requests: Sequence[GenRequest]) -> list[list[str]]:
        built = [self._request(r) for r in requests]
        try:
            results = self.engine.generate(built)
        except RequestError:  # some request is refused: find which, and generate the others
            return self._one_by_one(built)
        return [[c.text for c in result.completions] for result in results]

    def _one_by_one(self, built: list) -> list[list[str]]:
        texts: list[list[str]] = []
        errors: dict[int, str] = {}
        for index, request in enumerate(built):
            try:
                texts.append([c.text for c in self.engine.generate([request])[0].completions])
            except RequestError as exc:
                texts.append([])
                errors[index] = str(exc)
        if errors:
            raise GenerationFailed(texts, errors)
        return texts

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        return [self.engine.encode(text) for text in texts]

    def score(self, texts: Sequence[str]) -> list[tuple[float, int]]:
        """Summed NLL (nats) and predicted-token count per text (see the module docstring)."""
        size = self.engine.context_window
        owners, windows = [], []  # consecutive windows share one token: context for the next
        for index, ids in enumerate(self.encode(texts)):
            for start in range(0, len(ids) - 1, size - 1):
                owners.append(index)
                windows.append((ids[start : start + size], 1))
        nll, tokens = [0.0] * len(texts), [0] * len(texts)
        for index, (value, count) in zip(owners, self._score_rows(windows), strict=True):
            nll[index] += value
            tokens[index] += count
        return list(zip(nll, tokens, strict=True))

    def score_replies(self, replies: Sequence[tuple[Any, Any, bool]]) -> list[tuple[float, int]]:
        """Per (prompt, reply, chat): the reply's summed log-probability (nats) and its token count,
        as DPO computes them (see the module docstring); prompt and reply are strings or messages,
        rendered as plain text where chat is False."""
        import torch

        from codelm.train.chat import ChatEncoder
        from codelm.train.objectives import DPO
        from codelm.train.packing import IGNORE, collate, make_row

        encoder = ChatEncoder(self.tokenizer, self.engine.family)
        size, cut = self.engine.context_window, 0
        rows = []
        for prompt, reply, chat in replies:
            ids, labels = encoder.reply(prompt, reply, chat)
            cut += len(ids) > size
            rows.append(make_row([(ids[:size], labels[:size])]))
        if cut:
            log.warning(
                "%d replies are cut at the context window (%d tokens), as DPO cuts at seq_len", cut, size
            )
        order = sorted(range(len(rows)), key=lambda i: -len(rows[i]))  # little padding per batch
        scorer = DPO(beta=0.0, reference=None)  # only its sequence log-probs are used
        model = self.engine.model
        device = next(model.parameters()).device
        pad = self.engine.pad_id if self.engine.pad_id is not None else 0
        out: list[tuple[float, int]] = [(0.0, 0)] * len(rows)
        start = 0
        while start < len(order):
            longest = len(rows[order[start]])
            batch = order[start : start + self._rows_per_pass(longest, device)]
            start += len(batch)
            collated = collate([rows[i] for i in batch], pad).to(device)
            with torch.inference_mode():
                logps = scorer.sequence_logprobs(model, collated)
            for i, logp in zip(batch, logps.tolist(), strict=True):
                out[i] = (logp, int((rows[i].labels[1:] != IGNORE).sum()))
        return out

    def score_infills(self, infills: Sequence[tuple[str, str, str]]) -> list[tuple[float, int]]:
        """Per (prefix, suffix, middle): the summed NLL (nats) of the middle's tokens and the end
        token after the family's infilling prompt, and how many tokens that is."""
        rows = [self.infill_row(*infill) for infill in infills]
        for ids, _ in rows:
            if len(ids) > self.engine.context_window:
                raise CodelmError(
                    f"an infill of {len(ids)} tokens does not fit the model's context window of "
                    f"{self.engine.context_window} tokens"
                )
        return self._score_rows(rows)

    def infill_row(self, prefix: str, suffix: str, middle: str) -> tuple[list[int], int]:
        """The ids ``score_infills`` reads for one infill, and where the scored part (the middle and
        the end token) starts: the tokens the pretraining stage trains on for that split."""
        from codelm.models.formats import render_fim

        engine = self.engine
        prompt = engine.encode(render_fim(engine.family, prefix, suffix))
        # as FimTransform encodes a piece: text that spells a sentinel is data
        piece = self.tokenizer(middle, add_special_tokens=False, split_special_tokens=True, verbose=False)
        end = self.tokenizer.convert_tokens_to_ids(engine.family.tokenizer.eos)
        return [*prompt, *piece["input_ids"], end], len(prompt)

    def _rows_per_pass(self, longest: int, device: Any) -> int:
        """How many rows of up to `longest` tokens one scoring forward pass takes (at least one):
        within the logits budget, the engine's batch size and, on a CPU, `CPU_PASS_TOKENS`."""
        count = min(self.engine.max_batch_size, LOGITS_BUDGET // (longest * self.engine.vocab_size))
        if device.type == "cpu":
            count = min(count, CPU_PASS_TOKENS // longest)
        return max(1, count)

    def _score_rows(self, rows: Sequence[tuple[list[int], int]]) -> list[tuple[float, int]]:
        """Summed NLL (nats) of ``ids[start:]`` given what precedes, and its token count, per row;
        right-padded batches of `_rows_per_pass`, logits only from the first scored position of the
        batch on (an infill scores its last ~20 tokens)."""
        import torch

        model = self.engine.model
        device = next(model.parameters()).device
        pad = self.engine.pad_id if self.engine.pad_id is not None else 0
        order = sorted(range(len(rows)), key=lambda i: -len(rows[i][0]))
        out: list[tuple[float, int]] = [(0.0, 0)] * len(rows)
        start = 0
        while start < len(order):
            longest = len(rows[order[start]][0])
            batch = order[start : start + self._rows_per_pass(longest, device)]
            start += len(batch)
            padded = [rows[i][0] + [pad] * (longest - len(rows[i][0])) for i in batch]
            first = min(rows[i][1] for i in batch) - 1  # the first position whose logits are scored
            with torch.inference_mode():
                ids_in = torch.tensor(padded, device=device)
                logits = model(ids_in, use_cache=False, logits_to_keep=longest - first).logits
                for row, i in enumerate(batch):
                    ids, begin = rows[i]
                    span = logits[row, begin - 1 - first : len(ids) - 1 - first]
                    logp = torch.log_softmax(span.float(), dim=-1)
                    target = torch.tensor(ids[begin:], device=device)
                    out[i] = (-float(logp.gather(1, target[:, None]).sum()), len(ids) - begin)
        return out

    def with_model(self, model: str | Path) -> EngineBackend:
        """Another checkpoint on this one's device and dtype, with the same tokenizer (DPO's reference
        model: its log-probabilities are only comparable on the same tokens)."""
        first = next(self.engine.model.parameters())
        other = EngineBackend.from_pretrained(str(model), device=str(first.device), dtype=first.dtype)
        if other.tokenizer.get_vocab() != self.tokenizer.get_vocab():
            raise CodelmError(
                f"{model} has another tokenizer than {self.engine.path}: it cannot be the reference"
            )
        return other

    def close(self) -> None:
        pass
