"""Near-dedup throughput and quality: codelm's MinHash vs datatrove, rensa and datasketch, on the stdlib.

Data: every .py file of the running interpreter's standard library (site-packages excluded), in
memory, sorted by id (relative path). Same settings for all: 5-token shingles, 16 bands x 8 rows
(128 permutations), threshold 0.7, seed 42.

* codelm: the `NearDedup` step, text in, kept documents out (verified by exact Jaccard, its
  default, and unverified).
* rensa (Rust R-MinHash) and datasketch (NumPy MinHash): fed codelm's shingle hashes, so the
  comparison is of their MinHash/LSH machinery, not of tokenizers; codelm's shingling is charged to
  them too (its CPU time is printed apart). rensa takes str/bytes tokens, so each 64-bit shingle
  hash is given as its 8 bytes; datasketch gets the upper 32 bits as ints through an identity
  `hashfunc` (its affine32 scheme). rensa runs its `RMinHashDeduplicator` (LSH, then candidates
  checked by estimated Jaccard); datasketch its usual loop (drop a document its `MinHashLSH`
  already matches, else insert it), both in id order.
* datatrove: its four-stage MinHash pipeline (signatures -> buckets -> clusters -> filter), the
  reference behind FineWeb, called without an executor; it tokenizes by itself (a regex word
  tokenizer, `\\w+`, because its default one needs spaCy/NLTK data), so its shingles differ.

Throughput is MB of UTF-8 text per CPU-second (user + system time of this process and its
threads, so it depends little on how busy the machine is), after a small warm-up run of each;
the methods run interleaved, `--repeat` rounds (default 3), and each one's fastest run counts
(its median is recorded beside it).

Quality: every pair any method calls a duplicate is a candidate; its exact Jaccard is computed on
codelm's shingles (and, for datatrove, also on its own). A pair is a true duplicate at Jaccard >=
threshold; precision and recall of each method's flagged pairs are over that pool (an all-pairs
search is not done). RESULT ratio = codelm default MB/CPU-s / the fastest peer's, given only if
codelm's recall is at least that peer's.

Run:  .venv/bin/python bench/dedup.py   (a few minutes; bench extra: datatrove, 'xxhash<4', rensa,
datasketch; datatrove 0.10.1 hashes `str` n-grams, which xxhash 4.x rejects). Memory at 1x-10x the
corpus is `bench/dedup_memory.py`. It appends a dated section to bench/RESULTS.md and ends with
`RESULT name=dedup ratio=... target=2`.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import struct
import sysconfig
import tempfile
import time
from dataclasses import replace
from importlib.metadata import version
from pathlib import Path

import numpy as np

from codelm.data import Document
from codelm.data.lsh import UnionFind, band_keys, candidate_pairs, jaccard
from codelm.data.minhash import MinHashConfig, MinHasher, batches
from codelm.data.steps import NearDedup

TARGET = 2.0


def load_stdlib() -> tuple[list[Document], int]:
    """The stdlib's .py files as documents, and how many were skipped as not UTF-8."""
    root = Path(sysconfig.get_paths()["stdlib"])
    docs, skipped = [], 0
    for path in sorted(root.rglob("*.py")):
        if "site-packages" in path.parts or not path.is_file():
            continue
        try:
            docs.append(Document(path.read_bytes().decode("utf-8"), path.relative_to(root).as_posix()))
        except UnicodeDecodeError:
            skipped += 1  # a handful of deliberately mis-encoded test files
    docs.sort(key=lambda d: d.id)  # codelm keeps the smallest id; the peers keep the first seen
    return docs, skipped


def cpu_time(fn):
    t0 = time.process_time()
    result = fn()
    return result, time.process_time() - t0


# ---------------------------------------------------------------- codelm
def run_codelm(docs: list[Document], config: MinHashConfig) -> tuple[set[str], float]:
    step = NearDedup(config)
    kept, secs = cpu_time(lambda: list(step(iter(docs))))
    kept_ids = {d.id for d in kept}
    return {d.id for d in docs} - kept_ids, secs


