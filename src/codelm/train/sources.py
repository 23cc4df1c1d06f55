"""Data sources: where each stage's rows come from, and the exact position to resume from.

A source hands out rows (or DPO pairs) in one global order that does not depend on the number of
processes: every step takes the next `global_batch` units and each process keeps its slice. Its
`state_dict()` is a few integers (epoch, position, offset), saved with every checkpoint, and
everything random about a unit (the document order of an epoch, a document's FIM split) is drawn from
an RNG seeded by (seed, epoch, index), so a resumed run sees exactly the rows it would have seen.

`PretrainSource` packs shard documents (train/shards.py) into rows of `seq_len` tokens, applying FIM
per document on the fly (train/fim.py); a document longer than the room left in a row continues at the
start of the next row. The SFT and DPO sources live in train/chat.py.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from codelm.errors import CodelmError
from codelm.train.fim import FimTransform
from codelm.train.packing import Row
from codelm.train.shards import ShardReader


class Source(Protocol):
    """What the loop needs from a stage's data."""

    rows_per_unit: int  # 1, or 2 for DPO pairs (chosen, rejected)

    def next_units(self, n: int) -> list[Row]: ...
    def state_dict(self) -> dict[str, Any]: ...
    def load_state_dict(self, state: dict[str, Any]) -> None: ...
    def lineage(self) -> dict[str, Any]: ...


def epoch_order(n: int, seed: int, epoch: int, shuffle: bool) -> np.ndarray:
    """The order of `n` items in `epoch`: a seeded permutation, or 0..n-1."""
    if not shuffle:
        return np.arange(n)
    return np.random.default_rng([seed, epoch, 0x5EED]).permutation(n)


class PretrainSource:
    """Rows of exactly `seq_len` tokens packed from shard documents, FIM applied per document."""

    rows_per_unit = 1

    def __init__(
        self,
        reader: ShardReader,
        seq_len: int,
        fim: FimTransform,
        *,
        bos_id: int | None,
        eos_id: int,
        seed: int = 0,
        shuffle: bool = True,
    ) -> None:
        if len(reader) == 0:
            raise CodelmError("the shards hold no documents")
        if fim.rate > 0 and True in reader.fim_applied:
            raise CodelmError("these shards already have FIM applied by the data pipeline; set fim_rate: 0")
        self.reader, self.seq_len, self.fim = reader, seq_len, fim
        self.bos_id, self.eos_id = bos_id, eos_id
        self.seed, self.shuffle = seed, shuffle
        self.epoch, self.pos, self.offset = 0, 0, 0
        self._order: tuple[int, np.ndarray] | None = None
        self._doc: tuple[tuple[int, int], np.ndarray, np.ndarray] | None = None

    def _doc_index(self) -> int:
        if self._order is None or self._order[0] != self.epoch:
            self._order = (self.epoch, epoch_order(len(self.reader), self.seed, self.epoch, self.shuffle))
        return int(self._order[1][self.pos])

    def _current(self) -> tuple[np.ndarray, np.ndarray]:
        """Tokens of the current document after FIM, BOS and EOS, and where its segments start."""
        key = (self.epoch, self.pos)
        if self._doc is None or self._doc[0] != key:
            index = self._doc_index()
            rng = np.random.default_rng([self.seed, self.epoch, index])
            ids, starts = [], []
            for piece in self.fim(self.reader.document(index), rng):
                seg = ([self.bos_id] if self.bos_id is not None else []) + piece.ids
                seg += [self.eos_id] if piece.eos else []
                ids.extend(seg)
                starts.extend([True] + [False] * (len(seg) - 1))
            self._doc = (key, np.asarray(ids, dtype=np.int64), np.asarray(starts, dtype=bool))
        return self._doc[1], self._doc[2]

    def _advance(self) -> None:
        self.pos, self.offset = self.pos + 1, 0
        if self.pos == len(self.reader):
            self.epoch, self.pos = self.epoch + 1, 0

    def next_row(self) -> Row:
        ids, starts = [], []
        need = self.seq_len
        while need:
            doc, doc_starts = self._current()
            take = min(need, len(doc) - self.offset)
            ids.append(doc[self.offset : self.offset + take])
            st = doc_starts[self.offset : self.offset + take].copy()
            st[0] = True  # a row starts a segment, even mid-document
            starts.append(st)
            self.offset += take
            need -= take
            if self.offset == len(doc):
                self._advance()
        row_ids = np.concatenate(ids)
        row_starts = np.concatenate(starts)
        labels = row_ids.copy()
        labels[row_starts] = -100  # a segment's first token is never a target
        return Row(row_ids, labels, np.cumsum(row_starts) - 1)

    def next_units(self, n: int) -> list[Row]:
        return [self.next_row() for _ in range(n)]

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "pos": self.pos, "offset": self.offset}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch, self.pos, self.offset = int(state["epoch"]), int(state["pos"]), int(state["offset"])
        if self.pos >= len(self.reader):
            raise CodelmError("the checkpoint's data position is past the end of these shards")

    def lineage(self) -> dict[str, Any]:
        return {
            "kind": "shards",
            "documents": len(self.reader),
            "tokens": self.reader.num_tokens,
            "indexes": [
                {"stats": i.get("stats"), "tokenizer": i.get("tokenizer"), "lineage": i.get("lineage")}
                for i in self.reader.indexes
            ],
            "fim_rate": self.fim.rate,
            "fim_spm_rate": self.fim.spm_rate,
            "fim_line_rate": self.fim.line_rate,
            "position": self.state_dict(),
        }
