"""LSH banding, candidate pairs and union-find clustering of MinHash signatures.

Index order is preference order: the caller puts documents in the order of a stable key (the
dedup step sorts by `Document.id`), so "keep the lowest index of each cluster" is deterministic
whatever order the shards arrived in. Two modes:

* unverified (datatrove, OpenCoder): every pair sharing a band bucket is a duplicate; each bucket
  is joined as a star around its lowest index, which gives the same components as all its pairs;
* verified (BigCode): candidate pairs are checked by exact Jaccard of their shingle sets before
  they are merged, which removes the LSH false positives (pairs below the threshold that collide).
  A bucket of more than `max_group_all_pairs` documents is checked as a star around its lowest
  index plus a chain through the rest, bounding the work on huge clusters of boilerplate files.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import BinaryIO

import numpy as np

from codelm.data.minhash import U64, MinHashConfig, mix64


def band_keys(signatures: np.ndarray, num_bands: int, rows_per_band: int) -> np.ndarray:
    """(docs, num_bands) uint64 bucket keys: the rows of each band hashed together."""
    n = signatures.shape[0]
    bands = signatures[:, : num_bands * rows_per_band].reshape(n, num_bands, rows_per_band).astype(U64)
    rng = np.random.default_rng(7)
    mults = rng.integers(1, 2**63, size=rows_per_band, dtype=np.int64).astype(U64) | U64(1)
    keys = np.zeros((n, num_bands), dtype=U64)
    for r in range(rows_per_band):
        keys += bands[:, :, r] * mults[r]
    return mix64(keys)


def bucket_groups(keys: np.ndarray, valid: np.ndarray | None = None) -> Iterator[np.ndarray]:
    """Every bucket with two or more documents, as ascending index arrays, band by band."""
    idx = np.arange(keys.shape[0]) if valid is None else np.flatnonzero(valid)
    for band in range(keys.shape[1]):
        k = keys[idx, band]
        order = np.lexsort((idx, k))
        ks, members = k[order], idx[order]
        new = np.ones(len(ks), dtype=bool)
        new[1:] = ks[1:] != ks[:-1]
        starts = np.flatnonzero(new)
        sizes = np.diff(np.append(starts, len(ks)))
        for s, size in zip(starts[sizes > 1].tolist(), sizes[sizes > 1].tolist(), strict=True):
            yield members[s : s + size]


def group_pairs(group: np.ndarray, max_all_pairs: int | None) -> np.ndarray:
    """(k, 2) pairs to examine in one bucket: all pairs, or star + chain for a big bucket."""
    g = len(group)
    if max_all_pairs is None or g <= max_all_pairs:
        i, j = np.triu_indices(g, 1)
        return np.stack([group[i], group[j]], axis=1)
    star = np.stack([np.full(g - 1, group[0]), group[1:]], axis=1)
    chain = np.stack([group[1:-1], group[2:]], axis=1)
    return np.concatenate([star, chain])


def candidate_pairs(
    keys: np.ndarray, valid: np.ndarray | None = None, max_all_pairs: int | None = None
) -> np.ndarray:
    """Unique (i < j) pairs sharing at least one bucket, sorted; (0, 2) if none."""
    parts = [group_pairs(g, max_all_pairs) for g in bucket_groups(keys, valid)]
    if not parts:
        return np.empty((0, 2), dtype=np.int64)
    return np.unique(np.concatenate(parts).astype(np.int64), axis=0)


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Exact Jaccard similarity of two sorted unique hash arrays."""
    if len(a) == 0 or len(b) == 0:
        return 0.0
    if len(a) > len(b):
        a, b = b, a
    pos = np.minimum(np.searchsorted(b, a), len(b) - 1)
    inter = int(np.count_nonzero(b[pos] == a))
    return inter / (len(a) + len(b) - inter)


class UnionFind:
    """Disjoint sets over 0..n-1 whose root is always the smallest index of the set."""

    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, x: int) -> int:
        parent = self.parent
        while parent[x] != x:
            parent[x] = parent[parent[x]]  # path halving
            x = parent[x]
        return x

    def union(self, a: int, b: int) -> bool:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return False
        if rb < ra:
            ra, rb = rb, ra
        self.parent[rb] = ra
        return True

    def roots(self) -> np.ndarray:
        return np.array([self.find(i) for i in range(len(self.parent))], dtype=np.int64)


