"""Batch-1 greedy decode speed: codelm's PyTorch engine against llama.cpp, same weights, same run.

A ~30M-parameter Llama (codelm's tiny tokenizer, random weights at the given width and depth) is
decoded greedily, batch 1, on the same threads by:
- a hand-written PyTorch greedy loop (forward with a KV cache, argmax): the floor of transformers;
- codelm's engine on PyTorch, fp32 (sampling, stop checks, incremental detokenization);
- raw llama.cpp through llama-cpp-python (eval + numpy argmax), on GGUF files written by
  `codelm export gguf` at f32 and f16: the anchor (issue 17);
- codelm's engine on the llama.cpp backend (f32): what `--model FILE.gguf` costs over raw llama.cpp.

It appends a dated section to bench/RESULTS.md and ends with
`RESULT name=decode ratio=<codelm PyTorch fp32 / llama.cpp f32> target=1.0`.

    python bench/decode.py [--tokens 128] [--repeats 3] [--threads 1] [--hidden 512 --layers 8]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import torch
from transformers import AutoConfig, AutoModelForCausalLM, DynamicCache

from codelm.engine.decode import _cache_kwarg
from codelm.engine.engine import Engine
from codelm.models.gguf_export import export_gguf
from codelm.models.tiny import make_tiny

PROMPT = 'import os\n\n\ndef walk(root):\n    """Yield every file below root."""\n'
TARGET = 1.0


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


def hand_loop(model, prompt_ids: list[int], tokens: int) -> int:
    """Forward + argmax with a KV cache: the PyTorch floor."""
    with torch.inference_mode():
        kv = {_cache_kwarg(type(model)): DynamicCache(config=model.config)}  # the name transformers takes
        out = model(input_ids=torch.tensor([prompt_ids]), use_cache=True, logits_to_keep=1, **kv)
        for _ in range(tokens):
            nxt = out.logits[:, -1, :].argmax(-1, keepdim=True)
            out = model(input_ids=nxt, use_cache=True, **kv)
    return tokens


def engine_run(engine: Engine, tokens: int) -> int:
    result = engine.complete(PROMPT, max_new_tokens=tokens, temperature=0.0, ignore_eos=True)
    done = result.completions[0].completion_tokens
    assert done == tokens, f"engine stopped after {done} tokens"  # the same work as the anchors
    return done


def raw_llama_cpp(llm, prompt_ids: list[int], tokens: int) -> int:
    """llama-cpp-python's eval and an argmax over llama.cpp's logits: no codelm in the loop."""
    import llama_cpp

    n_vocab = llm.n_vocab()
    llm.reset()
    llm.eval(prompt_ids)
    for _ in range(tokens):
        logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm.ctx, -1), shape=(n_vocab,))
        llm.eval([int(logits.argmax())])
    return tokens


def timed(fn, *args) -> float:
    t0 = time.perf_counter()
    n = fn(*args)
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--results", default=str(Path(__file__).with_name("RESULTS.md")))
    ap.add_argument("--no-record", action="store_true", help="do not append to bench/RESULTS.md")
    args = ap.parse_args()
    import llama_cpp

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = build_checkpoint(Path(tmp) / "llama", args.hidden, args.layers)
        engine = Engine.from_pretrained(str(ckpt), threads=args.threads)
        files = {k: export_gguf(ckpt, Path(tmp) / f"m-{k}.gguf", k) for k in ("f32", "f16")}
        raw = {
            k: llama_cpp.Llama(
                str(f), n_ctx=1024, n_threads=args.threads, n_threads_batch=args.threads, verbose=False
            )
            for k, f in files.items()
        }
        cpp_engine = Engine.from_pretrained(str(files["f32"]), threads=args.threads)
    ids = engine.encode(PROMPT)
    runs = {
        "hand-written PyTorch loop": (hand_loop, engine.model, ids, args.tokens),
        "codelm engine, PyTorch fp32": (engine_run, engine, args.tokens),
        "llama.cpp f32 (raw)": (raw_llama_cpp, raw["f32"], ids, args.tokens),
        "llama.cpp f16 (raw)": (raw_llama_cpp, raw["f16"], ids, args.tokens),
        "codelm engine, llama.cpp f32": (engine_run, cpp_engine, args.tokens),
    }
    for fn, *rest in runs.values():  # warm-up
        fn(*rest[:-1], 8)
    rates: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.repeats):  # interleaved, so machine load hits every contender alike
        for name, (fn, *rest) in runs.items():
            rates[name].append(timed(fn, *rest))
    load = os.getloadavg()[0]
    for llm in raw.values():
        llm.close()  # now, not in __del__ at exit (llama-cpp-python's bindings are gone by then)
    med = {name: statistics.median(r) for name, r in rates.items()}
    ratio = med["codelm engine, PyTorch fp32"] / med["llama.cpp f32 (raw)"]
    overhead = med["codelm engine, llama.cpp f32"] / med["llama.cpp f32 (raw)"]
    params = sum(p.numel() for p in engine.model.parameters())
    for name, rate in med.items():
        print(f"{name:32s} {rate:8.1f} tok/s")
    machine = (
        f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"llama-cpp-python {llama_cpp.__version__}"
    )
    section = (
        f"\n## decode vs llama.cpp, {date.today()}\n\n"
        f"Machine: {machine}; {args.threads} thread(s) each. Llama of {params / 1e6:.1f}M params "
        f"(hidden {args.hidden}, {args.layers} layers, vocab {engine.vocab_size}), batch 1, greedy, "
        f"{args.tokens} new tokens, median of {args.repeats} interleaved runs, load average {load:.1f}; "
        "GGUF files from `codelm export gguf`.\n\n"
        "| contender | tokens/s |\n|---|---|\n"
        + "".join(f"| {name} | {rate:.1f} |\n" for name, rate in med.items())
        + f"\ncodelm PyTorch fp32 / llama.cpp f32: **{ratio:.2f}** (target >= {TARGET}); codelm on the "
        f"llama.cpp backend / raw llama.cpp f32: {overhead:.2f} (issue 17: >= 0.9).\n"
    )
    if not args.no_record:
        path = Path(args.results)
        if not path.exists():
            path.write_text("# Benchmark results\n\nEach section is appended by its bench script.\n")
        with path.open("a") as f:
            f.write(section)
    print(f"RESULT name=decode ratio={ratio:.3f} target={TARGET}")


if __name__ == "__main__":
    main()
