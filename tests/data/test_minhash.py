"""Vectorized shingling and MinHash: batch-independent, deterministic, and a good Jaccard estimate."""

import numpy as np
import pytest

from codelm.data import DataError
from codelm.data.lsh import jaccard
from codelm.data.minhash import MinHashConfig, MinHasher, ShingleHasher


def test_tokens_are_identifier_runs_and_hash_the_same_everywhere():
    h = ShingleHasher(2)
    tok, off = h.tokens(["foo(bar_1)", "", "  bar_1 + foo", "café"])
    assert off.tolist() == [0, 2, 2, 4, 5]
    assert tok[0] == tok[3] and tok[1] == tok[2] and tok[0] != tok[1]


def test_shingles_never_straddle_two_texts_and_short_texts_get_one():
    h = ShingleHasher(3)
    a = "a b c d"
    hashes, off = h.shingles([a, "x y", "", a])
    assert off.tolist() == [0, 2, 3, 3, 5]
    assert hashes[0:2].tolist() == hashes[3:5].tolist()
    none, off2 = h.shingles(["x y"], short=False)
    assert len(none) == 0 and off2.tolist() == [0, 0]


def test_lowercase_option():
    lower, exact = ShingleHasher(1, lowercase=True), ShingleHasher(1)
    assert lower.tokens(["Foo"])[0][0] == lower.tokens(["foo"])[0][0]
    assert exact.tokens(["Foo"])[0][0] != exact.tokens(["foo"])[0][0]


def test_signatures_do_not_depend_on_the_batch(stdlib_docs):
    texts = [d.text for d in stdlib_docs[:20]]
    mh = MinHasher()
    together = mh.signatures(texts)
    alone = np.stack([MinHasher().signatures([t])[0] for t in texts])
    assert together.dtype == np.uint32 and together.shape == (20, 128)
    assert np.array_equal(together, alone)


def test_signatures_span_chunks_and_batches(monkeypatch, stdlib_docs):
    import codelm.data.minhash as mod

    texts = [d.text for d in stdlib_docs[:12]]
    reference = MinHasher().signatures(texts)
    monkeypatch.setattr(mod, "CHUNK_SHINGLES", 257)  # documents cut across many chunks
    monkeypatch.setattr(mod, "BATCH_BYTES", 3000)  # and many small batches
    assert np.array_equal(MinHasher().signatures(texts), reference)


def test_empty_text_has_no_shingles():
    sigs = MinHasher().signatures(["", "x = 1", "!!! ..."])
    assert MinHasher.has_shingles(sigs).tolist() == [False, True, False]


def test_signature_agreement_estimates_jaccard(stdlib_docs):
    base = stdlib_docs[5].text
    lines = base.splitlines()
    edited = "\n".join(line + "  # changed" if i % 7 == 0 else line for i, line in enumerate(lines))
    cfg = MinHashConfig(num_bands=32, rows_per_band=8)  # 256 permutations: standard error ~0.03
    mh = MinHasher(cfg)
    a, b = mh.signatures([base, edited])
    sa, sb = mh.shingler.shingle_sets([base, edited])
    exact = jaccard(sa, sb)
    assert 0.3 < exact < 0.95
    assert abs(np.mean(a == b) - exact) < 0.12


def test_config_validation():
    with pytest.raises(DataError, match="threshold"):
        MinHashConfig(threshold=0)
    with pytest.raises(DataError, match="num_bands"):
        MinHashConfig(num_bands=0)
    assert MinHashConfig().num_perm == 128