@dataclass
class Clustering:
    """Result of `cluster`: `roots[i]` is the index kept for document i (i itself if kept)."""

    roots: np.ndarray
    counters: dict[str, int] = field(default_factory=dict)

    @property
    def duplicates(self) -> np.ndarray:
        return np.flatnonzero(self.roots != np.arange(len(self.roots)))


#: memory for candidates' shingle sets before `cluster` spills them to a temporary file
SET_RAM_BYTES = 64 << 20
#: yields `(index, sorted unique shingle hashes)` for each requested index, in any order
SetSource = Callable[[Sequence[int]], Iterable[tuple[int, np.ndarray]]]


class SetStore:
    """The shingle sets of the candidate documents, in memory up to `max_ram_bytes`, then spilled.

    Verification needs every candidate's set, and on a corpus full of near-duplicates nearly every
    document is a candidate: 8 bytes per shingle, more than the text itself. Past the budget, sets
    are appended to an anonymous temporary file and read back one at a time (`os.pread`), so the
    memory of `cluster` stays O(documents) (signatures, bucket keys, pairs), not O(text).
    """

    def __init__(self, max_ram_bytes: int = 64 << 20) -> None:
        self.max_ram_bytes = max_ram_bytes
        self.ram_bytes = self.spilled_bytes = 0
        self._ram: dict[int, np.ndarray] = {}
        self._disk: dict[int, tuple[int, int]] = {}  # index -> (byte offset, length)
        self._file: BinaryIO | None = None

    def add(self, index: int, hashes: np.ndarray) -> None:
        if self.ram_bytes + hashes.nbytes <= self.max_ram_bytes:
            self._ram[index] = hashes
            self.ram_bytes += hashes.nbytes
            return
        if self._file is None:
            self._file = tempfile.TemporaryFile(prefix="codelm-shingles-")  # noqa: SIM115 - closed in close()
        self._disk[index] = (self.spilled_bytes, len(hashes))
        self._file.write(np.ascontiguousarray(hashes, dtype="<u8").tobytes())
        self.spilled_bytes += hashes.size * 8

    def __getitem__(self, index: int) -> np.ndarray:
        found = self._ram.get(index)
        if found is not None:
            return found
        assert self._file is not None, f"no shingle set stored for document {index}"
        offset, length = self._disk[index]
        return np.frombuffer(os.pread(self._file.fileno(), length * 8, offset), dtype="<u8")

    def seal(self) -> None:
        """Done adding: make the spilled sets readable."""
        if self._file is not None:
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def cluster(
    signatures: np.ndarray,
    config: MinHashConfig,
    shingle_sets: SetSource | None = None,
    valid: np.ndarray | None = None,
    max_ram_bytes: int | None = None,
) -> Clustering:
    """Connected components of near-duplicate documents.

    `shingle_sets(indices)` yields `(index, sorted unique shingle hashes)` for those documents, in
    any order; it is required when `config.verify` is on and called once, for the documents in
    candidate pairs. Their sets are held in a `SetStore`: past `max_ram_bytes` (default
    `SET_RAM_BYTES`) they go to a temporary file, so memory does not grow with the corpus's text.
    """
    keys = band_keys(signatures, config.num_bands, config.rows_per_band)
    uf = UnionFind(signatures.shape[0])
    counters: dict[str, int] = {}
    if not config.verify:
        edges = 0
        for group in bucket_groups(keys, valid):
            for j in group[1:].tolist():
                edges += uf.union(int(group[0]), j)
        counters["merged_pairs"] = edges
        return Clustering(uf.roots(), counters)
    if shingle_sets is None:
        raise ValueError("cluster(verify=True) needs shingle_sets to compute exact Jaccard")
    pairs = candidate_pairs(keys, valid, config.max_group_all_pairs)
    docs = np.unique(pairs).tolist()
    store = SetStore(SET_RAM_BYTES if max_ram_bytes is None else max_ram_bytes)
    try:
        for index, hashes in shingle_sets(docs):
            store.add(int(index), hashes)
        store.seal()
        checked = accepted = 0
        last, set_i = -1, np.empty(0, dtype=U64)
        for i, j in pairs.tolist():  # sorted by i: each i's set is fetched once
            if uf.find(i) == uf.find(j):
                continue  # already connected: this pair cannot change the components
            if i != last:
                last, set_i = i, store[i]
            checked += 1
            if jaccard(set_i, store[j]) >= config.threshold:
                accepted += 1
                uf.union(i, j)
    finally:
        store.close()
    counters.update(candidate_pairs=len(pairs), checked_pairs=checked, merged_pairs=accepted)
    return Clustering(uf.roots(), counters)
