"""Batch-1 greedy decode speed: codelm's PyTorch engine against HF generate and llama.cpp, same run.

Llamas of ~30M and ~200M parameters (codelm's tiny tokenizer, random weights at the given width and
depth) are decoded greedily, batch 1, on the same threads by:
- a hand-written PyTorch greedy loop (forward with a KV cache, argmax), fp32: the floor of transformers;
- HF `generate` (greedy, fp32);
- codelm's engine on PyTorch (sampling, stop checks, incremental detokenization; its Llama decode
  step, `codelm.engine.llama_step`) in fp32 (with the row-split linears it loads at 16M+ parameters),
  and, on a CPU with native bf16 (AVX512-BF16/AMX), in bf16 with prepacked linears, q/k/v and gate/up
  stacked (what dtype "auto" picks at ~200M); the "(plain)" rows load with `pack=False`: plain
  linears and transformers' forward for every step (what all of that buys);
- raw llama.cpp through llama-cpp-python's C bindings (llama_decode + numpy argmax), on GGUF files written by
  `codelm export gguf` at f32 and f16: the anchor (issue 17);
- codelm's engine on the llama.cpp backend (f32): what `--model FILE.gguf` costs over raw llama.cpp.

Decode at batch 1 reads every weight once per token, so each contender is also put against the
memory-bandwidth floor: (weight bytes read per token) / (read bandwidth), the bandwidth measured in
the same run as the rate of a large torch sum on the same threads. Rounds are interleaved (every
contender once per round, the bandwidth too) and medians reported, since the machine is shared.

It appends a dated section to bench/RESULTS.md and ends with
`RESULT name=decode ratio=<best codelm PyTorch / llama.cpp f32 at the largest size> target=1.0` and
`RESULT name=decode_llamacpp_backend ratio=<codelm on llama.cpp f32 / raw llama.cpp f32> target=0.9`
(codelm's engine adds at most 10% over the llama.cpp it runs on), each when its contenders ran.

With `--prompt-tokens N` the prompt is code of about N tokens, and each rate is decode alone: the
time of `--tokens` + 1 new tokens less that of 1 (the prefill), for every contender. On a CPU with
native bf16 a row then shows the engine with its KV cache in bf16 instead of fp32
(`codelm.engine.cpu.cache_dtype`: what the fp32 cache buys as the context grows).

    python bench/decode.py [--tokens 128] [--repeats 3] [--threads 1] [--sizes 512x8,1024x16]
    python bench/decode.py --sizes 512x8 --only llama.cpp   # just the llama.cpp rows at ~28M
    python bench/decode.py --sizes 1024x16 --prompt-tokens 800   # decode after an 800-token prompt
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch
from transformers import AutoConfig, AutoModelForCausalLM, DynamicCache

from codelm.engine.cpu import RowSplitLinear, cache_dtype, native_bf16
from codelm.engine.decode import _cache_kwarg
from codelm.engine.engine import Engine
from codelm.engine.loader import resolve_dtype
from codelm.models.gguf_export import export_gguf
from codelm.models.tiny import make_tiny

PROMPT = 'import os\n\n\ndef walk(root):\n    """Yield every file below root."""\n'
CONTEXT = 1024  # the positions of build_checkpoint's model and of the llama.cpp contexts
TARGET = 1.0
BACKEND_TARGET = 0.9  # codelm's engine on llama.cpp at >= 90% of raw llama.cpp's tokens/s


def build_checkpoint(out: Path, hidden: int, layers: int) -> Path:
    """codelm's tiny Llama (tokenizer, family files) with its model widened to `hidden` x `layers`."""
    path = make_tiny("llama", out)
    config = AutoConfig.from_pretrained(str(path))
    config.update(
        {
            "hidden_size": hidden,
            "num_hidden_layers": layers,
            "num_attention_heads": hidden // 64,
            "num_key_value_heads": hidden // 64,
            "head_dim": 64,
            "intermediate_size": int(hidden * 2.75),
        }
    )
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(str(path))
    return path


