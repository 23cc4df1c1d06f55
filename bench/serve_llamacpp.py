"""Serving under 16 concurrent streams: codelm serve against llama.cpp's servers, same weights.

A ~30M-parameter Llama (bench/decode.py's model: codelm's tiny tokenizer, random weights at
hidden 512 x 8 layers) is served by four contenders, each a child process on a loopback port:
- `codelm serve` on PyTorch fp32 (continuous batching, codelm.engine.scheduler);
- `codelm serve --model FILE.gguf`: codelm's engine on llama.cpp f32 logits, continuously batched
  (one llama.cpp context, one sequence per request, one `llama_decode` per step): the contender the
  targets are about, as it runs the same weights on the same kernels as the anchors;
- llama-cpp-python's server (`python -m llama_cpp.server`, the `bench` extra), f32 GGUF: the anchor
  of the 1.5x target (it decodes one request at a time);
- llama.cpp's C++ `llama-server -np CLIENTS` (continuous batching over parallel slots), f32 GGUF:
  the anchor of the 1.0x target. It is not packaged: build it from a llama.cpp checkout
  (`cmake -B build -DLLAMA_CURL=OFF && cmake --build build --target llama-server`) and pass
  `--llama-server PATH`; without it that row is skipped and says so.

Every contender gets the same work: CLIENTS concurrent streaming /v1/completions requests (stdlib
code prompts), greedy, exactly --tokens new tokens each with EOS ignored (codelm and llama-server:
`ignore_eos`; llama-cpp-python has no such field, so its end-of-generation tokens get a -inf logit
bias, which is what llama-server's `ignore_eos` does), the same compute threads (--threads).
Token counts come from the stream's usage chunk, or (llama-cpp-python, which sends none) from
its one-chunk-per-token stream, checked once against a non-streamed answer's usage.

Reported: aggregate tokens/s (all tokens / wall time of the round) and p50/p95 time to first
token (request sent -> first chunk with text), pooled over the rounds. Rounds are interleaved
across contenders (--repeats each); the figures are medians. The machine's load average is
recorded before and after, since this 2-core machine is shared.

    python bench/serve_llamacpp.py [--llama-server PATH] [--clients 16] [--tokens 128] [--repeats 3]

Ends with `RESULT name=serve_vs_llamacpp_python ratio=<codelm gguf / llama-cpp-python> target=1.5`,
`RESULT name=serve_vs_llama_server ratio=<codelm gguf / llama-server> target=1.0` and
`RESULT name=serve_ttft_vs_llama_server ratio=<llama-server TTFT p95 / codelm gguf's> target=1.0`
(TTFT no worse), codelm gguf being `codelm serve --model f32.gguf`; the PyTorch server's ratios are
printed too. Both servers keep a prompt cache across rounds (llama-server's slots, codelm's free
sequences), so rounds after the first mostly skip prefill on both.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import torch
from decode import build_checkpoint  # bench/decode.py: the same ~30M model
from serve import code_prompts, percentile  # bench/serve.py

from codelm.models.gguf_export import export_gguf

TARGETS = {"llama-cpp-python server": 1.5, "llama-server": 1.0}
GGUF = "codelm serve --model f32.gguf"
_EVENT_END = re.compile(rb"\r?\n\r?\n")


@dataclass
class Contender:
    """A server child process and the request fields it needs for equal work."""

    name: str
    cmd: list[str]
    port: int
    extra: dict = field(default_factory=dict)
    proc: subprocess.Popen | None = None
    checked: bool = False  # check_work ran: streams without usage count as --tokens each
    rates: list[float] = field(default_factory=list)
    ttfts: list[float] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, log: Path, timeout_s: float = 300) -> None:
        """Start the child and wait until it lists its model (every contender serves /v1/models)."""
        self.proc = subprocess.Popen(self.cmd, stdout=log.open("w"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.proc.returncode}): {log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/v1/models", timeout=5).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"{self.name} did not start in {timeout_s:.0f} s: {log.read_text()[-2000:]}"
                )
            time.sleep(0.2)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _body_chunks(reader: asyncio.StreamReader, head: bytes):
    """The response body as it arrives: chunked transfer decoding, or raw bytes until EOF."""
    if b"transfer-encoding: chunked" in head.lower():
        while size := int((await reader.readline()).split(b";")[0].strip(), 16):
            yield (await reader.readexactly(size + 2))[:-2]
    else:
        while data := await reader.read(65536):
            yield data


async def stream_one(url: str, body: dict) -> tuple[float, int, int | None]:
    """(seconds to the first text, data chunks with a choice, usage completion_tokens or None).

    A minimal HTTP/1.1 SSE client: on 2 shared cores a client library's per-chunk work would
    compete with the server it measures.
    """
    host, port = url.removeprefix("http://").split(":")
    payload = json.dumps(body).encode()
    head = (
        f"POST /v1/completions HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
    ).encode()
    t0 = time.perf_counter()
    reader, writer = await asyncio.open_connection(host, int(port))
    first, chunks, usage, done, buf = None, 0, None, False, b""
    try:
        writer.write(head + payload)
        status = await reader.readuntil(b"\r\n\r\n")
        if not status.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(f"{url}: {status.splitlines()[0]!r}: {(await reader.read(500))!r}")
        async for data in _body_chunks(reader, status):
            *events, buf = _EVENT_END.split(buf + data)
            for ev in events:
                if not ev.startswith(b"data: "):
                    continue  # comments (llama-cpp-python's pings)
                if ev == b"data: [DONE]":
                    done = True
                    continue
                obj = json.loads(ev[6:])
                if obj.get("choices"):
                    chunks += 1
                    if first is None and obj["choices"][0].get("text"):
                        first = time.perf_counter() - t0
                if obj.get("usage"):
                    usage = obj["usage"]["completion_tokens"]
    finally:
        writer.close()
    if not done:
        raise RuntimeError(f"{url}: the stream ended without [DONE]")
    return first if first is not None else float("nan"), chunks, usage


async def one_round(c: Contender, prompts: list[str], tokens: int) -> tuple[float, list[float]]:
    """CLIENTS concurrent streams; (aggregate tokens/s, times to first token)."""
    bodies = [
        {"prompt": p, "max_tokens": tokens, "temperature": 0, "stream": True,
         "stream_options": {"include_usage": True}, **c.extra}
        for p in prompts
    ]  # fmt: skip
    t0 = time.perf_counter()
    done = await asyncio.gather(*(stream_one(c.url, b) for b in bodies))
    wall = time.perf_counter() - t0
    # no usage chunk: check_work showed `tokens` each; a chunk carries one token or a few
    counts = [
        tokens if usage is None and c.checked and chunks > tokens // 2 else usage for _, chunks, usage in done
    ]
    if counts != [tokens] * len(prompts):
        raise RuntimeError(f"{c.name}: unequal work, tokens per stream {counts}")
    return sum(counts) / wall, [t for t, _, _ in done]


async def check_work(c: Contender, prompts: list[str], tokens: int) -> None:
    """Non-streamed answers to every prompt must have exactly `tokens` tokens (EOS really ignored).

    Decoding is greedy, so a streamed round on the same prompts generates the same tokens: this is
    what makes llama-cpp-python's usage-less streams count as `tokens` each.
    """
    async with httpx.AsyncClient(timeout=900) as client:
        answers = await asyncio.gather(
            *(client.post(f"{c.url}/v1/completions", json={
                "prompt": p, "max_tokens": tokens, "temperature": 0, **c.extra}) for p in prompts)
        )  # fmt: skip
    got = [a.json()["usage"]["completion_tokens"] for a in answers]
    if got != [tokens] * len(prompts):
        raise RuntimeError(f"{c.name} generated {got} tokens, not {tokens} each: EOS was not ignored")


def eog_bias(gguf: Path) -> dict[str, float]:
    """A -inf logit bias on every end-of-generation token of the GGUF vocabulary."""
    import llama_cpp

    llm = llama_cpp.Llama(str(gguf), n_ctx=64, verbose=False, vocab_only=True)
    try:
        vocab = llama_cpp.llama_model_get_vocab(llm.model)
        n = llama_cpp.llama_vocab_n_tokens(vocab)
        return {str(i): -1e9 for i in range(n) if llama_cpp.llama_vocab_is_eog(vocab, i)}
    finally:
        llm.close()


def contenders(args: argparse.Namespace, ckpt: Path, gguf: Path) -> list[Contender]:
    t, n = str(args.threads), args.clients
    codelm = [
        sys.executable,
        "-m",
        "codelm.cli",
        "serve",
        "--threads",
        t,
        "--max-batch-size",
        str(max(32, n)),
    ]
    ignore = {"ignore_eos": True}
    out = []
    for name, model in (("codelm serve (PyTorch fp32)", ckpt), (GGUF, gguf)):
        port = free_port()
        out.append(Contender(name, [*codelm, "--model", str(model), "--port", str(port)], port, ignore))
    port = free_port()
    lcp = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--port", str(port)]
    lcp += ["--n_threads", t, "--n_threads_batch", t, "--n_ctx", "2048", "--interrupt_requests", "False"]
    out.append(Contender("llama-cpp-python server", lcp, port, {"logit_bias": eog_bias(gguf)}))
    if args.llama_server:
        port = free_port()
        cmd = [args.llama_server, "-m", str(gguf), "--host", "127.0.0.1", "--port", str(port)]
        cmd += ["-t", t, "-tb", t, "-np", str(n), "-c", str(n * 1024), "--no-webui"]
        out.append(Contender("llama-server", cmd, port, ignore))
    return out


def record(args: argparse.Namespace, rows: list[Contender], params: int, loads: tuple, skipped: str) -> None:
    import llama_cpp

    codelm = next((c for c in rows if c.name == GGUF), rows[0])
    machine = (
        f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"llama-cpp-python {llama_cpp.__version__}"
    )
    lines = []
    for c in rows:
        rate = statistics.median(c.rates)
        p50, p95 = percentile(c.ttfts, 0.5) * 1000, percentile(c.ttfts, 0.95) * 1000
        lines.append(f"| {c.name} | {rate:.1f} | {codelm_ratio(codelm, c):.2f} | {p50:.0f} | {p95:.0f} |\n")
    section = (
        f"\n## serve vs llama.cpp servers, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC\n\n"
        f"Machine: {machine}; {args.threads} compute thread(s) per server; load average "
        f"{loads[0]:.1f} before, {loads[1]:.1f} after. Llama of {params / 1e6:.1f}M params (hidden "
        f"{args.hidden}, {args.layers} layers, random weights), f32 everywhere (GGUF from `codelm "
        f"export gguf`); {args.clients} concurrent streaming clients, {args.tokens} tokens each, greedy, "
        f"EOS ignored; median of {args.repeats} interleaved rounds, TTFT pooled over rounds. "
        f"Command: `python bench/serve_llamacpp.py {' '.join(sys.argv[1:])}`.{skipped}\n\n"
        f"| server | tokens/s | {codelm.name} / this | TTFT p50 ms | TTFT p95 ms |\n"
        "|---|---|---|---|---|\n" + "".join(lines)
    )
    path = Path(args.results)
    if not path.exists():
        path.write_text("# Benchmark results\n\nEach section is appended by its bench script.\n")
    with path.open("a") as f:
        f.write(section)


def codelm_ratio(codelm: Contender, other: Contender) -> float:
    return statistics.median(codelm.rates) / statistics.median(other.rates)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--llama-server", help="path of llama.cpp's llama-server binary (row skipped without)")
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="compute threads of every server")
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--only", nargs="*", help="run only contenders whose name contains one of these")
    ap.add_argument("--results", default=str(Path(__file__).with_name("RESULTS.md")))
    ap.add_argument("--no-record", action="store_true", help="do not append to bench/RESULTS.md")
    args = ap.parse_args()
    skipped = ""
    if args.llama_server and not shutil.which(args.llama_server):
        sys.exit(f"--llama-server {args.llama_server}: no such executable")
    if not args.llama_server:
        skipped = " llama-server: skipped (no --llama-server PATH given)."
        print("llama-server: SKIPPED (pass --llama-server PATH to compare with llama.cpp's C++ server)")
    tmp = Path(tempfile.mkdtemp(prefix="codelm-bench-serve-llamacpp-"))
    rows: list[Contender] = []
    try:
        ckpt = build_checkpoint(tmp / "llama", args.hidden, args.layers)
        params = _params(ckpt)
        gguf = export_gguf(ckpt, tmp / "m-f32.gguf", "f32")
        rows = contenders(args, ckpt, gguf)
        if args.only:
            rows = [c for c in rows if any(o in c.name for o in args.only)]
        prompts = code_prompts(args.clients)
        for c in rows:
            c.start(tmp / f"{c.port}.log")
            if "python" in c.name:  # the only contender whose streams carry no usage
                asyncio.run(check_work(c, prompts, args.tokens))
                c.checked = True
            asyncio.run(one_round(c, prompts[:2], 8))  # warm-up
        before = os.getloadavg()[0]
        for r in range(args.repeats):  # interleaved, so load bursts hit every contender alike
            for c in rows:
                rate, ttfts = asyncio.run(one_round(c, prompts, args.tokens))
                c.rates.append(rate)
                c.ttfts += ttfts
                p95 = percentile(ttfts, 0.95) * 1000
                print(f"round {r + 1}: {c.name:32s} {rate:8.1f} tok/s, TTFT p95 {p95:.0f} ms", flush=True)
        loads = (before, os.getloadavg()[0])
    finally:
        for c in rows:
            c.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    for c in rows:
        p50, p95 = percentile(c.ttfts, 0.5) * 1000, percentile(c.ttfts, 0.95) * 1000
        print(f"{c.name:32s} {statistics.median(c.rates):8.1f} tok/s  TTFT p50 {p50:.0f} ms p95 {p95:.0f} ms")
    if not args.no_record:
        record(args, rows, params, loads, skipped)
    torch_row = next((c for c in rows if "PyTorch" in c.name), None)
    ours = next((c for c in rows if c.name == GGUF), None)
    for c in rows:
        if c.name in TARGETS and torch_row is not None:
            print(f"{torch_row.name} / {c.name}: {codelm_ratio(torch_row, c):.2f}")
    for c in rows:
        if c.name in TARGETS and ours is not None:
            key = "llamacpp_python" if "python" in c.name else "llama_server"
            ratio = codelm_ratio(ours, c)
            print(f"RESULT name=serve_vs_{key} ratio={ratio:.2f} target={TARGETS[c.name]}")
            if key == "llama_server":
                ttft = percentile(c.ttfts, 0.95) / percentile(ours.ttfts, 0.95)
                print(f"RESULT name=serve_ttft_vs_llama_server ratio={ttft:.2f} target=1.0")


def _params(ckpt: Path) -> int:
    """Parameter count read from the safetensors headers (no weights loaded)."""
    from safetensors import safe_open

    total = 0
    for f in ckpt.glob("*.safetensors"):
        with safe_open(str(f), framework="pt") as st:
            for key in st.keys():
                total += torch.Size(st.get_slice(key).get_shape()).numel()
    return total


if __name__ == "__main__":
    main()
