"""The packed-shard format: what the writer writes the reader reads, and bad shards are refused."""

from __future__ import annotations

import json

import numpy as np
import pytest

from codelm.errors import CodelmError
from codelm.train.shards import ShardReader, ShardWriter, pack_texts, read_index, write_shards


def test_round_trip_across_shards(tmp_path):
    rng = np.random.default_rng(0)
    docs = [rng.integers(0, 70_000, size=n).tolist() for n in (5, 0, 17, 3, 40, 1)]
    out = write_shards(docs, tmp_path / "s", vocab_size=70_000, tokens_per_shard=20, lineage={"src": "test"})
    index = read_index(out)
    assert index["dtype"] == "uint32"  # 70k ids do not fit uint16
    assert [s["documents"] for s in index["shards"]] == [3, 2, 1]
    assert index["stats"] == {
        "documents": 6,
        "tokens": 66,
        "max_document_tokens": 40,
        "mean_document_tokens": 11.0,
    }
    reader = ShardReader(out)
    assert len(reader) == 6 and reader.num_tokens == 66
    for i, d in enumerate(docs):
        assert reader.document(i).tolist() == d
    with pytest.raises(IndexError):
        reader.document(6)


def test_on_disk_layout_is_raw_little_endian(tmp_path):
    out = write_shards([[1, 2, 3], [4]], tmp_path / "s", vocab_size=100)
    assert np.fromfile(out / "shard-00000.tokens", dtype="<u2").tolist() == [1, 2, 3, 4]
    assert np.fromfile(out / "shard-00000.offsets", dtype="<i8").tolist() == [0, 3, 4]


def test_several_directories_read_as_one(tmp_path):
    a = write_shards([[1, 2]], tmp_path / "a", vocab_size=10)
    b = write_shards([[3], [4, 5]], tmp_path / "b", vocab_size=10)
    reader = ShardReader([a, b])
    assert [reader.document(i).tolist() for i in range(3)] == [[1, 2], [3], [4, 5]]


def test_incomplete_or_mismatched_shards_are_refused(tmp_path, tokenizer_of):
    with pytest.raises(CodelmError, match="no index.json"):
        ShardReader(tmp_path)
    with pytest.raises(RuntimeError), ShardWriter(tmp_path / "x", vocab_size=10) as w:
        w.add([1])
        raise RuntimeError
    assert not (tmp_path / "x" / "index.json").exists()
    with pytest.raises(CodelmError, match="out of range"), ShardWriter(tmp_path / "y", vocab_size=10) as w:
        w.add([10])
    llama, gemma = tokenizer_of("llama"), tokenizer_of("codegemma")
    out = pack_texts(["def f():\n    pass\n"], llama, tmp_path / "z", family="llama")
    ShardReader(out).check_tokenizer(llama)
    with pytest.raises(CodelmError, match="different tokenizer"):
        ShardReader(out).check_tokenizer(gemma)
    index = json.loads((out / "index.json").read_text())
    index["shards"][0]["tokens"] += 1
    (out / "index.json").write_text(json.dumps(index))
    with pytest.raises(CodelmError, match="does not match"):
        ShardReader(out)
    with pytest.raises(CodelmError, match="already holds shards"):
        ShardWriter(out, vocab_size=10)


def test_module_cli_packs_text_files(tmp_path, tiny_checkpoint, capsys):
    from codelm.train.shards import main

    (tmp_path / "a.py").write_text("print(1)\n")
    (tmp_path / "b.py").write_text("print(2)\n")
    main(
        ["--tokenizer", str(tiny_checkpoint("llama")), "--input", str(tmp_path), "--out", str(tmp_path / "s")]
    )
    assert "2 documents" in capsys.readouterr().out
    assert len(ShardReader(tmp_path / "s")) == 2
