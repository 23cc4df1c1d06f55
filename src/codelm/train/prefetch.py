"""Prepare the next steps' batches in a background thread while the model computes the current one.

Packing, FIM re-tokenization and collation are CPU work that would otherwise sit between optimizer
steps; torch and the tokenizers release the GIL, so one helper thread overlaps them with the forward
and backward passes (on a GPU box this keeps the device busy; on CPU it uses a spare core).

Exact resume is unaffected: the source is deterministic and runs ahead by at most `depth` steps, and
each prepared step carries the source position *after* it, which is what a checkpoint records for the
steps actually trained, never the position of steps merely prepared.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from codelm.train.packing import Batch


@dataclass
class StepData:
    """One optimizer step's data for this process."""

    micro: list[Batch]  # this process's micro-batches, collated on the CPU
    units: int  # loss units (target tokens or pairs) in the whole global batch
    tokens: int  # real tokens in the whole global batch
    state: dict[str, Any]  # the source position after this step
    fields: dict[str, Any] = field(default_factory=dict)  # logged with the step as they are (rl stats)


class Prefetcher:
    """Runs `produce()` ahead in a daemon thread; `next()` returns results in order."""

    def __init__(self, produce: Callable[[], StepData], depth: int = 2) -> None:
        self._produce = produce
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="codelm-prefetch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                item = self._produce()
                while not self._stop.is_set():
                    try:
                        self._queue.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
        except BaseException as exc:  # handed to the training thread, which re-raises it
            self._queue.put(exc)

    def next(self) -> StepData:
        item = self._queue.get()
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self) -> None:
        self._stop.set()
        while self._thread.is_alive():
            try:
                self._queue.get(timeout=0.1)
            except queue.Empty:
                continue
        self._thread.join()


class Inline:
    """The prefetcher's interface without running ahead, for stages whose next step's data depends
    on the weights the current step updates (rl rollouts sample from the policy being trained)."""

    def __init__(self, produce: Callable[[], StepData], on_close: Callable[[], None] | None = None) -> None:
        self._produce, self._on_close = produce, on_close

    def next(self) -> StepData:
        return self._produce()

    def close(self) -> None:
        if self._on_close is not None:
            self._on_close()
