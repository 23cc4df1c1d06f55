"""Pretraining rows: documents packed in order without loss, segments where documents start, exact resume."""

from __future__ import annotations

import numpy as np
import pytest

from codelm.models import get_family
from codelm.train.fim import FimTransform
from codelm.train.shards import ShardReader, tokenizer_info, write_shards
from codelm.train.sources import PretrainSource


def documents() -> list[str]:
    """ASCII code documents, short and long (several rows of 64 tokens), one a single long line."""
    rng = np.random.default_rng(0)
    docs = []
    for n in [3, 40, 1, 25, 8, 60]:
        lines = [f"def f{i}(x):\n    return x * {int(rng.integers(100))} + y{i}\n" for i in range(n)]
        docs.append("".join(lines))
    docs.insert(2, "x = '" + "ab " * 300 + "'\nprint(x)\n")
    return docs


@pytest.fixture
def make_source(tokenizer_of, tmp_path):
    tok = tokenizer_of("llama")
    ids = tok(documents(), add_special_tokens=False)["input_ids"]
    shards = write_shards(
        ids, tmp_path / "shards", vocab_size=len(tok), tokenizer=tokenizer_info(tok, "llama")
    )

    def make(rate: float, seq_len: int = 64, bos: bool = True) -> PretrainSource:
        fim = FimTransform(get_family("llama"), tok, rate, 0.5, 0.5, max_tokens=seq_len)
        bos_id = tok.bos_token_id if bos else None
        return PretrainSource(
            ShardReader(shards), seq_len, fim, bos_id=bos_id, eos_id=tok.eos_token_id, shuffle=False
        )

    return tok, ids, make


def test_rows_without_fim_are_the_documents_cut_in_order(make_source):
    tok, ids, make = make_source
    for bos in (True, False):
        rows = make(rate=0.0, bos=bos).next_units(60)
        head = [tok.bos_token_id] if bos else []
        stream = np.concatenate([head + d + [tok.eos_token_id] for d in ids] * 3)
        assert np.concatenate([r.ids for r in rows]).tolist() == stream[: 60 * 64].tolist()
        for row in rows:  # a segment starts at the row start and at each document start
            starts = np.flatnonzero(np.diff(row.segments, prepend=-1))
            assert (row.labels[starts] == -100).all()
            doc_starts = np.flatnonzero(row.ids == (tok.bos_token_id if bos else tok.eos_token_id))
            assert set((doc_starts + (0 if bos else 1)).tolist()) - {64} <= set(starts.tolist())


def test_a_resumed_source_hands_out_the_same_rows(make_source):
    _, _, make = make_source
    first = make(rate=0.5)
    first.next_units(17)
    state = first.state_dict()
    want = [r.ids.tolist() for r in first.next_units(40)]
    second = make(rate=0.5)
    second.load_state_dict(state)
    assert [r.ids.tolist() for r in second.next_units(40)] == want
