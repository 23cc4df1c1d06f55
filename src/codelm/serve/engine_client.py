"""The async face of the engine: submit rendered requests to the Scheduler, iterate their events.

The scheduler decodes on its own worker thread and calls back there; this module hands the events
to the server's event loop (`Dispatcher`: one wake-up per decode step, not per event), so request
handlers simply `async for event in generation`. Leaving that loop early (the client disconnected,
the handler was cancelled) cancels the scheduler tickets, which frees their batch rows at the next
decode step.

`LocalEngineClient` and the upstream `GatewayClient` (serve/gateway.py) are interchangeable behind
the serving layer: both render requests in the family's formats and return a `Generation`.

Submitting tokenizes the prompt, which for a multi-megabyte prompt takes seconds: it runs on a
worker thread so that the event loop keeps serving other clients (and /health) meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from typing import Any, Protocol

from codelm.engine import Completion, Engine, Request
from codelm.engine.scheduler import Event, Scheduler, Ticket
from codelm.errors import RequestError
from codelm.models.registry import Family

log = logging.getLogger(__name__)


class Generation(Protocol):
    """Events of one or more submitted prompts; sample i of prompt k has index k * n + i."""

    prompt_tokens: int
    error: str | None

    def __aiter__(self) -> AsyncIterator[Event]: ...

    def completions(self) -> list[Completion]:
        """Final, post-processed samples in index order; call after iterating every event."""
        ...

    def cancel(self) -> None: ...


class Backend(Protocol):
    """What the serving layer needs from whatever generates: render, start, report load."""

    family: Family
    context_window: int | None

    def completion_request(self, prompt: str, **sampling: Any) -> Request: ...
    def infill_request(self, prefix: str, suffix: str, **sampling: Any) -> Request: ...
    def chat_request(self, messages: Sequence[dict[str, Any]], **sampling: Any) -> Request: ...

    async def start(
        self, requests: Sequence[Request], timeout_s: float | None = None, check_budget: bool = False
    ) -> Generation: ...

    def load(self) -> dict[str, float]: ...

    async def aclose(self) -> None: ...


class Dispatcher:
    """Hands events from the worker thread to the event loop in bulk.

    Waking the loop costs a system call, and a decode step of a batch of B requests yields B
    events at once: the first event of a step schedules one `drain`, later ones only append.
    Events that pile up for one sample while the loop is busy are merged into one (vLLM merges
    outputs of a lagging consumer too), so a slow client costs fewer, larger chunks.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._lock = threading.Lock()
        self._pending: list[tuple[LocalGeneration, int, Event]] = []
        self._scheduled = False

    def post(self, gen: LocalGeneration, offset: int, ev: Event) -> None:  # worker thread
        with self._lock:
            self._pending.append((gen, offset, ev))
            if self._scheduled:
                return
            self._scheduled = True
        self.loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:  # event loop
        with self._lock:
            batch, self._pending, self._scheduled = self._pending, [], False
        for gen, offset, ev in batch:
            gen.put(replace(ev, index=ev.index + offset))


class LocalGeneration:
    """Scheduler tickets of one HTTP request; their events arrive through the Dispatcher."""

    def __init__(self, dispatcher: Dispatcher) -> None:
        self._dispatcher = dispatcher
        self._events: deque[Event] = deque()
        self._ready = asyncio.Event()
        self.tickets: list[Ticket] = []
        self.prompt_tokens = 0
        self._rows = 0  # samples submitted so far: the index offset of the next ticket
        self._open = 0

    def submit(self, scheduler: Scheduler, request: Request, timeout_s: float | None) -> None:
        offset, post = self._rows, self._dispatcher.post
        ticket = scheduler.submit(request, lambda ev: post(self, offset, ev), timeout_s)
        self.tickets.append(ticket)
        self.prompt_tokens += ticket.prompt_tokens
        self._rows += len(ticket.rows)
        self._open += len(ticket.rows)

    def put(self, ev: Event) -> None:
        last = self._events[-1] if self._events else None
        if last is not None and last.index == ev.index and last.finish_reason is None:
            last.text += ev.text  # not yet seen by the consumer: merge
            last.reasoning += ev.reasoning
            if ev.logprobs:
                last.logprobs = [*(last.logprobs or []), *ev.logprobs]
            last.finish_reason, last.completion_tokens = ev.finish_reason, ev.completion_tokens
        else:
            self._events.append(ev)
        self._ready.set()

    async def __aiter__(self) -> AsyncIterator[Event]:
        try:
            while self._open:
                if not self._events:
                    self._ready.clear()
                    await self._ready.wait()
                    continue
                ev = self._events.popleft()
                if ev.finish_reason:
                    self._open -= 1
                yield ev
        finally:
            if self._open:  # the consumer left early: stop generating for nobody
                self.cancel()

    @property
    def error(self) -> str | None:
        return next((t.error for t in self.tickets if t.error), None)

    def completions(self) -> list[Completion]:
        return [c for t in self.tickets for c in t.result().completions]

    def cancel(self) -> None:
        for t in self.tickets:
            t.cancel()


