"""Load check of `codelm serve`: bounded in requests and time, loopback only.

Each round sends 50 concurrent streaming clients; a third of them disconnect after a few chunks.
The check passes when every other client gets its full completion with no error, every
disconnect is seen by the server as a cancellation, the batch drains to zero rows, and the
server's resident memory after the rounds is flat against after the warm-up round (small slack
for allocator caches).

    python bench/load.py [--clients 50] [--rounds 4] [--tokens 64]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import statistics
import tempfile
import time
from datetime import date
from pathlib import Path

import httpx
import psutil

from codelm.models.tiny import make_tiny
from codelm.serve.launch import ServerProcess

PROMPTS = ["import os\n", "def parse(text):\n", "class Cache:\n    def __init__(self):\n", "for i in range("]
RSS_SLACK = (0.10, 32 * 2**20)  # after may exceed before by 10% or 32 MiB, whichever is larger


async def client(http: httpx.AsyncClient, i: int, tokens: int, leave_after: int | None) -> dict:
    """One streaming client; with `leave_after` it disconnects after that many chunks."""
    body = {
        "prompt": PROMPTS[i % len(PROMPTS)],
        "max_tokens": tokens,
        "temperature": 0.8,
        "seed": i,
        "ignore_eos": True,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    out = {"left": leave_after is not None, "error": None, "tokens": 0, "ttft": None, "done": False}
    t0 = time.perf_counter()
    try:
        async with http.stream("POST", "/v1/completions", json=body) as r:
            if r.status_code != 200:
                out["error"] = f"HTTP {r.status_code}: {(await r.aread())[:200]!r}"
                return out
            chunks = 0
            async for line in r.aiter_lines():
                if not line.startswith("data: "):
                    continue
                if line == "data: [DONE]":
                    out["done"] = True
                    break
                data = json.loads(line[6:])
                if "error" in data:
                    out["error"] = data["error"]["message"]
                    break
                if data.get("usage"):
                    out["tokens"] = data["usage"]["completion_tokens"]
                if data["choices"] and data["choices"][0]["text"] and out["ttft"] is None:
                    out["ttft"] = time.perf_counter() - t0
                chunks += 1
                if leave_after is not None and chunks >= leave_after:
                    break  # closing the stream here drops the connection mid-generation
    except httpx.HTTPError as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"
    return out


async def round_(url: str, clients: int, tokens: int) -> list[dict]:
    limits = httpx.Limits(max_connections=clients + 4, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as http:
        jobs = [client(http, i, tokens, 3 if i % 3 == 0 else None) for i in range(clients)]
        return await asyncio.wait_for(asyncio.gather(*jobs), timeout=300)


def scrape(url: str) -> dict[str, float]:
    text = httpx.get(f"{url}/metrics", timeout=30).text
    return {m[0]: float(m[1]) for m in re.findall(r"^(codelm_\w+) ([0-9.e+-]+)$", text, re.M)}


def settle(url: str, timeout_s: float = 60) -> dict[str, float]:
    """Metrics once the batch and queue are empty (cancelled rows leave at the next step)."""
    deadline = time.monotonic() + timeout_s
    while True:
        m = scrape(url)
        if (m.get("codelm_running_rows", 1) == 0 and m.get("codelm_queue_depth", 1) == 0) or (
            time.monotonic() > deadline
        ):
            return m
        time.sleep(0.1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--results", default=str(Path(__file__).with_name("RESULTS.md")))
    args = ap.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        path = make_tiny("llama", Path(tmp) / "llama")
        with ServerProcess(str(path), "--threads", "1", log_path=str(Path(tmp) / "server.log")) as server:
            proc = psutil.Process(server.pid)
            warm = asyncio.run(round_(server.url, args.clients, args.tokens))
            settle(server.url)
            rss_before = proc.memory_info().rss
            results = list(warm)
            for _ in range(args.rounds):
                results += asyncio.run(round_(server.url, args.clients, args.tokens))
            metrics = settle(server.url)
            rss_after = proc.memory_info().rss
    stayed = [r for r in results if not r["left"]]
    left = [r for r in results if r["left"]]
    errors = [r["error"] for r in results if r["error"]]
    short = [r for r in stayed if not r["error"] and (not r["done"] or r["tokens"] != args.tokens)]
    cancelled = int(metrics.get("codelm_requests_cancelled_total", -1))
    limit = rss_before + max(RSS_SLACK[0] * rss_before, RSS_SLACK[1])
    checks = {
        "no errors": not errors,
        "full completions": not short,
        "disconnects cancelled": cancelled == len(left),
        "batch drained": metrics.get("codelm_running_rows") == 0,
        "memory flat": rss_after <= limit,
    }
    passed = all(checks.values())
    ttfts = sorted(r["ttft"] for r in stayed if r["ttft"] is not None)
    mib = 2**20
    largest = int(metrics.get("codelm_batch_rows_max", 0))
    summary = (
        f"{len(results)} streams in {args.rounds + 1} rounds of {args.clients} "
        f"({len(left)} left after 3 chunks), {args.tokens} tokens each; errors {len(errors)}, "
        f"incomplete {len(short)}, cancelled by the server {cancelled}/{len(left)}, largest batch {largest} "
        f"rows; TTFT under load p50 {statistics.median(ttfts) * 1000:.0f} ms; server RSS "
        f"{rss_before / mib:.1f} MiB after warm-up -> {rss_after / mib:.1f} MiB after "
        f"(limit {limit / mib:.1f}); "
        f"{time.perf_counter() - started:.0f} s in all"
    )
    print(summary)
    for name, ok in checks.items():
        print(f"  {'ok  ' if ok else 'FAIL'} {name}")
    for e in errors[:5]:
        print(f"  error: {e}")
    machine = f"{platform.machine()}, {os.cpu_count()} cores"
    section = (
        f"\n## load, {date.today()}\n\nMachine: {machine}. Tiny Llama, `codelm serve` as a child process, "
        f"httpx streaming clients over loopback.\n\n{summary}.\n\n"
        f"Result: {'passed' if passed else 'FAILED: ' + ', '.join(k for k, v in checks.items() if not v)}.\n"
    )
    results_path = Path(args.results)
    if not results_path.exists():
        results_path.write_text("# Benchmark results\n\nEach section is appended by its bench script.\n")
    with results_path.open("a") as f:
        f.write(section)
    print(f"RESULT name=load ratio={1.0 if passed else 0} target=1")


if __name__ == "__main__":
    main()