# ---------------------------------------------------------------- datatrove
def datatrove_steps(config: MinHashConfig, workdir: Path):
    from datatrove.pipeline.dedup.minhash import (
        MinhashConfig,
        MinhashDedupBuckets,
        MinhashDedupCluster,
        MinhashDedupFilter,
        MinhashDedupSignature,
    )
    from datatrove.utils.hashing import HashConfig
    from datatrove.utils.word_tokenizers import WordTokenizer

    class RegexWordTokenizer(WordTokenizer):
        """`\\w+` words: no spaCy/NLTK models needed (none can be downloaded here)."""

        pattern = re.compile(r"\w+")

        def word_tokenize(self, text: str) -> list[str]:
            return self.pattern.findall(text)

        def sent_tokenize(self, text: str) -> list[str]:
            return [text]

        def span_tokenize(self, text: str) -> list[tuple[int, int]]:
            return [(0, len(text))]

    dt_config = MinhashConfig(
        n_grams=config.shingle_size,
        num_buckets=config.num_bands,
        hashes_per_bucket=config.rows_per_band,
        hash_config=HashConfig(precision=64),
    )
    tok = RegexWordTokenizer()
    return (
        MinhashDedupSignature(output_folder=str(workdir / "sigs"), config=dt_config, language=tok),
        MinhashDedupBuckets(
            input_folder=str(workdir / "sigs"), output_folder=str(workdir / "buckets"), config=dt_config
        ),
        MinhashDedupCluster(
            input_folder=str(workdir / "buckets"), output_folder=str(workdir / "remove"), config=dt_config
        ),
        MinhashDedupFilter(input_folder=str(workdir / "remove")),
    )


def run_datatrove(docs: list[Document], config: MinHashConfig, workdir: Path) -> tuple[set[str], float]:
    from datatrove.data import Document as DTDocument

    sig, buckets, clusters, filt = datatrove_steps(config, workdir)
    dt_docs = [DTDocument(text=d.text, id=d.id) for d in docs]

    def pipeline() -> list:
        sig.run(iter(dt_docs), rank=0, world_size=1)
        for bucket in range(config.num_bands):
            buckets.run(None, rank=bucket, world_size=config.num_bands)
        clusters.run(None, 0, 1)
        return list(filt.run(iter(dt_docs), rank=0, world_size=1))

    kept, secs = cpu_time(pipeline)
    return {d.id for d in docs} - {d.id for d in kept}, secs


def datatrove_pairs(workdir: Path, num_docs: int) -> set[tuple[int, int]]:
    """All pairs in datatrove's buckets: each .dups file chains equal signatures of one band."""
    pairs: set[tuple[int, int]] = set()
    for dups in sorted((workdir / "buckets").glob("*.dups")):
        raw = dups.read_bytes()
        uf = UnionFind(num_docs)
        for _, d1, _, d2 in struct.iter_unpack("<4I", raw):
            uf.union(d1, d2)
        groups: dict[int, list[int]] = {}
        for d in {d for _, d1, _, d2 in struct.iter_unpack("<4I", raw) for d in (d1, d2)}:
            groups.setdefault(uf.find(d), []).append(d)
        for members in groups.values():
            members.sort()
            pairs.update((a, b) for i, a in enumerate(members) for b in members[i + 1 :])
    return pairs


# ---------------------------------------------------------------- rensa and datasketch
def codelm_shingles(docs: list[Document], cfg: MinHashConfig) -> list[np.ndarray]:
    """Every 5-token shingle hash of every document (codelm's `ShingleHasher`): the peers' input."""
    shingler = MinHasher(cfg).shingler
    texts = [d.text for d in docs]
    out: list[np.ndarray] = []
    for start, stop in batches(texts):
        hashes, offsets = shingler.shingles(texts[start:stop])
        out.extend(hashes[offsets[i] : offsets[i + 1]] for i in range(stop - start))
    return out


def rensa_tokens(shingles: list[np.ndarray]) -> list[list[bytes]]:
    """rensa takes str/bytes tokens: each 64-bit shingle hash as its 8 bytes (`S8` drops trailing
    zero bytes, still one distinct token per distinct hash, since every value has 8 bytes)."""
    return [s.view("S8").tolist() for s in shingles]


def run_rensa(docs: list[Document], cfg: MinHashConfig) -> tuple[set[str], float]:
    """rensa's streaming dedup (R-MinHash, LSH, candidates checked by estimated Jaccard), in id order."""
    from rensa import RMinHashDeduplicator

    def pipeline() -> list[bool]:
        tokens = rensa_tokens(codelm_shingles(docs, cfg))
        dedup = RMinHashDeduplicator(
            threshold=cfg.threshold,
            num_perm=cfg.num_perm,
            use_lsh=True,
            num_bands=cfg.num_bands,
            seed=cfg.seed,
        )
        return dedup.add_pairs(zip((d.id for d in docs), tokens, strict=True))

    keep, secs = cpu_time(pipeline)
    return {d.id for d, k in zip(docs, keep, strict=True) if not k}, secs


