"""Continuous batching: one worker thread owns the model, and requests join the running batch.

Between two decode steps the worker admits waiting requests: it prefills them as a batch of their
own and merges that into the running batch (`decode.merge`), so a request arriving mid-generation
starts at the next step instead of waiting for the whole batch to drain. Admitted prompts are
prefilled in groups of similar length (`length_groups`): one left-padded prefill of 16 stdlib-code
prompts of 90-169 tokens computed 44% padding, and prefill is a third of a 16-stream serving run
of a 30M model (py-spy, bench/serve_llamacpp.py). Finished, cancelled and
timed-out rows leave at once and free their cache rows. The queue is bounded: when it is full,
`submit` raises `QueueFullError` (the server answers 503).

    scheduler = Scheduler(engine).start()
    ticket = scheduler.submit(request, on_event)   # on_event(Event) runs on the worker thread
    ticket.cancel()                                # e.g. the client disconnected
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from codelm.engine.decode import Batch, Row
from codelm.engine.engine import Engine
from codelm.engine.params import Request, Result, TokenLogprob
from codelm.errors import CodelmError

log = logging.getLogger(__name__)


PREFILL_SLACK = 0.15  # a prefill group may compute this share of padding on top of its prompts


def length_groups(rows: list[Row], slack: float = PREFILL_SLACK) -> list[list[Row]]:
    """`rows` in groups of similar prompt length, each padded by at most `slack` of its tokens.

    A left-padded prefill computes every row at the longest prompt's length; splitting by length
    trades that padding for one more forward call and one more (cheap) cache merge per group.
    """
    groups: list[list[Row]] = []
    tokens = 0
    for row in sorted(rows, key=lambda r: len(r.prompt_ids)):
        n = len(row.prompt_ids)  # the group's longest so far, as rows come sorted
        if groups and n * (len(groups[-1]) + 1) <= (1 + slack) * (tokens + n):
            groups[-1].append(row)
            tokens += n
        else:
            groups.append([row])
            tokens = n
    return groups


class QueueFullError(CodelmError):
    """Too many requests are waiting; try again later."""


class SchedulerClosedError(CodelmError):
    """The scheduler has been shut down and takes no more requests."""


@dataclass
class Event:
    """New text of one sample; the sample's last event has finish_reason set."""

    index: int  # which of the request's n samples
    text: str  # a reasoning model's answer text; its thinking comes in `reasoning`
    finish_reason: str | None = None  # stop, length, cancelled, error
    completion_tokens: int = 0
    logprobs: list[TokenLogprob] | None = None  # of the tokens since the sample's previous event
    reasoning: str = ""


class Ticket:
    """A submitted request: cancel it, or read its Result once every sample has finished."""

    def __init__(
        self, engine: Engine, request: Request, callback: Callable[[Event], None], deadline: float | None
    ):
        self.engine, self.request, self.callback, self.deadline = engine, request, callback, deadline
        self.prompt_tokens, self.rows = engine.build_rows(request)  # validates now, in the caller's thread
        self.prompt_tokens = len(self.prompt_tokens)
        for r in self.rows:
            r.owner = self
        self.cancelled = False
        self.error: str | None = None
        self.done = threading.Event()
        self._open = len(self.rows)

    def cancel(self) -> None:
        self.cancelled = True

    def _finished(self, row: Row) -> None:
        reasoning, answer = row.split_tail()
        self._emit(Event(row.index, answer, row.finish_reason, row.generated, row.take_logprobs(), reasoning))
        self._open -= 1
        if self._open == 0:
            self.done.set()

    def _emit(self, event: Event) -> None:
        try:
            self.callback(event)
        except Exception:  # a consumer's bug must not kill the worker serving everyone else
            log.exception("event callback failed; cancelling request")
            self.cancelled = True

    def result(self) -> Result:
        """Completions cut and post-processed as `Engine.generate` returns them."""
        return Result(
            self.request, self.prompt_tokens, [self.engine.finish(self.request, r) for r in self.rows]
        )


@dataclass
class SchedulerStats:
    steps: int = 0
    max_rows: int = 0  # largest batch seen in one step
    admitted: int = 0
    cancelled: int = 0


