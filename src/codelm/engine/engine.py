"""The one inference engine every pillar uses: complete, infill, chat, batch, stream.

    engine = Engine.from_pretrained("/tmp/tiny-seedcoder")
    engine.infill("def add(a, b):\\n    return ", "\\n").text

Prompts are rendered in the checkpoint family's own FIM and chat formats (codelm.models.formats),
decoding stops at EOS, FIM sentinels, file separators and stop strings, and the text is cut at them
again after decoding because models leak sentinels as plain text. A chat reply's thinking block
(reasoning models) is separated from the answer (`Completion.reasoning`, `StreamChunk.reasoning`)
and can be held to `max_thinking_tokens` (codelm.engine.thinking).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from codelm.engine import decode, rules
from codelm.engine.decode import Row
from codelm.engine.loader import Loaded, load_checkpoint
from codelm.engine.params import Completion, Request, Result, SamplingParams, StreamChunk
from codelm.engine.sampling import RowSampler
from codelm.engine.text import CodegenTruncatingMatcher, IncrementalDecoder, StopMatcher
from codelm.engine.thinking import Thinking, forced_end_text
from codelm.errors import RequestError
from codelm.models.codegen_truncate import codegen_truncate
from codelm.models.formats import CHAT_FORMATS, cut_at_first, render_chat, render_chat_template, render_fim
from codelm.models.reasoning import opens_thinking, reasoning_spec, split_reasoning
from codelm.models.vocab import TokenBytes, special_ids, token_ids


class Engine:
    """A loaded model plus its family's formats and stop rules.

    `chat_format` "reasoning" renders chats in the family's reasoning template (Seed-Coder-8B-
    Reasoning's) even over the checkpoint's own; `reasoning=False` leaves thinking in the answer.
    `decoder` holds the decode functions (prefill, step, merge, select) the engine and the scheduler
    run; the llama.cpp backend (codelm.engine.llamacpp) swaps in its own.
    """

    decoder: Any = decode
    can_score = True  # plain forward passes for perplexity and reply scoring (eval backends)

    def __init__(
        self, loaded: Loaded, max_batch_size: int = 32, chat_format: str = "chat", reasoning: bool = True
    ) -> None:
        self.model, self.tokenizer, self.family = loaded.model, loaded.tokenizer, loaded.family
        self.path = loaded.path
        self.max_batch_size = max_batch_size
        if chat_format not in CHAT_FORMATS:
            raise RequestError(f"unknown chat format {chat_format!r} (choices: {', '.join(CHAT_FORMATS)})")
        self.chat_format = chat_format
        self.reasoning = reasoning_spec(self.family) if reasoning else None
        cfg = self.model.config
        self.context_window = int(getattr(cfg, "max_position_embeddings", None) or cfg.n_positions)
        self.vocab_size = self._vocab_size()
        tok = self.tokenizer
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        self._stop_ids = {
            k: self._token_ids(rules.stop_tokens(self.family, k)) for k in ("completion", "infill", "chat")
        }
        self._special_ids = special_ids(tok)
        self.token_bytes = TokenBytes(tok)  # raw bytes of one token, for logprobs
        gen_eos = getattr(self.model.generation_config, "eos_token_id", None)
        if gen_eos is not None:
            extra = gen_eos if isinstance(gen_eos, list) else [gen_eos]
            self._stop_ids = {k: v | set(extra) for k, v in self._stop_ids.items()}

    @classmethod
    def from_pretrained(
        cls,
        name: str,
        *,
        max_batch_size: int = 32,
        chat_format: str = "chat",
        reasoning: bool = True,
        **load_kwargs: Any,
    ) -> Engine:
        """Load a local checkpoint directory or hub id (see `load_checkpoint` for the options), or a
        `.gguf` file from `codelm export gguf` on llama.cpp (codelm.engine.llamacpp)."""
        if str(name).endswith(".gguf"):
            from codelm.engine.llamacpp import LlamaCppEngine

            return LlamaCppEngine.from_gguf(
                name,
                max_batch_size=max_batch_size,
                chat_format=chat_format,
                reasoning=reasoning,
                **load_kwargs,
            )
        loaded = load_checkpoint(name, **load_kwargs)
        return cls(loaded, max_batch_size=max_batch_size, chat_format=chat_format, reasoning=reasoning)

    def _vocab_size(self) -> int:
        head = self.model.get_output_embeddings()  # nn.Linear or a prepacked one (codelm.engine.cpu)
        return int(head.out_features)

    @property
    def device(self):
        """Where sampling tensors live: the model's device."""
        return next(self.model.parameters()).device

    # -- family rules ---------------------------------------------------------------------------
    def _token_ids(self, tokens: Sequence[str]) -> set[int]:
        """Ids of the stop tokens the vocabulary has; unk == eos (GPT-2, NeoX) must not drop EOS."""
        return token_ids(self.tokenizer, tokens)

    def stop_strings(self, kind: str, params: SamplingParams) -> list[str]:
        return rules.stop_strings(self.family, kind, params)

    def stop_ids(self, kind: str, params: SamplingParams) -> frozenset[int]:
        own = set() if params.ignore_eos else self._stop_ids[kind]
        return frozenset(own | set(params.stop_token_ids))

    def params(self, kind: str = "completion", **overrides: Any) -> SamplingParams:
        """The family's recommended sampling for `kind`, with the caller's overrides."""
        return rules.sampling_params(self.family, kind, **overrides)

    # -- building requests ----------------------------------------------------------------------
    def completion_request(self, prompt: str, **sampling: Any) -> Request:
        return Request(prompt, self.params("completion", **sampling), "completion")

    def infill_request(self, prefix: str, suffix: str, **sampling: Any) -> Request:
        return Request(render_fim(self.family, prefix, suffix), self.params("infill", **sampling), "infill")

    def chat_request(self, messages: Sequence[dict[str, Any]], **sampling: Any) -> Request:
        template = getattr(self.tokenizer, "chat_template", None)
        if template and self.chat_format == "chat":  # a checkpoint's own template wins over the family's
            tok = self.tokenizer
            prompt = render_chat_template(
                template,
                messages,
                bos_token=tok.bos_token or "",
                eos_token=tok.eos_token or "",
                reasoning=reasoning_spec(self.family),
            )
        else:
            prompt = render_chat(self.family, messages, self.chat_format)
        return Request(prompt, self.params("chat", **sampling), "chat", reasoning=self.reasoning)

    def complete(self, prompt: str, **sampling: Any) -> Result:
        return self.generate([self.completion_request(prompt, **sampling)])[0]

    def infill(self, prefix: str, suffix: str, **sampling: Any) -> Result:
        return self.generate([self.infill_request(prefix, suffix, **sampling)])[0]

    def chat(self, messages: Sequence[dict[str, Any]], **sampling: Any) -> Result:
        return self.generate([self.chat_request(messages, **sampling)])[0]

    def token_text(self, token_id: int) -> str:
        """How one token reads alone, special tokens included (U+FFFD for part of a character;
        `token_bytes` gives the raw bytes)."""
        return self.tokenizer.decode(
            [token_id], skip_special_tokens=False, clean_up_tokenization_spaces=False
        )

    # -- generation ------------------------------------------------------------------------------
    def encode(self, prompt: str) -> list[int]:
        """Prompt ids; BOS is added by family rule unless the rendered prompt already has it."""
        ids = self.tokenizer(prompt, add_special_tokens=False, verbose=False)["input_ids"]
        spec = self.family.tokenizer
        if spec.add_bos and not prompt.startswith(spec.bos):
            bos = self.tokenizer.convert_tokens_to_ids(spec.bos)
            if bos is not None:
                ids = [bos, *ids]
        return ids

    def build_rows(self, request: Request) -> tuple[list[int], list[Row]]:
        """Prompt ids and one decode row per sample; validates the request against the model."""
        ids = self.encode(request.prompt)
        if not ids:
            raise RequestError("the prompt is empty")
        if len(ids) >= self.context_window:
            raise RequestError(
                f"prompt is {len(ids)} tokens, which does not fit the model's context window of "
                f"{self.context_window} tokens"
            )
        p = request.params
        budget = min(p.max_new_tokens, self.context_window - len(ids))
        stops = self.stop_ids(request.kind, p)
        strings = self.stop_strings(request.kind, p)
        device = self.device
        skip = self._special_ids - stops if p.skip_special_tokens else frozenset()
        if request.reasoning is not None:  # marker tokens must reach the reasoning parser
            skip -= self._token_ids([request.reasoning.start, request.reasoning.end])
        rows = [
            Row(
                ids,
                budget,
                stops,
                RowSampler.create(p, j, ids, self.vocab_size, device),
                IncrementalDecoder(self.tokenizer, ids),
                self._matcher(request, strings),
                logprobs=[] if p.logprobs is not None else None,
                index=j,
                skip_ids=skip,
                thinking=self._thinking(request),
            )
            for j in range(p.n)
        ]
        return ids, rows

    def _thinking(self, request: Request) -> Thinking | None:
        spec = request.reasoning
        if spec is None:
            return None
        end_ids = self.tokenizer(forced_end_text(spec), add_special_tokens=False)["input_ids"]
        return Thinking(
            spec, opens_thinking(spec, request.prompt), request.params.max_thinking_tokens, end_ids
        )

    def _truncates(self, request: Request) -> bool:
        """CodeGen1 completions get `truncate_before_pattern` (its README's recommended decode)."""
        p = request.params
        return request.kind == "completion" and bool(self.family.truncate_before_pattern) and not p.ignore_eos

    def _matcher(self, request: Request, strings: list[str]) -> StopMatcher:
        if self._truncates(request):
            return CodegenTruncatingMatcher(strings, self.family.truncate_before_pattern)
        return StopMatcher(strings)

    def finish(self, request: Request, row: Row) -> Completion:
        """The row's final text: cut at stops again (leaked sentinels), CodeGen1 truncation."""
        text, cut = cut_at_first(row.text, self.stop_strings(request.kind, request.params))
        reason = "stop" if cut else row.finish_reason or "length"
        if self._truncates(request):
            short = codegen_truncate(text, self.family.truncate_before_pattern)
            if short != text:
                text, reason = short, "stop"
        reasoning = None
        if request.reasoning is not None:
            inside = opens_thinking(request.reasoning, request.prompt)
            reasoning, text = split_reasoning(text, request.reasoning, inside)
        return Completion(text, reason, row.generated, row.token_ids, row.logprobs, reasoning)

    def generate(self, requests: Sequence[Request]) -> list[Result]:
        """Generate every request, up to `max_batch_size` sample rows at a time (waiting rows
        join as others finish: `decode.generate_pool`)."""
        built = [self.build_rows(r) for r in requests]
        # similar lengths together: less padding
        pending = sorted((row for _, rows in built for row in rows), key=lambda row: len(row.prompt_ids))
        for _ in self.decoder.generate_pool(self.model, pending, self.pad_id, self.max_batch_size):
            pass
        return [
            Result(req, len(ids), [self.finish(req, row) for row in rows])
            for req, (ids, rows) in zip(requests, built, strict=True)
        ]

    def stream(self, request: Request) -> Iterator[StreamChunk]:
        """Text deltas of one sample as they are generated; the last chunk has finish_reason."""
        if request.params.n != 1:
            raise RequestError("streaming supports n=1 only")
        _, rows = self.build_rows(request)
        row = rows[0]
        for _, piece in self.decoder.generate_rows(self.model, rows, self.pad_id):
            reasoning, answer = row.split(piece)
            if reasoning or answer:
                yield StreamChunk(answer, reasoning=reasoning)
        reasoning, answer = row.split_tail()
        yield StreamChunk(answer, row.finish_reason or "length", row.generated, reasoning)