def _identity(x: int) -> int:
    return x


def datasketch_sketches(docs: list[Document], cfg: MinHashConfig) -> list:
    """datasketch MinHashes (affine32 scheme) of codelm's shingle hashes (upper 32 bits, as codelm's
    own signatures use), given as ints through an identity `hashfunc`: no SHA-1 charged to it."""
    from datasketch import MinHash

    values = [(s >> np.uint64(32)).tolist() for s in codelm_shingles(docs, cfg)]
    return MinHash.bulk(values, num_perm=cfg.num_perm, seed=cfg.seed, hashfunc=_identity)


def datasketch_lsh(cfg: MinHashConfig):
    from datasketch import MinHashLSH

    return MinHashLSH(
        threshold=cfg.threshold, num_perm=cfg.num_perm, params=(cfg.num_bands, cfg.rows_per_band)
    )


def run_datasketch(docs: list[Document], cfg: MinHashConfig) -> tuple[set[str], float]:
    """datasketch's usual dedup loop: in id order, drop a document the LSH index already matches."""

    def pipeline() -> set[str]:
        lsh, removed = datasketch_lsh(cfg), set()
        for doc, m in zip(docs, datasketch_sketches(docs, cfg), strict=True):
            if lsh.query(m):
                removed.add(doc.id)
            else:
                lsh.insert(doc.id, m)
        return removed

    return cpu_time(pipeline)


def peer_pairs(docs: list[Document], cfg: MinHashConfig) -> dict[str, set[tuple[int, int]]]:
    """Pairs each peer calls duplicates, all documents indexed (untimed): rensa's LSH candidates
    whose estimated Jaccard reaches the threshold (what its deduplicator checks), datasketch's LSH
    candidates (it does not check them)."""
    from rensa import RMinHash, RMinHashLSH

    ms = RMinHash.from_token_sets(
        rensa_tokens(codelm_shingles(docs, cfg)), num_perm=cfg.num_perm, seed=cfg.seed
    )
    index = RMinHashLSH(threshold=cfg.threshold, num_perm=cfg.num_perm, num_bands=cfg.num_bands)
    index.insert_many(ms)
    rensa_pairs = {
        (min(i, j), max(i, j))
        for i, m in enumerate(ms)
        for j in index.query(m)
        if i != j and m.jaccard(ms[j]) >= cfg.threshold
    }
    lsh, sketches = datasketch_lsh(cfg), datasketch_sketches(docs, cfg)
    for i, m in enumerate(sketches):
        lsh.insert(i, m)
    ds_pairs = {(min(i, j), max(i, j)) for i, m in enumerate(sketches) for j in lsh.query(m) if i != j}
    return {"rensa": rensa_pairs, "datasketch": ds_pairs}


# ---------------------------------------------------------------- quality
def precision_recall(flagged: set, truth: set) -> tuple[float, float]:
    hit = len(flagged & truth)
    return (hit / len(flagged) if flagged else 1.0), (hit / len(truth) if truth else 1.0)


def machine_info() -> str:
    cpu = "unknown CPU"
    try:
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration) as e:
        print(f"cannot read the CPU model: {e!r}")
    return (
        f"{cpu}, {os.cpu_count()} cores, {platform.platform()}, Python {platform.python_version()}, "
        f"numpy {np.__version__}, datatrove {version('datatrove')}, xxhash {version('xxhash')}"
    )


METHODS = ("codelm (verified, default)", "codelm (unverified)", "datatrove", "rensa", "datasketch")