def read_params(model) -> int:
    """Parameters one decode step reads: all but the input embedding table (one row of it is read),
    unless the output head shares it."""
    total = sum(p.numel() for p in model.parameters())
    embed = model.get_input_embeddings().weight
    head = model.get_output_embeddings()
    tied = getattr(head, "weight", None) is embed
    return total - (0 if tied else embed.numel())


def hand_loop(model, prompt_ids: list[int], tokens: int) -> int:
    """Forward + argmax with a KV cache: the PyTorch floor."""
    with torch.inference_mode():
        kv = {_cache_kwarg(type(model)): DynamicCache(config=model.config)}  # the name transformers takes
        out = model(input_ids=torch.tensor([prompt_ids]), use_cache=True, logits_to_keep=1, **kv)
        for _ in range(tokens):
            nxt = out.logits[:, -1, :].argmax(-1, keepdim=True)
            out = model(input_ids=nxt, use_cache=True, **kv)
    return tokens


def hf_generate(model, prompt_ids: list[int], tokens: int) -> int:
    """transformers' own greedy `generate`, forced to `tokens` new tokens."""
    with torch.inference_mode():
        out = model.generate(
            torch.tensor([prompt_ids]),
            attention_mask=torch.ones((1, len(prompt_ids)), dtype=torch.long),
            do_sample=False,
            max_new_tokens=tokens,
            min_new_tokens=tokens,
            pad_token_id=model.generation_config.eos_token_id,
        )
    return out.shape[1] - len(prompt_ids)


def engine_run(engine: Engine, tokens: int) -> int:
    result = engine.complete(PROMPT, max_new_tokens=tokens, temperature=0.0, ignore_eos=True)
    done = result.completions[0].completion_tokens
    assert done == tokens, f"engine stopped after {done} tokens"  # the same work as the anchors
    return done


def raw_llama_cpp(llm, prompt_ids: list[int], tokens: int) -> int:
    """llama.cpp's own C API and an argmax over its logits, no codelm in the loop: llama_decode of a
    one-sequence batch (llama_batch_get_one), as llama.cpp's simple example does; llama-cpp-python's
    `Llama.eval` is bypassed, since it adds Python work of its own per token."""
    import llama_cpp

    n_vocab = llm.n_vocab()
    llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(llm.ctx), True)
    ids = (llama_cpp.llama_token * len(prompt_ids))(*prompt_ids)
    if llama_cpp.llama_decode(llm.ctx, llama_cpp.llama_batch_get_one(ids, len(prompt_ids))) != 0:
        raise RuntimeError("llama_decode failed on the prompt")
    one = (llama_cpp.llama_token * 1)()
    for _ in range(tokens):
        logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm.ctx, -1), shape=(n_vocab,))
        one[0] = int(logits.argmax())
        if llama_cpp.llama_decode(llm.ctx, llama_cpp.llama_batch_get_one(one, 1)) != 0:
            raise RuntimeError("llama_decode failed")
    return tokens


def read_bandwidth(buf: torch.Tensor) -> float:
    """Bytes/s of one sum over `buf` (far larger than the caches): what a weight read can get."""
    t0 = time.perf_counter()
    buf.sum()
    return buf.numel() * buf.element_size() / (time.perf_counter() - t0)


def timed(fn: Callable[..., int], *args, decode_only: bool = False) -> float:
    """Tokens/s of `fn(*args)`, whose last argument is the token count; `decode_only`: of the tokens
    after the first, as (time for count + 1) - (time for 1), so a long prompt's prefill is left out."""
    if not decode_only:
        t0 = time.perf_counter()
        n = fn(*args)
        return n / (time.perf_counter() - t0)
    *head, tokens = args
    t0 = time.perf_counter()
    fn(*head, 1)
    t1 = time.perf_counter()
    fn(*head, tokens + 1)
    return tokens / ((time.perf_counter() - t1) - (t1 - t0))


