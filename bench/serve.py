"""Serving throughput: 16 concurrent streaming clients of `codelm serve` against sequential HF
`model.generate()` of the same requests, same model, same run; plus time to first token of a
fill-in-the-middle request with ~500 tokens of context.

Both sides do equal work: greedy, exactly --tokens new tokens per request (EOS ignored: the server
gets `ignore_eos`, generate gets `min_new_tokens`), the same prompt ids, the same torch thread
count. The server runs as a child process (`codelm serve`) and the clients stream over loopback
HTTP, so the figure includes HTTP, SSE and detokenization. Target: >= 4x.

The two sides run interleaved, --repeats times each, and the ratio is best against best: this
2-core machine is shared, and the 3 busy threads of the served side (decode loop, event loop,
clients) lose far more to a neighbour's burst than single-threaded `generate()` does, so medians
measure the neighbours. Medians are printed and recorded too.

    python bench/serve.py [--tokens 128] [--clients 16] [--repeats 3] [--hidden 64 --layers 2]

`--hidden/--layers` re-initialise the tiny Llama wider/deeper (random weights, same tokenizer) to
check the ratio where compute, not Python overhead, dominates a step.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import shutil
import statistics
import sysconfig
import tempfile
import time
from datetime import date
from pathlib import Path

import torch

from codelm.engine import Engine
from codelm.models.tiny import make_tiny
from codelm.serve.launch import ServerProcess


def build_model(out: Path, hidden: int, layers: int) -> Path:
    """The tiny Llama checkpoint; re-initialised at `hidden`/`layers` when they differ from it."""
    path = make_tiny("llama", out)
    config_path = path / "config.json"
    cfg = json.loads(config_path.read_text())
    if (cfg["hidden_size"], cfg["num_hidden_layers"]) == (hidden, layers):
        return path
    from transformers import AutoConfig, AutoModelForCausalLM

    heads = max(hidden // 32, 1)
    cfg.update(
        hidden_size=hidden,
        num_hidden_layers=layers,
        intermediate_size=hidden * 7 // 2,
        num_attention_heads=heads,
        num_key_value_heads=max(heads // 2, 1),
        head_dim=hidden // heads,
    )
    config_path.write_text(json.dumps(cfg))
    generation = (path / "generation_config.json").read_text()
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(path))
    model.save_pretrained(path)
    (path / "generation_config.json").write_text(generation)  # keep the family's stop ids
    return path


def code_prompts(count: int) -> list[str]:
    """`count` different code prompts: the openings of standard-library modules."""
    root = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(p for p in root.glob("*.py") if p.stat().st_size > 4000)[:count]
    return [f.read_text(encoding="utf-8", errors="replace")[:300] for f in files]


def fim_case(engine: Engine, context_tokens: int, offset: int) -> tuple[str, str]:
    """A prefix and suffix from real code totalling about `context_tokens` tokens."""
    text = (Path(sysconfig.get_paths()["stdlib"]) / "argparse.py").read_text()[offset:]
    ids = engine.tokenizer(text, add_special_tokens=False)["input_ids"][: context_tokens + 10]
    cut = context_tokens * 9 // 10
    prefix = engine.tokenizer.decode(ids[:cut])
    return prefix, engine.tokenizer.decode(ids[cut + 10 :])


_FIRST_TEXT = re.compile(rb'"text":"[^"]')  # a chunk with non-empty text


async def stream_one(url: str, body: dict) -> tuple[float, int]:
    """(seconds to the first text, completion tokens) of one streamed request.

    A minimal HTTP/1.1 client (chunked transfer decoding, no SSE objects): on 2 shared cores a full
    client library's per-chunk work competes with the server it measures.
    """
    host, port = url.removeprefix("http://").split(":")
    payload = json.dumps(body).encode()
    head = (
        f"POST /v1/completions HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
    ).encode()
    t0 = time.perf_counter()
    reader, writer = await asyncio.open_connection(host, int(port))
    first, received = None, bytearray()
    try:
        writer.write(head + payload)
        status = await reader.readuntil(b"\r\n\r\n")
        assert status.startswith(b"HTTP/1.1 200"), status
        assert b"transfer-encoding: chunked" in status.lower(), status
        while size := int((await reader.readline()).strip(), 16):
            data = (await reader.readexactly(size + 2))[:-2]
            if first is None and _FIRST_TEXT.search(data):
                first = time.perf_counter() - t0
            received += data
    finally:
        writer.close()
    assert received.endswith(b"data: [DONE]\n\n"), bytes(received[-200:])
    usage = re.findall(rb'"completion_tokens":(\d+)', received)
    return first if first is not None else float("nan"), int(usage[-1]) if usage else 0


async def served_tokens_per_s(url: str, prompts: list[str], tokens: int) -> float:
    bodies = [
        {"prompt": p, "max_tokens": tokens, "temperature": 0, "ignore_eos": True, "stream": True,
         "stream_options": {"include_usage": True}}
        for p in prompts
    ]  # fmt: skip
    t0 = time.perf_counter()
    done = await asyncio.gather(*(stream_one(url, b) for b in bodies))
    wall = time.perf_counter() - t0
    counts = [n for _, n in done]
    assert counts == [tokens] * len(prompts), f"unequal work: {counts}"
    return sum(counts) / wall


def hf_tokens_per_s(engine: Engine, prompts: list[str], tokens: int) -> float:
    model, total = engine.model, 0
    t0 = time.perf_counter()
    for p in prompts:
        ids = torch.tensor([engine.encode(p)])
        with torch.inference_mode():
            out = model.generate(
                ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=tokens,
                min_new_tokens=tokens,
                do_sample=False,
                pad_token_id=engine.pad_id,
            )
        total += out.shape[1] - ids.shape[1]
    assert total == tokens * len(prompts), f"generate made {total} tokens"
    return total / (time.perf_counter() - t0)


async def fim_ttft(url: str, engine: Engine, context_tokens: int, requests: int) -> tuple[list[float], int]:
    ttfts, sizes = [], []
    for i in range(requests):
        prefix, suffix = fim_case(engine, context_tokens, offset=2000 + 1500 * i)
        sizes.append(len(engine.encode(engine.infill_request(prefix, suffix).prompt)))
        body = {"prompt": prefix, "suffix": suffix, "max_tokens": 8, "temperature": 0, "ignore_eos": True,
                "stream": True}  # fmt: skip
        ttfts.append((await stream_one(url, body))[0])
    return ttfts, int(statistics.median(sizes))


def percentile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q * (len(xs) - 1)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1, help="torch threads, server and generate alike")
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--fim-context", type=int, default=500)
    ap.add_argument("--fim-requests", type=int, default=20)
    ap.add_argument("--results", default=str(Path(__file__).with_name("RESULTS.md")))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    tmp = Path(tempfile.mkdtemp(prefix="codelm-bench-serve-"))
    try:
        path = build_model(tmp / "llama", args.hidden, args.layers)
        engine = Engine.from_pretrained(str(path), threads=args.threads)
        prompts = code_prompts(args.clients)
        extra = ["--threads", str(args.threads), "--max-batch-size", str(max(32, args.clients))]
        with ServerProcess(str(path), *extra, log_path=str(tmp / "server.log")) as server:
            asyncio.run(served_tokens_per_s(server.url, prompts[:4], 8))  # warm up both sides
            hf_tokens_per_s(engine, prompts[:1], 8)
            hf, served = [], []
            for _ in range(args.repeats):  # interleaved, so machine load hits both alike
                hf.append(hf_tokens_per_s(engine, prompts, args.tokens))
                served.append(asyncio.run(served_tokens_per_s(server.url, prompts, args.tokens)))
            ttfts, fim_size = asyncio.run(fim_ttft(server.url, engine, args.fim_context, args.fim_requests))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    h, s = max(hf), max(served)
    ratio = s / h
    h_med, s_med = statistics.median(hf), statistics.median(served)
    p50, p95 = percentile(ttfts, 0.5) * 1000, percentile(ttfts, 0.95) * 1000
    params = sum(p.numel() for p in engine.model.parameters())
    print(f"sequential HF generate: {h:8.1f} tok/s best of {args.repeats} (median {h_med:.1f})")
    print(f"codelm serve, {args.clients} streams: {s:8.1f} tok/s best of {args.repeats} (median {s_med:.1f})")
    print(f"ratio {ratio:.2f}x (medians: {s_med / h_med:.2f}x)")
    print(f"FIM time to first token ({fim_size} prompt tokens, {len(ttfts)} requests): ", end="")
    print(f"p50 {p50:.1f} ms, p95 {p95:.1f} ms")
    machine = f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}"
    section = (
        f"\n## serve, {date.today()}\n\n"
        f"Machine: {machine}; {args.threads} torch thread(s) on each side. Tiny Llama ({params:,} params, "
        f"hidden {args.hidden}, {args.layers} layers), {args.clients} prompts of stdlib code, greedy, "
        f"{args.tokens} new tokens each (EOS ignored on both sides), best of {args.repeats} interleaved runs "
        f"(medians: {h_med:.1f} and {s_med:.1f} tok/s, ratio {s_med / h_med:.2f}). "
        f"codelm serve runs as a child process; its clients stream over loopback HTTP (SSE).\n\n"
        f"| anchor: sequential HF `generate()` | codelm serve, {args.clients} concurrent streams "
        f"| ratio | target |\n"
        f"|---|---|---|---|\n| {h:.1f} tok/s | {s:.1f} tok/s | {ratio:.2f} | >= 4 |\n\n"
        f"FIM time to first token, {fim_size} prompt tokens, {len(ttfts)} sequential streamed requests: "
        f"p50 {p50:.1f} ms, p95 {p95:.1f} ms.\n"
    )
    results = Path(args.results)
    if not results.exists():
        results.write_text("# Benchmark results\n\nEach section is appended by its bench script.\n")
    with results.open("a") as f:
        f.write(section)
    print(f"RESULT name=serve ratio={ratio:.2f} target=4")


if __name__ == "__main__":
    main()
