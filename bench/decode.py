"""Batch-1 decode speed: codelm's engine against a hand-written greedy loop, same model, same run.

The hand loop is the floor of what transformers can do per token (forward with a KV cache, argmax,
no stop checks, no detokenization); the engine adds sampling, stop handling and incremental
decoding, and must stay within 10% of it.

    python bench/decode.py [--tokens 256] [--repeats 5]
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

import torch
from transformers import DynamicCache

from codelm.engine.engine import Engine
from codelm.models.tiny import make_tiny

PROMPT = 'import os\n\n\ndef walk(root):\n    """Yield every file below root."""\n'


def hand_loop(model, prompt_ids: list[int], tokens: int) -> int:
    """Forward + argmax with a KV cache: the anchor."""
    with torch.inference_mode():
        cache = DynamicCache(config=model.config)
        ids = torch.tensor([prompt_ids])
        out = model(input_ids=ids, past_key_values=cache, use_cache=True, logits_to_keep=1)
        for _ in range(tokens):
            nxt = out.logits[:, -1, :].argmax(-1, keepdim=True)
            out = model(input_ids=nxt, past_key_values=cache, use_cache=True)
    return tokens


def engine_run(engine: Engine, tokens: int) -> int:
    result = engine.complete(PROMPT, max_new_tokens=tokens, temperature=0.0, ignore_eos=True)
    done = result.completions[0].completion_tokens
    assert done == tokens, f"engine stopped after {done} tokens"  # same work as the hand loop
    return done


def timed(fn, *args) -> float:
    t0 = time.perf_counter()
    n = fn(*args)
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--results", default=str(Path(__file__).with_name("RESULTS.md")))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        engine = Engine.from_pretrained(str(make_tiny("llama", Path(tmp) / "llama")), threads=args.threads)
    ids = engine.encode(PROMPT)
    hand_loop(engine.model, ids, 16)
    engine_run(engine, 16)
    hand, ours = [], []
    for _ in range(args.repeats):  # interleaved, so machine load hits both alike
        hand.append(timed(hand_loop, engine.model, ids, args.tokens))
        ours.append(timed(engine_run, engine, args.tokens))
    h, o = statistics.median(hand), statistics.median(ours)
    ratio = o / h
    machine = f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}"
    params = sum(p.numel() for p in engine.model.parameters())
    print(f"hand-written greedy loop: {h:8.1f} tok/s (median of {args.repeats})")
    print(f"codelm engine:            {o:8.1f} tok/s")
    section = (
        f"\n## decode, {date.today()}\n\n"
        f"Machine: {machine}; {args.threads} torch thread(s). Tiny Llama ({params:,} params), batch 1, "
        f"greedy, {args.tokens} new tokens, median of {args.repeats} interleaved runs.\n\n"
        f"| anchor: hand loop (forward + argmax, KV cache) | codelm engine | ratio | target |\n"
        f"|---|---|---|---|\n| {h:.1f} tok/s | {o:.1f} tok/s | {ratio:.3f} | >= 0.9 |\n"
    )
    path = Path(args.results)
    if not path.exists():
        path.write_text("# Benchmark results\n\nEach section is appended by its bench script.\n")
    with path.open("a") as f:
        f.write(section)
    print(f"RESULT name=decode ratio={ratio:.3f} target=0.9")


if __name__ == "__main__":
    main()