def long_prompt(ckpt: Path, tokens: int) -> str:
    """About `tokens` tokens (by the checkpoint's tokenizer) of Python, this file's own source repeated
    as needed, cut at a line end and followed by the short prompt's function header."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(ckpt))
    tokenizer.model_max_length = 10**9  # the search below encodes texts longer than the model's context
    encode = tokenizer.encode
    text = Path(__file__).read_text()
    text = text * (1 + tokens * 8 // len(text))  # no tokenizer packs 8+ characters a token on average
    lo, hi = 0, len(text)
    while lo < hi:  # the longest cut whose tokens, with the header, stay within `tokens`
        mid = (lo + hi + 1) // 2
        if len(encode(text[:mid] + PROMPT)) <= tokens:
            lo = mid
        else:
            hi = mid - 1
    return text[: text.rfind("\n", 0, lo) + 1] + PROMPT


def contenders(ckpt: Path, tmp: Path, threads: int, tokens: int, raw: list) -> dict[str, tuple]:
    """name -> (bytes per weight, function, *args): every decoder of one checkpoint."""
    import llama_cpp

    fp32 = Engine.from_pretrained(str(ckpt), threads=threads, dtype="float32")
    split = any(isinstance(m, RowSplitLinear) for m in fp32.model.modules())
    # the anchors run transformers' own model: plain nn.Linear, as HF loads it
    unsplit = fp32
    if split:
        unsplit = Engine.from_pretrained(str(ckpt), threads=threads, dtype="float32", pack=False)
    ids = fp32.encode(PROMPT)
    out = {
        "hand-written PyTorch loop, fp32": (4, hand_loop, unsplit.model, ids, tokens),
        "HF generate, fp32": (4, hf_generate, unsplit.model, ids, tokens),
        "codelm engine, PyTorch fp32": (4, engine_run, fp32, tokens),
    }
    if split:
        out["codelm engine, PyTorch fp32 (plain)"] = (4, engine_run, unsplit, tokens)
    if native_bf16():
        bf16 = Engine.from_pretrained(str(ckpt), threads=threads, dtype="bfloat16")
        plain = Engine.from_pretrained(str(ckpt), threads=threads, dtype="bfloat16", pack=False)
        out["codelm engine, PyTorch bf16 (packed)"] = (2, engine_run, bf16, tokens)
        out["codelm engine, PyTorch bf16 (plain)"] = (2, engine_run, plain, tokens)
        if len(ids) > 256 and cache_dtype(bf16.model) is not None:
            bf16_cache = Engine.from_pretrained(str(ckpt), threads=threads, dtype="bfloat16")
            bf16_cache.model.set_attn_implementation("sdpa")  # cache_dtype None: the cache stays bf16
            out["codelm engine, PyTorch bf16 (packed, bf16 cache)"] = (2, engine_run, bf16_cache, tokens)
    for kind, width in (("f32", 4), ("f16", 2)):
        gguf = export_gguf(ckpt, tmp / f"{ckpt.name}-{kind}.gguf", kind)
        llm = llama_cpp.Llama(
            str(gguf),
            n_ctx=CONTEXT,
            n_batch=CONTEXT,
            n_threads=threads,
            n_threads_batch=threads,
            verbose=False,
        )
        raw.append(llm)
        out[f"llama.cpp {kind} (raw)"] = (width, raw_llama_cpp, llm, ids, tokens)
        if kind == "f32":
            cpp = Engine.from_pretrained(str(gguf), threads=threads)
            out["codelm engine, llama.cpp f32"] = (4, engine_run, cpp, tokens)
    return out


def profile(engine: Engine, tokens: int, top: int = 10) -> str:
    """Where one engine's decode time goes: torch ops by self time, and the rest (Python, HF module
    code, dispatch) as wall time outside every op; a markdown table."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    engine_run(engine, 8)
    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        t0 = time.perf_counter()
        engine_run(engine, tokens)
        wall = (time.perf_counter() - t0) * 1e6  # microseconds, as the profiler counts
    ops = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)
    inside = sum(e.self_cpu_time_total for e in ops)
    lines = [f"| {e.key} | {e.count // tokens} | {e.self_cpu_time_total / wall:.1%} |\n" for e in ops[:top]]
    rest = sum(e.self_cpu_time_total for e in ops[top:])
    lines.append(f"| other ops | | {rest / wall:.1%} |\n")
    lines.append(f"| outside torch ops (Python, HF modules, dispatch) | | {(wall - inside) / wall:.1%} |\n")
    return (
        f"{wall / tokens / 1e3:.1f} ms per token under the profiler.\n\n"
        "| op | calls per token | share of decode wall time |\n|---|---|---|\n" + "".join(lines)
    )


