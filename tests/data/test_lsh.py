"""Banding, candidate pairs, union-find and clustering."""

import numpy as np

from codelm.data.lsh import (
    SetStore,
    UnionFind,
    band_keys,
    bucket_groups,
    candidate_pairs,
    cluster,
    group_pairs,
    jaccard,
)
from codelm.data.minhash import MinHashConfig, MinHasher


def test_union_find_root_is_the_smallest_index():
    uf = UnionFind(6)
    assert uf.union(4, 2) and uf.union(5, 4) and uf.union(3, 1)
    assert not uf.union(2, 5)
    assert uf.roots().tolist() == [0, 1, 2, 1, 2, 2]


def test_buckets_and_pairs():
    sigs = np.array([[1, 2, 3, 4], [1, 2, 9, 9], [7, 7, 3, 4], [5, 5, 5, 5]], dtype=np.uint32)
    keys = band_keys(sigs, 2, 2)
    assert keys.shape == (4, 2)
    assert [g.tolist() for g in bucket_groups(keys)] == [[0, 1], [0, 2]]
    assert candidate_pairs(keys).tolist() == [[0, 1], [0, 2]]
    assert candidate_pairs(keys, valid=np.array([True, False, True, True])).tolist() == [[0, 2]]


def test_big_groups_are_checked_as_star_plus_chain():
    g = np.arange(10, 20)
    assert len(group_pairs(g, None)) == 45
    pairs = group_pairs(g, 4)
    assert len(pairs) == 9 + 8 and {10} == {int(p[0]) for p in pairs[:9]}


def test_jaccard():
    a, b = np.array([1, 2, 3, 4], np.uint64), np.array([3, 4, 5], np.uint64)
    assert jaccard(a, b) == 2 / 5 and jaccard(a, a) == 1.0 and jaccard(a, b[:0]) == 0.0


def test_cluster_verified_rejects_lsh_false_positives():
    texts = ["alpha beta gamma delta epsilon zeta eta theta iota kappa"] * 2 + ["unrelated words here"]
    mh = MinHasher(MinHashConfig(shingle_size=2))
    sigs = mh.signatures(texts)
    sigs[2] = sigs[0]  # force a bucket collision with a dissimilar text
    sets = mh.shingler.shingle_sets(texts)
    plain = cluster(sigs, MinHashConfig(shingle_size=2, verify=False))
    assert plain.roots.tolist() == [0, 0, 0]
    for budget in (64 << 20, 0):  # sets in memory, then all spilled to the temporary file
        checked = cluster(
            sigs,
            MinHashConfig(shingle_size=2),
            shingle_sets=lambda idx: [(i, sets[i]) for i in reversed(idx)],  # any order will do
            max_ram_bytes=budget,
        )
        assert checked.roots.tolist() == [0, 0, 2]
        assert checked.duplicates.tolist() == [1]
        assert checked.counters["merged_pairs"] == 1


def test_set_store_keeps_its_memory_budget_and_reads_spilled_sets_back_exactly():
    rng = np.random.default_rng(0)
    sets = [np.unique(rng.integers(0, 2**64, size=n, dtype=np.uint64)) for n in (100, 0, 300, 50)]
    store = SetStore(max_ram_bytes=1000)  # room for the first set only (800 bytes)
    for i, s in enumerate(sets):
        store.add(i, s)
    store.seal()
    try:
        assert store.ram_bytes == 800 and store.spilled_bytes == 8 * (300 + 50)
        for i, s in enumerate(sets):
            assert store[i].dtype == np.uint64 and np.array_equal(store[i], s)
    finally:
        store.close()
