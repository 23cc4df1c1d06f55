"""Replay: mix rows of pretraining data into a fine-tuning stage, so it does not unlearn pretraining.

A small model fine-tuned on a narrow set (the tiny recipe's 1,250 docstring -> function pairs) loses
what pretraining taught it: held-out perplexity rose 68 -> 79 and every FIM hit was lost in one SFT
epoch at lr 3e-4 (docs/recipes.md). Mixing a share of pretraining rows into the fine-tuning batches
("replay", as in continual-learning practice and instruction-tuning mixtures such as FLAN's, Chung et
al. 2022, and Llama 2's pretraining-data share in its fine-tuning mix is the same idea) keeps those
abilities while the new format is learnt.

`Replay` interleaves two sources in one global order that does not depend on the number of
processes: unit `i` (counted from the stage's start) comes from the replay source when
`floor((i + 1) * fraction) > floor(i * fraction)`, else from the main source. Its state is the count
and both sources' states, so a resumed run sees exactly the rows it would have seen.
"""

from __future__ import annotations

import math
from typing import Any

from codelm.train.packing import Row


class Replay:
    """Hand out `main`'s rows with a share `fraction` of `replay`'s interleaved (rows_per_unit 1)."""

    def __init__(self, main: Any, replay: Any, fraction: float) -> None:
        if main.rows_per_unit != 1 or replay.rows_per_unit != 1:
            raise ValueError("replay mixes sources of single rows")
        if not 0.0 < fraction < 1.0:
            raise ValueError("the replay fraction is between 0 and 1")
        self.main, self.replay, self.fraction = main, replay, fraction
        self.rows_per_unit = 1
        self.count = 0

    def _replayed(self, i: int) -> bool:
        return math.floor((i + 1) * self.fraction) > math.floor(i * self.fraction)

    def next_units(self, n: int) -> list[Row]:
        flags = [self._replayed(self.count + k) for k in range(n)]
        replayed = iter(self.replay.next_units(sum(flags)))
        main = iter(self.main.next_units(n - sum(flags)))
        self.count += n
        return [next(replayed) if flag else next(main) for flag in flags]

    def state_dict(self) -> dict[str, Any]:
        return {"count": self.count, "main": self.main.state_dict(), "replay": self.replay.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.count = state["count"]
        self.main.load_state_dict(state["main"])
        self.replay.load_state_dict(state["replay"])

    def lineage(self) -> dict[str, Any]:
        return {**self.main.lineage(), "replay": {**self.replay.lineage(), "fraction": self.fraction}}
