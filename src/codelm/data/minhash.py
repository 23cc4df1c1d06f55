"""Vectorized MinHash signatures over code-token shingles.

Near-dedup cost is dominated by hashing every shingle of every document, so this module never
loops over tokens in Python and touches each text byte only a few times. A batch of documents is
joined into one byte buffer and, with numpy only:

1. tokens are the maximal runs of identifier bytes `[A-Za-z0-9_]` plus all non-ASCII bytes
   (BigCode's near-dedup splits code on non-alphanumerics the same way): one `bytes.translate`
   to 0/1 and one comparison of neighbours give their starts and ends;
2. each token is hashed from its bytes read 8 at a time: an unaligned little-endian uint64 view
   of the buffer gives a token's first word with one gather, masked to its length (tokens hold no
   zero byte, so the masked word identifies a token of up to 8 bytes); the few longer tokens add
   `word_j * M_j` for their further words, then everything goes through the splitmix64 finalizer;
3. a shingle of n consecutive tokens is `mix(sum_k tok[i+k] * M_k)` for all windows at once;
   windows that straddle two documents are masked out; a document with fewer than n tokens gets
   one shingle of all its tokens;
4. the signature is a one-pass "fast similarity sketch" (Dahlgaard, Knudsen and Thorup 2017,
   the scheme rensa's R-MinHash adapts) instead of num_perm hashes of every shingle: in round r
   each shingle x hashes to one of the num_perm slots with a 32-bit value, and slot i keeps the
   smallest `(r, value)` that landed in it; rounds repeat, only for documents that still have an
   empty slot, up to `ROUNDS`; a slot still empty then takes `(ROUNDS, min_x (a_i * x + b_i) mod
   2^32)` over all the document's shingles (classic MinHash for that slot). Each slot's value is
   thus the minimum over the document's shingles of one key per shingle and slot, keys that are
   i.i.d. across shingles, so two documents agree in a slot with probability Jaccard (as with
   num_perm independent permutations), and the slots of one round, being a partition, even
   correlate negatively (less variance). A document of more than ~800 shingles fills every slot
   in round 0: about 2 hash evaluations per shingle instead of num_perm multiply-adds. Slots are
   folded to uint32 by the same finalizer (0xFFFFFFFF only for a text without tokens).

Everything is seeded, so signatures are identical across processes and machines; an executor can
compute them per shard and cluster the concatenation (see `codelm.data.lsh`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from codelm.data.config import StageConfig
from codelm.data.document import DataError

U64 = np.uint64
_WORD_TABLE = bytes(
    1 if chr(c) in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_" or c >= 128 else 0
    for c in range(256)
)  # UTF-8 multi-byte sequences count as word bytes: letters of other scripts stay inside tokens
_LOWER_TABLE = bytes(c + 32 if ord("A") <= c <= ord("Z") else c for c in range(256))

BATCH_BYTES = 2 << 20  # text bytes hashed per numpy pass: bounds the uint64 temporaries to ~50 MB
ROUNDS = 4  # sketch rounds before the empty slots of a (short) document fall back to MinHash
CHUNK_SHINGLES = 1 << 20  # (slot, shingle) keys per fallback pass: bounds its temporaries
_MAX64 = np.iinfo(np.uint64).max
_LOW32 = U64(0xFFFFFFFF)


def mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finalizer, in place on a uint64 array (a bijection that spreads every bit)."""
    x ^= x >> U64(30)
    x *= U64(0xBF58476D1CE4E5B9)
    x ^= x >> U64(27)
    x *= U64(0x94D049BB133111EB)
    x ^= x >> U64(31)
    return x