def _abandoned(gen: LocalGeneration, work: asyncio.Future[None]) -> None:
    """Submission finished after its client left: cancel what it submitted."""
    gen.cancel()
    if not work.cancelled() and work.exception() is not None:
        log.info("a request whose client had left failed to start: %s", work.exception())


class LocalEngineClient:
    """An in-process Engine behind a continuous-batching Scheduler."""

    def __init__(self, engine: Engine, max_batch_size: int = 32, max_queue: int = 256) -> None:
        self.engine = engine
        self.family = engine.family
        self.context_window: int | None = engine.context_window
        self.max_batch_size = max_batch_size
        self.scheduler = Scheduler(engine, max_batch_size=max_batch_size, max_queue=max_queue).start()
        self._dispatcher: Dispatcher | None = None  # bound to the serving event loop on first use

    def completion_request(self, prompt: str, **sampling: Any) -> Request:
        return self.engine.completion_request(prompt, **sampling)

    def infill_request(self, prefix: str, suffix: str, **sampling: Any) -> Request:
        return self.engine.infill_request(prefix, suffix, **sampling)

    def chat_request(self, messages: Sequence[dict[str, Any]], **sampling: Any) -> Request:
        return self.engine.chat_request(messages, **sampling)

    def token_text(self, token_id: int) -> str:
        return self.engine.token_text(token_id)

    def token_bytes(self, token_id: int) -> bytes:
        return self.engine.token_bytes(token_id)

    def prompt_tokens(self, prompt: str) -> int:
        """How many tokens `prompt` takes, without building id lists for one that cannot fit.

        The tokenizer releases the GIL while it works, but turning millions of ids into Python
        lists does not (a 5 MB prompt held it for ~0.3 s, stalling the event loop), so a prompt
        with more characters than the window has tokens is first counted on the raw tokenizer.
        """
        window = self.engine.context_window
        raw = getattr(self.engine.tokenizer, "_tokenizer", None)
        if raw is not None and len(prompt) > window:
            count = len(raw.encode_batch([prompt], add_special_tokens=False)[0])
            if count >= window:
                return count
        return len(self.engine.encode(prompt))

    def check_fits(self, request: Request, check_budget: bool) -> None:
        """The prompt must fit the context window; with `check_budget`, an explicit max_tokens
        too (the engine would silently shorten it; OpenAI and vLLM refuse instead, so clients
        learn their limit)."""
        window = self.engine.context_window
        prompt = self.prompt_tokens(request.prompt)
        if prompt >= window:
            raise RequestError(
                f"prompt is {prompt} tokens, which does not fit the model's context window of {window} tokens"
            )
        wanted = request.params.max_new_tokens
        if check_budget and prompt + wanted > window:
            raise RequestError(
                f"max_tokens is {wanted} but the prompt already uses {prompt} of the model's "
                f"{window}-token context window; ask for at most {window - prompt}"
            )

    async def start(
        self, requests: Sequence[Request], timeout_s: float | None = None, check_budget: bool = False
    ) -> LocalGeneration:
        """Submit every request now (errors raise here, before any response is sent).

        Checking and submitting tokenize, so they run on a worker thread. If the caller is
        cancelled meanwhile (the client left), whatever gets submitted is cancelled as it lands.
        """
        for r in requests:
            if r.params.n > self.max_batch_size:
                raise RequestError(
                    f"n is {r.params.n}; this server decodes at most {self.max_batch_size} rows"
                )
        loop = asyncio.get_running_loop()
        if self._dispatcher is None or self._dispatcher.loop is not loop:
            self._dispatcher = Dispatcher(loop)
        gen = LocalGeneration(self._dispatcher)
        work = asyncio.ensure_future(asyncio.to_thread(self._submit, gen, requests, timeout_s, check_budget))
        try:
            await asyncio.shield(work)
        except asyncio.CancelledError:
            work.add_done_callback(lambda done: _abandoned(gen, done))
            raise
        return gen

    def _submit(
        self, gen: LocalGeneration, requests: Sequence[Request], timeout_s: float | None, check_budget: bool
    ) -> None:  # worker thread
        try:
            for r in requests:
                self.check_fits(r, check_budget)
            for r in requests:
                gen.submit(self.scheduler, r, timeout_s)
        except BaseException:
            gen.cancel()  # e.g. the queue filled up after the first prompt of a batch
            raise

    def load(self) -> dict[str, float]:
        s = self.scheduler
        return {
            "queue_depth": s.queue_depth,
            "running_rows": s.running_rows,
            "batch_rows_max": s.stats.max_rows,  # the largest batch decoded so far
            "cancelled_rows": s.stats.cancelled,
        }

    async def aclose(self) -> None:
        await asyncio.to_thread(self.scheduler.close)