def measure(
    runs: dict[str, tuple], repeats: int, buf: torch.Tensor, decode_only: bool = False
) -> tuple[dict[str, float], float]:
    """Median tokens/s per contender and median read bandwidth (bytes/s) over interleaved rounds."""
    for _, fn, *rest in runs.values():  # warm-up
        fn(*rest[:-1], 8)
    rates: dict[str, list[float]] = {name: [] for name in runs}
    bandwidth = []
    for _ in range(repeats):  # interleaved, so machine load hits every contender alike
        bandwidth.append(read_bandwidth(buf))
        for name, (_, fn, *rest) in runs.items():
            rates[name].append(timed(fn, *rest, decode_only=decode_only))
    return {name: statistics.median(r) for name, r in rates.items()}, statistics.median(bandwidth)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--sizes", default="512x8,1024x16", help="hidden x layers, comma-separated")
    ap.add_argument("--results", default=str(Path(__file__).with_name("RESULTS.md")))
    ap.add_argument("--no-record", action="store_true", help="do not append to bench/RESULTS.md")
    ap.add_argument("--profile", action="store_true", help="also profile the codelm PyTorch engines")
    ap.add_argument(
        "--prompt-tokens",
        type=int,
        default=0,
        help="a prompt of about this many tokens, and rates of decode alone (default: a 21-token prompt)",
    )
    ap.add_argument(
        "--only", nargs="*", help="time only contenders whose name contains one of these (e.g. llama.cpp)"
    )
    args = ap.parse_args()
    import llama_cpp

    global PROMPT
    if args.prompt_tokens < 0 or args.tokens < 1:
        ap.error("--prompt-tokens must be >= 0 and --tokens >= 1")
    if args.prompt_tokens + args.tokens + 1 > CONTEXT:
        ap.error(f"--prompt-tokens + --tokens must stay under {CONTEXT}, the models' context")

    torch.set_num_threads(args.threads)
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    buf = torch.ones(128 * 2**20)  # 512 MiB of fp32
    load_before = os.getloadavg()
    tables, ratio, backend = [], None, None
    for hidden, layers in sizes:
        raw: list = []
        with tempfile.TemporaryDirectory() as tmp:
            ckpt = build_checkpoint(Path(tmp) / f"llama-{hidden}x{layers}", hidden, layers)
            if args.prompt_tokens:
                PROMPT = long_prompt(ckpt, args.prompt_tokens)
            runs = contenders(ckpt, Path(tmp), args.threads, args.tokens, raw)
            prompt_ids = len(runs["codelm engine, PyTorch fp32"][2].encode(PROMPT))
        model = runs["codelm engine, PyTorch fp32"][2].model
        params, per_token = sum(p.numel() for p in model.parameters()), read_params(model)
        auto = resolve_dtype("auto", torch.device("cpu"), params)
        if args.only:
            runs = {k: v for k, v in runs.items() if any(o in k for o in args.only)}
            if not runs:
                raise SystemExit(f"--only {' '.join(args.only)}: no contender's name matches")
        med, bw = measure(runs, args.repeats, buf, decode_only=bool(args.prompt_tokens))
        for llm in raw:
            llm.close()  # now, not in __del__ at exit (llama-cpp-python's bindings are gone by then)
        pytorch = max(
            (r for name, r in med.items() if name.startswith("codelm engine, PyTorch")), default=None
        )
        raw_f32 = med.get("llama.cpp f32 (raw)")
        ratio = pytorch / raw_f32 if pytorch and raw_f32 else None
        backend = (
            med["codelm engine, llama.cpp f32"] / raw_f32
            if raw_f32 and "codelm engine, llama.cpp f32" in med
            else None
        )
        summary = ""
        if ratio is not None:
            summary += f"best codelm PyTorch / llama.cpp f32: **{ratio:.2f}**\n"
        if backend is not None:
            summary += f"codelm engine on llama.cpp f32 / raw llama.cpp f32: **{backend:.2f}**\n"
        rows = []
        print(f"\n{params / 1e6:.1f}M params, read bandwidth {bw / 1e9:.1f} GB/s")
        for name, rate in med.items():
            width = runs[name][0]
            floor = bw / (per_token * width)  # tokens/s if only the weight reads took time
            rows.append(f"| {name} | {rate:.1f} | {per_token * width / 1e6:.0f} | {rate / floor:.2f} |\n")
            print(f"{name:40s} {rate:8.1f} tok/s  {rate / floor:5.2f} of the bandwidth floor")
        print(summary.replace("**", ""), end="")
        profiles = []
        if args.profile:
            for name, (_, _fn, engine, *_rest) in runs.items():
                if name.startswith("codelm engine, PyTorch") and "plain" not in name:
                    prof = profile(engine, min(args.tokens, 32))
                    print(f"\nprofile of {name}:\n{prof}")
                    profiles.append(f"\nProfile of {name}: {prof}")
        tables.append(
            f"\n### {params / 1e6:.1f}M params (hidden {hidden}, {layers} layers)\n\n"
            f"Read bandwidth (torch sum of 512 MiB, median): {bw / 1e9:.1f} GB/s; dtype auto picks "
            f"{str(auto).removeprefix('torch.')} here.\n\n"
            "| contender | tokens/s | weight MB read per token | fraction of bandwidth floor |\n"
            "|---|---|---|---|\n" + "".join(rows) + f"\n{summary}" + "".join(profiles)
        )
    load_after = os.getloadavg()
    machine = (
        f"{platform.machine()}, {os.cpu_count()} cores, native bf16: {native_bf16()}, "
        f"torch {torch.__version__}, llama-cpp-python {llama_cpp.__version__}"
    )
    context = (
        f"after a {prompt_ids}-token prompt, decode alone (time for {args.tokens + 1} tokens less "
        "that for 1; the bandwidth floor counts the weights, not the KV cache), "
        if args.prompt_tokens
        else ""
    )
    section = (
        f"\n## decode vs llama.cpp and HF generate, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC\n\n"
        f"Machine: {machine}; {args.threads} thread(s) each. Batch 1, greedy, {args.tokens} new tokens, "
        f"{context}median of {args.repeats} interleaved rounds; load average (1 min) "
        f"{load_before[0]:.1f} before, {load_after[0]:.1f} after. GGUF files from `codelm export gguf`. "
        "Command: "
        f"`python bench/decode.py --tokens {args.tokens} --repeats {args.repeats} --threads {args.threads} "
        f"--sizes {args.sizes}{f' --prompt-tokens {args.prompt_tokens}' if args.prompt_tokens else ''}"
        f"{' --only ' + ' '.join(args.only) if args.only else ''}`.\n" + "".join(tables)
    )
    if not args.no_record:
        path = Path(args.results)
        if not path.exists():
            path.write_text("# Benchmark results\n\nEach section is appended by its bench script.\n")
        with path.open("a") as f:
            f.write(section)
    if ratio is not None:
        print(f"RESULT name=decode ratio={ratio:.3f} target={TARGET}")
    if backend is not None:
        print(f"RESULT name=decode_llamacpp_backend ratio={backend:.3f} target={BACKEND_TARGET}")


if __name__ == "__main__":
    main()