def time_methods(docs: list[Document], cfg: MinHashConfig, repeat: int):
    """{method: (removed ids, best CPU seconds, median CPU seconds)} and datatrove's bucket pairs.

    The methods run interleaved, `repeat` rounds, so a busy spell of the shared machine hits all.
    """
    with tempfile.TemporaryDirectory() as warm:  # imports, regex compilation, hash tables
        run_codelm(docs[:50], cfg)
        run_datatrove(docs[:50], cfg, Path(warm))
        run_rensa(docs[:50], cfg)
        run_datasketch(docs[:50], cfg)
    runs: dict[str, list[tuple[set[str], float]]] = {name: [] for name in METHODS}
    for _ in range(repeat):
        runs["codelm (verified, default)"].append(run_codelm(docs, cfg))
        runs["codelm (unverified)"].append(run_codelm(docs, replace(cfg, verify=False)))
        with tempfile.TemporaryDirectory() as tmp:
            runs["datatrove"].append(run_datatrove(docs, cfg, Path(tmp)))
            dt_pairs = datatrove_pairs(Path(tmp), len(docs))
        runs["rensa"].append(run_rensa(docs, cfg))
        runs["datasketch"].append(run_datasketch(docs, cfg))
    timed = {}
    for name, results in runs.items():  # the fastest run counts: the least disturbed by neighbours
        gone, best = min(results, key=lambda r: r[1])
        timed[name] = (gone, best, float(np.median([r[1] for r in results])))
    return timed, dt_pairs


def shingle_seconds(docs: list[Document], cfg: MinHashConfig, repeat: int) -> float:
    """CPU seconds of codelm's shingle hashing alone (part of every method but datatrove)."""
    return min(cpu_time(lambda: codelm_shingles(docs, cfg))[1] for _ in range(repeat))


def judge_pairs(docs: list[Document], cfg: MinHashConfig, dt_pairs: set[tuple[int, int]]):
    """Flagged pairs per method, and the true duplicates among all candidates (two shingle kinds)."""
    hasher = MinHasher(cfg)
    sigs = hasher.signatures([d.text for d in docs])
    keys = band_keys(sigs, cfg.num_bands, cfg.rows_per_band)
    ours = {tuple(p) for p in candidate_pairs(keys, MinHasher.has_shingles(sigs)).tolist()}
    peers = peer_pairs(docs, cfg)
    candidates = sorted(ours | dt_pairs | peers["rensa"] | peers["datasketch"])
    sets = hasher.shingler.shingle_sets([d.text for d in docs])
    sim = {p: jaccard(sets[p[0]], sets[p[1]]) for p in candidates}
    truth = {p for p, j in sim.items() if j >= cfg.threshold}
    with tempfile.TemporaryDirectory() as tmp:
        dt_shingles = datatrove_steps(cfg, Path(tmp))[0].get_shingles
        dt_sets = {i: np.unique(dt_shingles(docs[i].text)) for p in candidates for i in p}
    dt_truth = {p for p in candidates if jaccard(dt_sets[p[0]], dt_sets[p[1]]) >= cfg.threshold}
    flagged = {
        "codelm (verified, default)": {p for p in ours if sim[p] >= cfg.threshold},
        "codelm (unverified)": ours,
        "datatrove": dt_pairs,
        **peers,
    }
    return flagged, truth, dt_truth, len(candidates)