def _odd_u64(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.integers(0, 2**64 - 1, size=n, dtype=np.uint64, endpoint=True) | U64(1)


def _ragged_arange(lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For groups of the given lengths (>= 0): each element's group and its index inside it."""
    group = np.repeat(np.arange(len(lengths)), lengths)
    first = np.zeros(len(lengths), dtype=np.int64)
    np.cumsum(lengths[:-1], out=first[1:])
    return group, np.arange(len(group)) - first[group]


def _masked(words: np.ndarray, nbytes: np.ndarray) -> np.ndarray:
    """Keep the first `min(nbytes, 8)` bytes (the low ones: little-endian) of each word, in place."""
    shift = (64 - 8 * np.minimum(nbytes, 8)).astype(U64)
    words <<= shift
    words >>= shift
    return words


class ShingleHasher:
    """Hash the word tokens and token n-grams of many texts at once (see the module docstring)."""

    def __init__(self, n: int, *, lowercase: bool = False, seed: int = 0) -> None:
        if n < 1:
            raise DataError(f"shingle size must be >= 1, got {n}")
        rng = np.random.default_rng(seed)
        self.n, self.lowercase = n, lowercase
        self._word_mult = _odd_u64(rng, 2)  # first word, then the seed of the later words' multipliers
        self._mults = _odd_u64(rng, n)

    def tokens(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Token hashes of all texts, concatenated, and per-text offsets (len(texts) + 1)."""
        encoded = [t.encode("utf-8", "surrogatepass") for t in texts]
        # one separator byte between texts, so no token runs across two of them
        raw = b"\n".join(encoded)
        if self.lowercase:
            raw = raw.translate(_LOWER_TABLE)
        word = np.frombuffer(raw.translate(_WORD_TABLE), dtype=np.int8)
        edges = np.flatnonzero(word[1:] != word[:-1]) + 1
        if len(word) and word[0]:
            edges = np.concatenate([[0], edges])
        if len(word) and word[-1]:
            edges = np.concatenate([edges, [len(word)]])
        starts, lengths = edges[0::2], edges[1::2] - edges[0::2]
        padded = raw + bytes(8)  # so the last byte's word can be read
        words = np.ndarray((len(raw),), dtype="<u8", buffer=padded, strides=(1,))  # words[i]: bytes i..i+7
        acc = _masked(words[starts], lengths) * self._word_mult[0]
        long = np.flatnonzero(lengths > 8)
        if len(long):  # the later words of tokens longer than 8 bytes
            owner, j = _ragged_arange((lengths[long] - 1) // 8)
            j += 1
            pos = starts[long][owner] + 8 * j
            later = _masked(words[pos], lengths[long][owner] - 8 * j)
            later *= mix64(j.astype(U64) + self._word_mult[1]) | U64(1)
            first = np.zeros(len(long), dtype=np.int64)
            np.cumsum((lengths[long][:-1] - 1) // 8, out=first[1:])
            acc[long] += np.add.reduceat(later, first)
        hashes = mix64(acc)
        text_starts = np.zeros(len(texts), dtype=np.int64)
        if len(texts) > 1:
            np.cumsum([len(e) + 1 for e in encoded[:-1]], out=text_starts[1:])
        offsets = np.empty(len(texts) + 1, dtype=np.int64)
        offsets[:-1] = np.searchsorted(starts, text_starts)  # first token at or after each text's start
        offsets[-1] = len(starts)
        return hashes, offsets

    def shingles(self, texts: Sequence[str], *, short: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Hashes of every n-token window of every text, concatenated, and per-text offsets.

        short: give a text of 1..n-1 tokens one shingle of all its tokens (else none).
        """
        tok, tok_off = self.tokens(texts)
        n, counts = self.n, np.diff(tok_off)
        per_text = np.where(counts >= n, counts - n + 1, np.minimum(counts, 1) if short else 0)
        offsets = np.zeros(len(texts) + 1, dtype=np.int64)
        np.cumsum(per_text, out=offsets[1:])
        out = np.empty(offsets[-1], dtype=U64)
        windows = len(tok) - n + 1
        if windows > 0:
            acc = tok[:windows] * self._mults[0]
            for k in range(1, n):
                acc += tok[k : windows + k] * self._mults[k]
            # a window starting in the last n-1 tokens of a text runs into the next one
            ends = tok_off[1:]
            cut = np.maximum(ends - (n - 1), tok_off[:-1])
            bad_owner, bad_j = _ragged_arange(ends - cut)
            bad = cut[bad_owner] + bad_j
            valid = np.ones(windows, dtype=bool)
            valid[bad[bad < windows]] = False
            out[np.repeat(counts >= n, per_text)] = mix64(acc[valid])
        for t in np.flatnonzero((counts > 0) & (counts < n) & short):  # one shingle of all tokens
            toks = tok[tok_off[t] : tok_off[t + 1]]
            out[offsets[t]] = mix64(np.array([np.sum(toks * self._mults[: len(toks)])], dtype=U64))[0]
        return out, offsets

    def shingle_sets(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Sorted unique shingle hashes per text (for exact Jaccard)."""
        return list(self.iter_shingle_sets(texts))

    def iter_shingle_sets(self, texts: Sequence[str]) -> Iterator[np.ndarray]:
        """`shingle_sets`, one batch of texts at a time, so a consumer need not hold them all."""
        for start, stop in batches(texts):
            hashes, offsets = self.shingles(texts[start:stop])
            for i in range(stop - start):
                yield np.unique(hashes[offsets[i] : offsets[i + 1]])


def batches(texts: Sequence[str], max_bytes: int = BATCH_BYTES) -> Iterator[tuple[int, int]]:
    """`(start, stop)` ranges of texts of about `max_bytes` (at least one text each)."""
    start = 0
    while start < len(texts):
        stop, size = start, 0
        while stop < len(texts) and (size < max_bytes or stop == start):
            size += len(texts[stop]) + 1
            stop += 1
        yield start, stop
        start = stop


@dataclass(frozen=True)
class MinHashConfig(StageConfig):
    """Near-dedup parameters. Defaults follow StarCoder's (5-gram shingles, Jaccard 0.7).

    With b bands of r rows the LSH keeps a pair of similarity s with probability
    1 - (1 - s^r)^b; 16 x 8 puts the steep part of that curve at (1/16)^(1/8) ~ 0.71.
    """

    shingle_size: int = 5  #: tokens per shingle
    num_bands: int = 16  #: LSH bands
    rows_per_band: int = 8  #: signature values per band; num_perm = bands * rows
    threshold: float = 0.7  #: exact-Jaccard cut used when `verify` is on
    verify: bool = True  #: check candidate pairs by exact Jaccard before merging them
    lowercase: bool = False  #: code is case-sensitive; True for prose-like corpora
    seed: int = 42  #: same seed on every shard, or signatures are not comparable
    max_group_all_pairs: int = 32  #: verify all pairs in buckets up to this size, else a star+chain

    def __post_init__(self) -> None:
        for name in ("shingle_size", "num_bands", "rows_per_band", "max_group_all_pairs"):
            if getattr(self, name) < 1:
                raise DataError(f"MinHashConfig.{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 < self.threshold <= 1.0:
            raise DataError(f"MinHashConfig.threshold must be in (0, 1], got {self.threshold}")

    @property
    def num_perm(self) -> int:
        return self.num_bands * self.rows_per_band


class MinHasher:
    """MinHash signatures (uint32, one row per text) under a `MinHashConfig` (module docstring, 4)."""

    def __init__(self, config: MinHashConfig | None = None) -> None:
        self.config = config or MinHashConfig()
        self.shingler = ShingleHasher(
            self.config.shingle_size, lowercase=self.config.lowercase, seed=self.config.seed
        )
        rng = np.random.default_rng(self.config.seed + 1)
        k = self.config.num_perm
        self._round_seeds = _odd_u64(rng, ROUNDS)
        self._a = (_odd_u64(rng, k) >> U64(32)).astype(np.uint32) | np.uint32(1)
        self._b = (_odd_u64(rng, k) >> U64(32)).astype(np.uint32)

    def signatures(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), num_perm) uint32; a text without tokens gets all 0xFFFFFFFF (see `has_shingles`)."""
        sigs = np.empty((len(texts), self.config.num_perm), dtype=np.uint32)
        for start, stop in batches(texts):
            hashes, offsets = self.shingler.shingles(texts[start:stop])
            sigs[start:stop] = self.sketch(hashes, offsets)
        return sigs

    def sketch(self, hashes: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        """Signatures of the shingle sets `hashes[offsets[d]:offsets[d + 1]]` (module docstring, 4)."""
        k, docs = self.config.num_perm, len(offsets) - 1
        counts = np.diff(offsets)
        slots = np.full(docs * k, _MAX64, dtype=U64)  # (round << 32 | value), doc-major
        doc = np.repeat(np.arange(docs, dtype=np.int64), counts)
        active = hashes
        for r in range(ROUNDS):
            h = mix64(active ^ self._round_seeds[r])
            slot = doc * k + (((h >> U64(32)) * U64(k)) >> U64(32)).astype(np.int64)
            h &= _LOW32
            h |= U64(r << 32)
            np.minimum.at(slots, slot, h)
            unfilled = (slots.reshape(docs, k) == _MAX64).any(axis=1) & (counts > 0)
            if not unfilled.any():
                break
            if r + 1 < ROUNDS:
                keep = unfilled[doc]
                active, doc = active[keep], doc[keep]
        else:
            self._fill_empty_slots(slots, hashes, offsets)
        out = (mix64(slots) >> U64(32)).astype(np.uint32).reshape(docs, k)
        out[counts == 0] = np.iinfo(np.uint32).max
        return out

    def _fill_empty_slots(self, slots: np.ndarray, hashes: np.ndarray, offsets: np.ndarray) -> None:
        """Classic MinHash, `min (a_i * x + b_i) mod 2^32` over the document, for each slot i still
        empty after `ROUNDS` rounds (short documents), as `(ROUNDS << 32) | value`, in place."""
        k, counts = self.config.num_perm, np.diff(offsets)
        empty = np.flatnonzero(slots == _MAX64)
        empty = empty[counts[empty // k] > 0]
        x32 = (hashes >> U64(32)).astype(np.uint32)
        cost = np.cumsum(counts[empty // k])
        begin = 0
        while begin < len(empty):  # pieces of about CHUNK_SHINGLES (slot, shingle) keys
            end = max(begin + 1, int(np.searchsorted(cost, cost[begin] + CHUNK_SHINGLES, side="right")))
            part = empty[begin:end]
            d, i = part // k, part % k
            which, j = _ragged_arange(counts[d])
            values = self._a[i][which] * x32[offsets[d][which] + j] + self._b[i][which]
            starts = np.zeros(len(part), dtype=np.int64)
            np.cumsum(counts[d][:-1], out=starts[1:])
            slots[part] = np.minimum.reduceat(values, starts).astype(U64) | U64(ROUNDS << 32)
            begin = end

    @staticmethod
    def has_shingles(signatures: np.ndarray) -> np.ndarray:
        """Rows that came from a text with at least one token (others never match anything)."""
        return ~np.all(signatures == np.iinfo(np.uint32).max, axis=1)
