"""Serving logic: OpenAI requests -> engine requests -> OpenAI responses or event streams.

This is where the API's meaning lives, independent of HTTP (routes.py) and of who generates
(engine_client.py, gateway.py): which model names are accepted, how `suffix` turns a completion
into fill-in-the-middle in the family's format, how repository context and the current file's
path are placed before the prompt, what line mode means (stop at the first newline), and which
OpenAI features are refused because the engine cannot honour them (echo, penalties; logprobs in
gateway mode), and what an unset temperature means for n > 1 samples.

Rendering and tokenizing run on a worker thread, never on the event loop: a multi-megabyte prompt
takes seconds to tokenize, and the loop must keep answering everyone else (and /health) meanwhile.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import replace
from typing import Any

from codelm.engine import Completion, Request
from codelm.engine.rules import sample_temperature
from codelm.models.formats import render_repo_context
from codelm.serve.engine_client import Backend, Generation
from codelm.serve.errors import APIError
from codelm.serve.logprobs import chat_logprobs, completion_logprobs
from codelm.serve.metrics import Metrics, Tracker
from codelm.serve.protocol import (
    AssistantMessage,
    ChatChoice,
    ChatCompletionRequest,
    ChatCompletionResponse,
    CompletionChoice,
    CompletionRequest,
    CompletionResponse,
    ModelCard,
    ModelList,
    SamplingFields,
    Usage,
)
from codelm.serve.sse import ChatChunks, CompletionChunks, stream_events

NO_LOGPROBS = "logprobs are not supported in gateway mode (codelm does not relay the upstream's)"


class Serving:
    """The OpenAI-compatible endpoints' logic over one Backend."""

    def __init__(self, backend: Backend, model_name: str, metrics: Metrics, aliases: Sequence[str] = ()):
        self.backend, self.model_name, self.metrics = backend, model_name, metrics
        self.names = {model_name, *aliases}

    def models(self) -> ModelList:
        fam = self.backend.family
        card = ModelCard(
            id=self.model_name,
            family=fam.name,
            supports_fim=fam.supports_fim,
            supports_chat=fam.chat is not None,
            context_window=self.backend.context_window,
        )
        return ModelList(data=[card])

    # -- endpoints -------------------------------------------------------------------------------
    async def completions(self, req: CompletionRequest) -> CompletionResponse | AsyncIterator[str]:
        tracker = self.metrics.track("completions")
        gen = await self._start(tracker, req, req.max_tokens, lambda: self.completion_requests(req))
        if req.stream:
            chunks = CompletionChunks(self.model_name, self._speller(), top=bool(req.logprobs))
            return stream_events(gen, tracker, chunks, self._usage_wanted(req))
        done = await self._collect(gen, tracker)
        choices = [
            CompletionChoice(
                index=i,
                text=c.text,
                finish_reason=c.finish_reason,
                logprobs=None
                if c.logprobs is None
                else completion_logprobs(c.logprobs, self._token_text(), top=bool(req.logprobs)),
            )
            for i, c in enumerate(done)
        ]
        return CompletionResponse(model=self.model_name, choices=choices, usage=_usage(gen, done))

    async def chat(self, req: ChatCompletionRequest) -> ChatCompletionResponse | AsyncIterator[str]:
        tracker = self.metrics.track("chat")
        max_tokens = req.max_completion_tokens if req.max_completion_tokens is not None else req.max_tokens
        gen = await self._start(tracker, req, max_tokens, lambda: [self.chat_request(req, max_tokens)])
        if req.stream:
            chunks = ChatChunks(self.model_name, self._speller())
            return stream_events(gen, tracker, chunks, self._usage_wanted(req))
        done = await self._collect(gen, tracker)
        choices = [
            ChatChoice(
                index=i,
                message=AssistantMessage(content=c.text, reasoning_content=c.reasoning),
                finish_reason=c.finish_reason,
                logprobs=None if c.logprobs is None else chat_logprobs(c.logprobs, self._token_text()),
            )
            for i, c in enumerate(done)
        ]
        return ChatCompletionResponse(model=self.model_name, choices=choices, usage=_usage(gen, done))

    # -- requests --------------------------------------------------------------------------------
    def completion_requests(self, req: CompletionRequest) -> list[Request]:
        """The engine requests for `req`: one per prompt, FIM when `suffix` is set, context first."""
        if req.logprobs is not None:
            self._token_text()  # refuses in gateway mode
        if req.echo:
            raise APIError(400, "echo is not supported", "unsupported_feature", "echo")
        prompts = _prompts(req.prompt)
        sampling = self._sampling(req, "completion", req.max_tokens, ["\n"] if req.mode == "line" else [])
        sampling["logprobs"] = req.logprobs
        fam = self.backend.family
        context = render_repo_context(fam, [(f.path, f.content) for f in req.context_files])
        header = ""
        if req.path:  # the current file is headed like the context files (StarCoder2's repo format)
            header = f"{fam.file_separator}{req.path}\n" if fam.file_separator else f"# {req.path}\n"
        if req.suffix is None:
            return [self.backend.completion_request(context + header + p, **sampling) for p in prompts]
        requests = [self.backend.infill_request(header + p, req.suffix, **sampling) for p in prompts]
        return [replace(r, prompt=context + r.prompt) for r in requests] if context else requests

    def chat_request(self, req: ChatCompletionRequest, max_tokens: int | None) -> Request:
        if req.top_logprobs and not req.logprobs:
            raise APIError(400, "top_logprobs needs logprobs: true", "invalid_request", "top_logprobs")
        if req.logprobs:
            self._token_text()  # refuses in gateway mode
        if not req.messages:
            raise APIError(400, "messages must hold at least one message", "invalid_request", "messages")
        messages = [{"role": m.role, "content": m.text()} for m in req.messages]
        sampling = self._sampling(req, "chat", max_tokens)
        sampling["logprobs"] = (req.top_logprobs or 0) if req.logprobs else None
        sampling["max_thinking_tokens"] = req.max_thinking_tokens
        return self.backend.chat_request(messages, **sampling)

    def _speller(self) -> Callable[[int], bytes] | None:
        """A token id's raw bytes; only an in-process engine knows its tokenizer."""
        return getattr(self.backend, "token_bytes", None)

    def _token_text(self) -> Callable[[int], bytes]:
        token_text = self._speller()
        if token_text is None:
            raise APIError(400, NO_LOGPROBS, "unsupported_feature", "logprobs")
        return token_text

    def _sampling(
        self, req: SamplingFields, kind: str, max_tokens: int | None, extra_stops: list[str] | None = None
    ) -> dict[str, Any]:
        if req.presence_penalty or req.frequency_penalty:
            raise APIError(
                400,
                "presence_penalty and frequency_penalty are not supported; use repetition_penalty",
                "unsupported_feature",
            )
        stops = list(dict.fromkeys([*req.stop_list(), *(extra_stops or [])]))
        return {  # None takes the family's recommended value
            "max_new_tokens": max_tokens,
            "temperature": self._temperature(req, kind),
            "top_p": req.top_p,
            "top_k": req.top_k,
            "repetition_penalty": req.repetition_penalty,
            "n": req.n,
            "seed": req.seed,
            "stop": stops or None,
            "ignore_eos": req.ignore_eos or None,
            "skip_special_tokens": req.skip_special_tokens,
        }

    def _temperature(self, req: SamplingFields, kind: str) -> float | None:
        """The request's temperature; unset, the family's, except that a greedy family default
        with n > 1 becomes OpenAI's default of 1 (n greedy samples would be n identical copies).
        An explicit temperature 0 is honoured: the client asked for greedy decoding."""
        return sample_temperature(self.backend.family, kind, req.n, req.temperature)

    @staticmethod
    def _usage_wanted(req: SamplingFields) -> bool:
        return bool(req.stream_options and req.stream_options.include_usage)

    # -- running ---------------------------------------------------------------------------------
    async def _start(
        self,
        tracker: Tracker,
        req: SamplingFields,
        max_tokens: int | None,
        build: Callable[[], list[Request]],
    ) -> Generation:
        """Check the model name, render, submit; a refusal is counted and re-raised as it is."""
        try:
            if req.model is not None and req.model not in self.names:
                raise APIError(
                    404,
                    f"model {req.model!r} does not exist; this server serves {self.model_name!r}",
                    "model_not_found",
                    "model",
                )
            timeout_s = req.timeout_ms / 1000 if req.timeout_ms else None
            requests = await asyncio.to_thread(build)  # chat templates of huge messages take time too
            return await self.backend.start(requests, timeout_s, check_budget=max_tokens is not None)
        except BaseException:
            tracker.done("rejected")
            raise

    async def _collect(self, gen: Generation, tracker: Tracker) -> list[Completion]:
        outcome = "cancelled"  # unless we get to the end: the client left and we were cancelled
        try:
            async for ev in gen:
                tracker.event(ev)
            if gen.error:
                outcome = "error"
                raise APIError(500, f"generation failed: {gen.error}", "generation_error")
            outcome = "ok"
            return gen.completions()
        finally:
            tracker.done(outcome, gen.prompt_tokens)


def _prompts(prompt: Any) -> list[str]:
    if isinstance(prompt, str):
        return [prompt]
    if prompt and all(isinstance(p, str) for p in prompt):
        return list(prompt)
    if not prompt:
        raise APIError(400, "prompt must not be empty", "invalid_request", "prompt")
    raise APIError(400, "token-id prompts are not supported; send text", "unsupported_feature", "prompt")


def _usage(gen: Generation, done: list[Completion]) -> Usage:
    return Usage.of(gen.prompt_tokens, sum(c.completion_tokens for c in done))
