"""Exact dedup: identical content dropped, first copy kept, whitespace option."""

from codelm.data import run_pipeline
from codelm.data.steps import ExactDedup

from ..helpers import doc


def test_exact_duplicates_removed_first_kept(stdlib_docs):
    docs = [doc(d.text, d.id) for d in stdlib_docs[:10]]
    copies = [doc(d.text, d.id + ".copy") for d in docs[:4]]
    out, stats = run_pipeline([ExactDedup()], docs + copies)
    kept = list(out)
    assert [d.id for d in kept] == [d.id for d in docs]
    assert stats["exact_dedup"].dropped == {"exact_duplicate": 4}
    assert copies[0].metadata["duplicate_of"] == docs[0].id
    stats.check()


def test_whitespace_normalization_is_opt_in():
    a, b = doc("x = 1\n", "a"), doc("x = 1   \r\n", "b")
    assert len(list(ExactDedup()(iter([a, b])))) == 2
    assert len(list(ExactDedup(normalize_whitespace=True)(iter([doc(a.text, "a"), doc(b.text, "b")])))) == 1
