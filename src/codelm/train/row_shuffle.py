"""Rows drawn from a shuffle buffer, so that one batch mixes many documents.

`PretrainSource` cuts documents into consecutive rows: a batch of 32 rows of 256 tokens is 8,192
consecutive tokens, i.e. one to three source files, and successive gradients are strongly
correlated (the tiny recipe's training loss jumped between 4 and 6.5 from step to step). LLM
pretraining pipelines shuffle at the sequence level instead (GPT-NeoX, Megatron and nanoGPT sample
rows, not documents). `RowShuffle` reads `buffer` rows ahead from its source and hands them out in a
seeded random order, then refills.

Resumable exactly: the state is the inner source's state at the start of the current buffer, the
buffer's number and how many of its rows were handed out; restoring re-reads the same buffer from
the same inner state and skips what was used. Every draw depends only on (seed, buffer number), not
on the number of processes, like the sources it wraps.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from codelm.train.packing import Row


class RowShuffle:
    """Wrap a `Source` (rows_per_unit 1): hand out its rows in a shuffled order, `buffer` at a time."""

    def __init__(self, source: Any, buffer: int, seed: int = 0) -> None:
        if source.rows_per_unit != 1:
            raise ValueError("row shuffling is for sources of single rows")
        if buffer < 2:
            raise ValueError("the shuffle buffer needs at least 2 rows")
        self.source, self.buffer, self.seed = source, buffer, seed
        self.rows_per_unit = 1
        self.number, self.used = 0, 0
        self._start = source.state_dict()  # the inner state the current buffer was read from
        self._rows: list[Row] = []

    def _fill(self) -> None:
        self._start = self.source.state_dict()
        rows = self.source.next_units(self.buffer)
        order = np.random.default_rng([self.seed, self.number, 0x5A0F]).permutation(len(rows))
        self._rows = [rows[i] for i in order]

    def next_units(self, n: int) -> list[Row]:
        out: list[Row] = []
        while len(out) < n:
            if not self._rows or self.used == len(self._rows):
                if self._rows:  # this buffer is spent: the next one
                    self.number, self.used = self.number + 1, 0
                self._fill()
            take = min(n - len(out), len(self._rows) - self.used)
            out += self._rows[self.used : self.used + take]
            self.used += take
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"inner": self._start, "buffer": self.number, "used": self.used, "filled": bool(self._rows)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.source.load_state_dict(state["inner"])
        self.number, self.used = state["buffer"], state["used"]
        self._rows = []
        if state.get("filled"):
            self._fill()  # the same rows, in the same order, as before the interruption

    def lineage(self) -> dict[str, Any]:
        return {**self.source.lineage(), "row_shuffle": self.buffer}
