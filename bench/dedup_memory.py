"""Peak memory of codelm's near dedup as users run it (`codelm data curate`), at 1x, 3x, 10x the stdlib.

The corpus is every .py file of the running interpreter's standard library (as in `bench/dedup.py`)
repeated k times: copy 0 is the file itself, copy c >= 1 a deterministic mutation of it (seeded by
path and c): one identifier renamed throughout, ~3% of lines deleted, ~3% new comment lines inserted.
So near-duplicates exist (most copies stay above Jaccard 0.7 with each other) and exact dedup would
not collapse them. Each size is written as 8 JSONL files and run through
`python -m codelm.data.curate` (the `codelm data curate` code path: JSONL reader, then the
`near_dedup` step, local executor with one worker so every phase runs in the one child process
that is measured, 8 shards) in a fresh subprocess; its peak RSS is `ru_maxrss` from `os.wait4`.
A run on the first 8 MB of the stdlib gives the fixed cost (interpreter, imports, and the numpy
temporaries of hashing one 2 MB batch of text, which do not grow with the corpus), and the
per-document figure is the growth over it. The growth exponent is the slope of log(RSS - fixed)
over log(documents) between the two largest sizes (3x and 10x by default): 1 is linear, below 1
sub-linear. Not from 1x: at 1x the stdlib has few near duplicates, so few candidate shingle sets
are held, and since the hashing temporaries shrank (2026-12-04) its RSS is within ~1 MB of the
fixed cost, a base that makes any slope from it meaningless (it gave 2.11 for a growth of 87.9 ->
200.3 MB, smaller at every size than the 173.6 -> 312.5 MB before); that slope is printed too.

Run:  .venv/bin/python bench/dedup_memory.py [--sizes 1 3 10]   (a few minutes; needs ~2 GB of disk)
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import random
import re
import subprocess
import sys
import tempfile
from pathlib import Path

_IDENT = re.compile(r"\b[A-Za-z_][A-Za-z0-9_]{3,}\b")
SHARDS = 8
FIXED_BYTES = 8 << 20  # the fixed-cost corpus: several of near dedup's 2 MB hashing batches


def mutate(text: str, key: str, copy: int) -> str:
    """A deterministic near-duplicate of `text`: a renamed identifier, deleted and inserted lines."""
    if copy == 0:
        return text
    rng = random.Random(f"{key}#{copy}")  # str seeds hash with SHA-512: same on every run
    names = sorted(set(_IDENT.findall(text)))
    if names:
        old = rng.choice(names)
        text = re.sub(rf"\b{re.escape(old)}\b", f"{old}_v{copy}", text)
    out = []
    for i, line in enumerate(text.split("\n")):
        r = rng.random()
        if r < 0.03:
            continue  # deleted
        out.append(line)
        if r > 0.97:
            out.append(f"# variant {copy}, note {i}")
    return "\n".join(out)


def write_corpus(docs: list[tuple[str, str]], copies: int, folder: Path) -> tuple[int, int]:
    """`copies` versions of every (id, text) as SHARDS JSONL files; returns (documents, UTF-8 bytes)."""
    folder.mkdir(parents=True, exist_ok=True)
    files = [(folder / f"part-{i:02d}.jsonl").open("w", encoding="utf-8") for i in range(SHARDS)]
    n = size = 0
    try:
        for copy in range(copies):
            for doc_id, text in docs:
                text = mutate(text, doc_id, copy)
                record = {"id": f"{doc_id}#{copy}", "text": text, "language": "python"}
                files[n % SHARDS].write(json.dumps(record) + "\n")
                n, size = n + 1, size + len(text.encode("utf-8"))
    finally:
        for f in files:
            f.close()
    return n, size


def run_curate(corpus: Path, out: Path) -> tuple[int, dict]:
    """Peak RSS in bytes of one `codelm data curate` child, and its near_dedup stats."""
    config = {
        "output_dir": str(out),
        "output_format": "jsonl.gz",
        "report": False,
        "executor": {"kind": "local", "workers": 1, "shards": SHARDS},
        "readers": [{"jsonl": {"paths": sorted(str(p) for p in corpus.glob("*.jsonl"))}}],
        "steps": [{"near_dedup": {}}],
    }
    cfg = out.with_suffix(".yaml")
    cfg.write_text(json.dumps(config))  # JSON is YAML
    proc = subprocess.Popen(
        [sys.executable, "-m", "codelm.data.curate", str(cfg), "--no-progress"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert proc.stdout is not None
    log = proc.stdout.read().decode("utf-8", "replace")
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"codelm data curate failed ({proc.returncode}):\n{log}")
    steps = json.loads((out / "stats.json").read_text())["steps"]
    stats = next(s for s in steps if s["name"] == "near_dedup")
    return usage.ru_maxrss * 1024, stats  # Linux reports kilobytes


def measure(docs: list[tuple[str, str]], sizes: list[int], workdir: Path) -> tuple[dict, list[dict]]:
    """The fixed cost (the first FIXED_BYTES of text) and one row per size: docs, bytes, RSS, counts."""
    corpus, head, size = workdir / "fixed", 0, 0
    while head < len(docs) and size < FIXED_BYTES:  # enough text to fill the hashing batches
        size, head = size + len(docs[head][1]), head + 1
    write_corpus(docs[:head], 1, corpus)
    fixed_rss, _ = run_curate(corpus, workdir / "out-fixed")
    fixed = {"rss": fixed_rss, "docs": head, "bytes": size}
    rows = []
    for k in sizes:
        corpus = workdir / f"x{k}"
        n, size = write_corpus(docs, k, corpus)
        rss, stats = run_curate(corpus, workdir / f"out-x{k}")
        rows.append({"copies": k, "docs": n, "bytes": size, "rss": rss, "stats": stats})
        for f in corpus.glob("*.jsonl"):
            f.unlink()  # keep the disk footprint to one corpus at a time
        print(
            f"{k:3d}x: {n:6d} docs, {size / 1e6:7.1f} MB -> peak RSS {rss / 1e6:7.1f} MB "
            f"({(rss - fixed_rss) / n:6.0f} B/doc over the fixed {fixed_rss / 1e6:.1f} MB); "
            f"near_dedup dropped {sum(stats.get('dropped', {}).values())}",
            flush=True,
        )
    return fixed, rows


def exponent(rows: list[dict], fixed: dict, key: str = "docs", first: int = -2) -> float:
    """Slope of log(RSS - fixed) over log(key) between rows[first] (default: the second largest
    size) and the largest size."""
    a, b = rows[first] if len(rows) > 1 else rows[0], rows[-1]
    grow_a, grow_b = max(a["rss"] - fixed["rss"], 1), max(b["rss"] - fixed["rss"], 1)
    return math.log(grow_b / grow_a) / math.log(b[key] / a[key])


def memory_table(fixed: dict, rows: list[dict]) -> list[str]:
    """RESULTS.md lines: one row per size, then the growth exponent."""
    lines = [
        "Peak memory of `codelm data curate` (JSONL reader -> near_dedup; local executor, 1 worker, "
        f"{SHARDS} shards; fresh child process per size, `ru_maxrss`) on the stdlib repeated with "
        "deterministic mutations (renamed identifier, ~3% lines deleted, ~3% inserted). Fixed cost "
        f"(the first {fixed['docs']} files, {fixed['bytes'] / 1e6:.1f} MB): {fixed['rss'] / 1e6:.1f} MB.\n",
        "| corpus | documents | text MB | peak RSS MB | over fixed: bytes per document | per text byte "
        "| near duplicates dropped |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        grow = r["rss"] - fixed["rss"]
        lines.append(
            f"| {r['copies']}x stdlib | {r['docs']} | {r['bytes'] / 1e6:.1f} | {r['rss'] / 1e6:.1f} | "
            f"{grow / r['docs']:.0f} | {grow / r['bytes']:.3f} "
            f"| {sum(r['stats'].get('dropped', {}).values())} |"
        )
    last, first = rows[-1], rows[-2] if len(rows) > 1 else rows[-1]
    if last is not first:
        lines.append(
            f"\nMarginal cost {first['copies']}x -> {last['copies']}x: "
            f"{(last['rss'] - first['rss']) / (last['docs'] - first['docs']):.0f} bytes per added document "
            f"({(last['rss'] - first['rss']) / (last['bytes'] - first['bytes']):.3f} per added text byte)."
        )
    lines.append(
        f"\nGrowth exponent of peak RSS over the fixed cost, {first['copies']}x -> {last['copies']}x: "
        f"**{exponent(rows, fixed):.2f}** (1 = linear in the corpus; {rows[0]['copies']}x -> "
        f"{last['copies']}x: {exponent(rows, fixed, first=0):.2f}, from a base "
        f"{(rows[0]['rss'] - fixed['rss']) / 1e6:.1f} MB over the fixed cost).\n"
    )
    return lines


def main() -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    from dedup import load_stdlib, machine_info

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1, 3, 10])
    ap.add_argument("--results", type=Path, default=Path(__file__).with_name("RESULTS.md"))
    ap.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    args = ap.parse_args()
    before = os.getloadavg()
    stdlib, _ = load_stdlib()
    with tempfile.TemporaryDirectory() as tmp:
        fixed, rows = measure([(d.id, d.text) for d in stdlib], args.sizes, Path(tmp))
    after = os.getloadavg()
    table = memory_table(fixed, rows)
    print("\n".join(table) + f"\nload average before {before[0]:.2f}, after {after[0]:.2f}")
    if not args.no_record:
        head = [
            f"\n## dedup memory, {datetime.date.today().isoformat()}\n",
            f"Machine: {machine_info()}; load average {before[0]:.2f} before, {after[0]:.2f} after (shared). "
            f"Command: `.venv/bin/python bench/dedup_memory.py --sizes {' '.join(map(str, args.sizes))}`.\n",
        ]
        with args.results.open("a", encoding="utf-8") as f:
            f.write("\n".join(head + table))
    growth = exponent(rows, fixed)
    print(f"RESULT name=dedup_memory ratio={1 / growth:.2f} target=1")


if __name__ == "__main__":
    main()