class Scheduler:
    def __init__(self, engine: Engine, max_batch_size: int = 32, max_queue: int = 256) -> None:
        self.engine, self.max_batch_size, self.max_queue = engine, max_batch_size, max_queue
        self._pending: deque[Ticket] = deque()
        self._cond = threading.Condition()
        self._batch: Batch | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="codelm-scheduler", daemon=True)
        self.stats = SchedulerStats()

    def start(self) -> Scheduler:
        self._thread.start()
        return self

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join(timeout=30)

    @property
    def queue_depth(self) -> int:
        return len(self._pending)

    @property
    def running_rows(self) -> int:
        batch = self._batch
        return len(batch.rows) if batch else 0

    def submit(
        self, request: Request, callback: Callable[[Event], None], timeout_s: float | None = None
    ) -> Ticket:
        """Queue `request`; events go to `callback` on the worker thread."""
        ticket = Ticket(self.engine, request, callback, time.monotonic() + timeout_s if timeout_s else None)
        with self._cond:
            if self._closed:
                raise SchedulerClosedError("the scheduler is shut down")
            if len(self._pending) >= self.max_queue:
                raise QueueFullError(f"server busy: {len(self._pending)} requests are already waiting")
            self._pending.append(ticket)
            self._cond.notify()
        return ticket

    # -- worker ------------------------------------------------------------------------------------
    def _admit(self) -> list[Row]:
        rows: list[Row] = []
        room = self.max_batch_size - self.running_rows
        with self._cond:
            while not self._closed and not self._pending and not self._batch:
                self._cond.wait()
            # fill the free rows; a request larger than the whole batch runs alone when nothing else does
            while self._pending and (
                len(rows) + len(self._pending[0].rows) <= room or (not rows and self._batch is None)
            ):
                ticket = self._pending.popleft()
                if ticket.cancelled:
                    self._drop(ticket.rows, "cancelled")
                    continue
                rows.extend(ticket.rows)
                self.stats.admitted += 1
        return rows

    def _drop(self, rows: list[Row], reason: str) -> None:
        for row in rows:
            if row.finish_reason is None:
                reasoning, answer = row.split(row.finish(reason))
                if reasoning or answer:
                    row.owner._emit(Event(row.index, answer, reasoning=reasoning))
                row.owner._finished(row)
        if reason == "cancelled":
            self.stats.cancelled += len(rows)

    def _retire_early(self) -> None:
        """Remove rows whose request was cancelled or ran out of time, before paying for a step."""
        batch = self._batch
        now = time.monotonic()
        gone = [r for r in batch.rows if r.owner.cancelled or (r.owner.deadline and now > r.owner.deadline)]
        if not gone:
            return
        for r in gone:
            self._drop([r], "cancelled" if r.owner.cancelled else "length")
        keep = [j for j, r in enumerate(batch.rows) if r.finish_reason is None]
        if keep:
            self.engine.decoder.select(batch, keep)
        else:
            self._batch = None

    def _run(self) -> None:
        model, pad, ops = self.engine.model, self.engine.pad_id, self.engine.decoder
        while True:
            rows = self._admit()
            if self._closed:
                self._drop([r for t in self._pending for r in t.rows], "cancelled")
                if self._batch:
                    self._drop(self._batch.rows, "cancelled")
                return
            try:
                for group in length_groups(rows):
                    fresh = ops.prefill(model, group, pad)
                    self._batch = fresh if self._batch is None else ops.merge(self._batch, fresh)
                if self._batch is None:
                    continue
                self._retire_early()
                if self._batch is None:
                    continue
                self._step()
            except Exception as exc:  # the model failed mid-step: fail these requests, keep serving
                log.exception("generation step failed")
                victims = (self._batch.rows if self._batch else []) + [
                    r for r in rows if r.finish_reason is None
                ]
                for row in dict.fromkeys(victims):
                    row.owner.error = f"{type(exc).__name__}: {exc}"
                    self._drop([row], "error")
                self._batch = None

    def _step(self) -> None:
        batch = self._batch
        before = list(batch.rows)
        self.stats.steps += 1
        self.stats.max_rows = max(self.stats.max_rows, len(before))
        for row, piece in self.engine.decoder.choose_and_advance(batch):
            reasoning, answer = row.split(piece)
            logprobs = row.take_logprobs()
            if reasoning or answer or logprobs:  # a marker's start may be held back
                row.owner._emit(Event(row.index, answer, logprobs=logprobs, reasoning=reasoning))
        for row in before:
            if row.finish_reason is not None:
                row.owner._finished(row)
        if not batch.rows:
            self._batch = None
