"""Server-sent events in OpenAI's framing: `data: {json}\\n\\n` per chunk, then `data: [DONE]`.

Chunk shapes follow the OpenAI streaming API: completions send `text_completion` objects whose
choices carry text deltas; chat sends `chat.completion.chunk` objects, a first delta with the
assistant role, content deltas (a reasoning model's thinking first, as `reasoning_content` deltas,
as vLLM and DeepSeek stream it), then an empty delta carrying `finish_reason`. With
`stream_options.include_usage` a last chunk with no choices carries the token counts. A generation
that fails after the stream has started cannot change the HTTP status any more, so it is reported
as an error object in the stream, as OpenAI and vLLM do.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator

from pydantic import BaseModel

from codelm.engine.scheduler import Event
from codelm.serve.engine_client import Generation
from codelm.serve.errors import APIError
from codelm.serve.logprobs import TextOffsets, TokenBytes, chat_logprobs, completion_logprobs
from codelm.serve.metrics import Tracker
from codelm.serve.protocol import (
    ChatChunkChoice,
    ChatCompletionChunk,
    CompletionChoice,
    CompletionResponse,
    Delta,
    Usage,
    new_id,
)

log = logging.getLogger(__name__)
DONE = "data: [DONE]\n\n"


def sse(payload: BaseModel | dict) -> str:
    body = (
        payload.model_dump_json()
        if isinstance(payload, BaseModel)
        else json.dumps(payload, ensure_ascii=False)
    )
    return f"data: {body}\n\n"


class CompletionChunks:
    """Events -> `text_completion` chunks."""

    def __init__(self, model: str, token_text: TokenBytes | None = None, top: bool = True) -> None:
        self.id, self.created, self.model = new_id("cmpl"), int(time.time()), model
        self.token_text, self.top = token_text, top
        self._offsets: dict[int, TextOffsets] = {}  # per choice: where its next token starts

    def event(self, ev: Event) -> list[BaseModel]:
        logprobs = None
        if ev.logprobs is not None and self.token_text is not None:
            offsets = self._offsets.setdefault(ev.index, TextOffsets())
            logprobs = completion_logprobs(ev.logprobs, self.token_text, offsets, self.top)
        choice = CompletionChoice(
            index=ev.index, text=ev.text, finish_reason=ev.finish_reason, logprobs=logprobs
        )
        return [CompletionResponse(id=self.id, created=self.created, model=self.model, choices=[choice])]

    def usage(self, usage: Usage) -> BaseModel:
        return CompletionResponse(id=self.id, created=self.created, model=self.model, choices=[], usage=usage)


class ChatChunks:
    """Events -> `chat.completion.chunk` chunks, opening each choice with the assistant role."""

    def __init__(self, model: str, token_text: TokenBytes | None = None) -> None:
        self.id, self.created, self.model = new_id("chatcmpl"), int(time.time()), model
        self.token_text = token_text
        self._opened: set[int] = set()

    def _chunk(self, choices: list[ChatChunkChoice], usage: Usage | None = None) -> ChatCompletionChunk:
        return ChatCompletionChunk(
            id=self.id, created=self.created, model=self.model, choices=choices, usage=usage
        )

    def event(self, ev: Event) -> list[BaseModel]:
        out: list[BaseModel] = []
        if ev.index not in self._opened:
            self._opened.add(ev.index)
            out.append(
                self._chunk([ChatChunkChoice(index=ev.index, delta=Delta(role="assistant", content=""))])
            )
        logprobs = None
        if ev.logprobs and self.token_text is not None:
            logprobs = chat_logprobs(ev.logprobs, self.token_text)
        deltas = [Delta(reasoning_content=ev.reasoning)] if ev.reasoning else []
        if ev.text or (logprobs and not deltas):
            deltas.append(Delta(content=ev.text))
        for k, delta in enumerate(deltas):  # the event's logprobs go with its first delta
            choice = ChatChunkChoice(index=ev.index, delta=delta, logprobs=None if k else logprobs)
            out.append(self._chunk([choice]))
        if ev.finish_reason:
            out.append(
                self._chunk([ChatChunkChoice(index=ev.index, delta=Delta(), finish_reason=ev.finish_reason)])
            )
        return out

    def usage(self, usage: Usage) -> BaseModel:
        return self._chunk([], usage)


async def stream_events(
    gen: Generation, tracker: Tracker, chunks: CompletionChunks | ChatChunks, include_usage: bool
) -> AsyncIterator[str]:
    """The SSE body of one request. Leaving early (client gone) cancels the generation."""
    outcome, completion_tokens = "cancelled", 0
    try:
        async for ev in gen:
            tracker.event(ev)
            completion_tokens += ev.completion_tokens if ev.finish_reason else 0
            if ev.finish_reason == "error":
                continue  # reported once, below
            for chunk in chunks.event(ev):
                yield sse(chunk)
        if gen.error:
            outcome = "error"
            yield sse(APIError(500, f"generation failed: {gen.error}", "generation_error").body())
        else:
            outcome = "ok"
            if include_usage:
                yield sse(chunks.usage(Usage.of(gen.prompt_tokens, completion_tokens)))
        yield DONE
    except Exception as exc:  # headers are sent: report in-band rather than cutting the stream
        outcome = "error"
        log.exception("stream failed")
        yield sse(APIError(500, f"stream failed: {type(exc).__name__}: {exc}", "stream_error").body())
        yield DONE
    finally:  # also when the client disconnected (CancelledError / GeneratorExit pass through)
        if outcome != "ok":
            gen.cancel()
        tracker.done(outcome, gen.prompt_tokens)