def headline(rows: list[tuple]) -> tuple[float, str]:
    """codelm default / fastest of rensa and datasketch, if codelm's recall is at least that peer's."""
    ours = rows[0]
    best = max((r for r in rows if r[0] in ("rensa", "datasketch", "datatrove")), key=lambda r: r[1])
    if ours[6] < best[6]:
        return 0.0, f"codelm's recall {ours[6]:.3f} is below {best[0]}'s {best[6]:.3f}: no ratio"
    return ours[1] / best[1], f"vs {best[0]} ({best[1]:.2f} MB/CPU-s, recall {best[6]:.3f})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--results", type=Path, default=Path(__file__).with_name("RESULTS.md"))
    ap.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs per method; the fastest counts")
    args = ap.parse_args()
    os.environ.setdefault("TQDM_DISABLE", "1")  # datatrove's cluster stage draws a progress bar
    try:
        import datasketch  # noqa: F401
        import datatrove.utils.logging  # noqa: F401 - importing it installs datatrove's stderr handler
        import rensa  # noqa: F401
        from loguru import logger
    except ImportError as e:
        raise SystemExit(
            f"this benchmark needs the bench extra ({e}): .venv/bin/pip install -e '.[bench]'"
        ) from e
    logger.remove()  # no per-stage INFO lines: not charged to datatrove's time, and a clean report
    load_before = os.getloadavg()

    docs, skipped = load_stdlib()
    mb = sum(len(d.text.encode("utf-8")) for d in docs) / 1e6
    cfg = MinHashConfig()
    print(
        f"{len(docs)} files ({skipped} skipped: not UTF-8), {mb:.1f} MB; shingles {cfg.shingle_size}, "
        f"{cfg.num_bands} bands x {cfg.rows_per_band} rows, threshold {cfg.threshold}"
    )
    timed, dt_pairs = time_methods(docs, cfg, args.repeat)
    shingle_s = shingle_seconds(docs, cfg, args.repeat)
    flagged, truth, dt_truth, n_candidates = judge_pairs(docs, cfg, dt_pairs)

    rows = []
    for name, (gone, secs, median) in timed.items():
        p, r = precision_recall(flagged[name], truth)
        extra = ""
        if name == "datatrove":
            p2, r2 = precision_recall(dt_pairs, dt_truth)
            extra = f" (own word shingles; vs them: P {p2:.3f}, R {r2:.3f})"
        rows.append((name, mb / secs, secs, len(gone), len(flagged[name]), p, r, extra, median))
        print(
            f"{name:28s} {mb / secs:7.2f} MB/CPU-s ({secs:6.2f} s, median {median:6.2f})  "
            f"removed {len(gone):4d}  "
            f"pairs {len(flagged[name]):5d}  precision {p:.3f}  recall {r:.3f}{extra}"
        )
    ratio, versus = headline(rows)
    print(
        f"codelm shingling alone: {shingle_s:.2f} CPU-s (inside every row but datatrove's); candidate pairs "
        f"{n_candidates}, true (Jaccard >= {cfg.threshold}) {len(truth)}; ratio codelm default {versus} = "
        f"{ratio:.2f}x (target {TARGET:g}x)"
    )
    load_after = os.getloadavg()
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f}")
    if not args.no_record:
        record(
            args,
            docs,
            mb,
            cfg,
            rows,
            n_candidates,
            len(truth),
            ratio,
            versus,
            shingle_s,
            load_before,
            load_after,
        )
    print(f"RESULT name=dedup ratio={ratio:.2f} target={TARGET:g}")


def record(args, docs, mb, cfg, rows, n_candidates, n_truth, ratio, versus, shingle_s, before, after) -> None:
    cmd = f"`.venv/bin/python bench/dedup.py --repeat {args.repeat}`"
    lines = [
        f"\n## dedup, {datetime.date.today().isoformat()}\n",
        "Near dedup (MinHash + LSH) of codelm vs datatrove, rensa and datasketch, on the Python stdlib.\n",
        f"Machine: {machine_info()}; load average {before[0]:.2f} before, {after[0]:.2f} after (shared).  ",
        f"Data: {len(docs)} stdlib .py files, {mb:.1f} MB; {cfg.shingle_size}-token shingles, "
        f"{cfg.num_bands} bands x {cfg.rows_per_band} rows ({cfg.num_perm} permutations), threshold "
        f"{cfg.threshold}. rensa and datasketch get codelm's shingle hashes (so the comparison is of their "
        f"MinHash/LSH machinery; codelm's shingling, {shingle_s:.2f} CPU-s, is inside their times as in "
        f"codelm's); datatrove its own `\\w+` word shingles. Command: {cmd} (methods interleaved, "
        f"best of {args.repeat} CPU times each, median beside it).\n",
        "| method | MB per CPU-second | CPU s (best) | CPU s (median) | files removed | pairs flagged "
        "| precision | recall |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, mbps, secs, gone, n_pairs, p, r, extra, median in rows:
        lines.append(
            f"| {name}{extra} | {mbps:.2f} | {secs:.2f} | {median:.2f} | {gone} | {n_pairs} "
            f"| {p:.3f} | {r:.3f} |"
        )
    lines += [
        "",
        f"Candidate pairs (any method's): {n_candidates}; true duplicates (exact Jaccard of code-token "
        f"shingles >= {cfg.threshold}): {n_truth}. Precision and recall are over that pool. rensa's pairs "
        f"are its LSH candidates whose estimated Jaccard reaches the threshold (its deduplicator's check); "
        f"datasketch's and codelm-unverified's are raw LSH candidates. Ratio codelm default {versus}: "
        f"**{ratio:.2f}x** (target {TARGET:g}x).\n",
    ]
    header = "# Benchmark results\n" if not args.results.exists() else ""
    with args.results.open("a", encoding="utf-8") as f:
        f.write(header + "\n".join(lines))


if __name__ == "__main__":
    main()
