"""Offline batched generation (what `codelm eval` and RL rollouts run): codelm's engine against HF
`generate` in fixed batches, the way bigcode-evaluation-harness generates a benchmark.

Workload: HumanEval's 164 prompts (the copy codelm ships), greedy, up to --max-new-tokens tokens,
stopping at HumanEval's stop sequences, on a *trained* model, since only a model that stops shows
what batching does with completions of different lengths (a random-weight model runs every row to
the limit). The default model is the final checkpoint of `make quickstart` (runs/tiny, 1.3M
parameters); `--model` takes any local checkpoint. Contenders, on the same threads:

- codelm `Engine.generate`: up to --rows rows decode at once and waiting prompts join the running
  batch as rows finish (`codelm.engine.decode.generate_pool`);
- codelm's decode loop in fixed batches of --rows (each batch runs until its longest row ends), as
  `Engine.generate` ran before the pool: what the pool buys;
- HF `generate` in fixed batches of --rows, left-padded, greedy, `stop_strings` with the same stops
  (the anchor: bigcode-evaluation-harness's way, batches of prompts sorted by length as codelm sorts).

All three must produce the same completions (checked: greedy on the same fp32 weights; the
completions are cut at the first stop as each harness cuts them). Reported: wall seconds and
generated tokens/s per contender, median of interleaved rounds (the machine is shared). Appends a
dated section to bench/RESULTS.md and ends with `RESULT name=generate ratio=<HF generate seconds /
codelm seconds> target=1.5`.

    python bench/generate.py [--model DIR] [--rows 32] [--max-new-tokens 384] [--repeats 3]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import torch

from codelm.engine import decode
from codelm.engine.engine import Engine
from codelm.eval.tasks.data import bundled_file
from codelm.eval.tasks.humaneval import STOPS
from codelm.models.formats import cut_at_first

TARGET = 1.5
DEFAULT_MODEL = Path(__file__).resolve().parents[1] / "runs" / "tiny" / "stages" / "dpo" / "final"


def prompts() -> list[str]:
    with gzip.open(bundled_file("HumanEval.jsonl.gz"), "rt", encoding="utf-8") as f:
        return [json.loads(line)["prompt"] for line in f]


def greedy_requests(engine: Engine, texts: list[str], max_new: int) -> list:
    return [engine.completion_request(t, max_new_tokens=max_new, temperature=0.0, stop=STOPS) for t in texts]


def codelm_pool(engine: Engine, texts: list[str], max_new: int) -> list[str]:
    return [r.completions[0].text for r in engine.generate(greedy_requests(engine, texts, max_new))]


def codelm_fixed(engine: Engine, texts: list[str], max_new: int) -> list[str]:
    """The engine's rows run in fixed batches (sorted by prompt length, as `generate` sorts)."""
    requests = greedy_requests(engine, texts, max_new)
    built = [engine.build_rows(r)[1][0] for r in requests]
    order = sorted(range(len(built)), key=lambda i: len(built[i].prompt_ids))
    for start in range(0, len(order), engine.max_batch_size):
        for _ in decode.generate_rows(
            engine.model, [built[i] for i in order[start : start + engine.max_batch_size]], engine.pad_id
        ):
            pass
    return [engine.finish(r, row).text for r, row in zip(requests, built, strict=True)]


def hf_batched(engine: Engine, texts: list[str], max_new: int) -> list[str]:
    """HF `generate` on left-padded batches of prompts sorted by length, stopping at the stops."""
    tok, model = engine.tokenizer, engine.model
    ids = [engine.encode(t) for t in texts]
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    out = [""] * len(texts)
    pad = engine.pad_id
    with torch.inference_mode():
        for start in range(0, len(order), engine.max_batch_size):
            batch = order[start : start + engine.max_batch_size]
            inputs, mask = decode.left_pad([ids[i] for i in batch], pad)
            width = inputs.shape[1]
            generated = model.generate(
                inputs,
                attention_mask=mask,
                do_sample=False,
                max_new_tokens=max_new,
                stop_strings=list(STOPS),
                tokenizer=tok,
                pad_token_id=pad,
            )
            for row, i in enumerate(batch):
                new = [t for t in generated[row, width:].tolist() if t != pad]
                text = tok.decode(new, skip_special_tokens=True)
                out[i] = cut_at_first(text, list(STOPS))[0]
    return out


def timed(fn: Callable, engine: Engine, texts: list[str], max_new: int) -> tuple[float, list[str]]:
    t0 = time.perf_counter()
    out = fn(engine, texts, max_new)
    return time.perf_counter() - t0, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(DEFAULT_MODEL), help="a trained local checkpoint")
    ap.add_argument("--rows", type=int, default=32, help="rows decoded at once (every contender)")
    ap.add_argument("--max-new-tokens", type=int, default=384)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--results", default=str(Path(__file__).with_name("RESULTS.md")))
    ap.add_argument("--no-record", action="store_true", help="do not append to bench/RESULTS.md")
    args = ap.parse_args()
    if not Path(args.model, "config.json").exists():
        sys.exit(f"no checkpoint at {args.model}: run `make quickstart` first or pass --model DIR")
    engine = Engine.from_pretrained(
        args.model, max_batch_size=args.rows, threads=args.threads, dtype="float32"
    )
    texts = prompts()
    contenders = {
        "codelm Engine.generate (refilling pool)": codelm_pool,
        "codelm decode loop, fixed batches": codelm_fixed,
        "HF generate, fixed batches": hf_batched,
    }
    load_before = os.getloadavg()[0]
    seconds: dict[str, list[float]] = {name: [] for name in contenders}
    outputs: dict[str, list[str]] = {}
    for r in range(args.repeats):
        for name, fn in contenders.items():
            took, out = timed(fn, engine, texts, args.max_new_tokens)
            seconds[name].append(took)
            outputs[name] = out
            print(f"round {r + 1}: {name:42s} {took:6.1f} s", flush=True)
    load_after = os.getloadavg()[0]
    reference = outputs["codelm Engine.generate (refilling pool)"]
    agree = {name: sum(a == b for a, b in zip(out, reference, strict=True)) for name, out in outputs.items()}
    tokens = sum(len(engine.encode(t)) for t in reference)  # the completions' tokens (re-encoded)
    median = {name: statistics.median(s) for name, s in seconds.items()}
    ours = median["codelm Engine.generate (refilling pool)"]
    ratio = median["HF generate, fixed batches"] / ours
    rows = "".join(
        f"| {name} | {median[name]:.1f} | {tokens / median[name]:.0f} | {median[name] / ours:.2f} "
        f"| {agree[name]} / {len(texts)} |\n"
        for name in contenders
    )
    params = sum(p.numel() for p in engine.model.parameters())
    section = (
        f"\n## generate: HumanEval offline, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC\n\n"
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} thread(s); load average {load_before:.1f} before, "
        f"{load_after:.1f} after. "
        f"Model {args.model} ({params / 1e6:.2f}M params, fp32); 164 HumanEval prompts, greedy, up to "
        f"{args.max_new_tokens} new tokens, HumanEval's stops; {args.rows} rows at once; median of "
        f"{args.repeats} interleaved rounds. "
        f"Command: `python bench/generate.py {' '.join(sys.argv[1:])}`.\n\n"
        "| contender | seconds | completion tokens/s | time / codelm's | completions equal to codelm's |\n"
        "|---|---|---|---|---|\n" + rows
    )
    print(section)
    if not args.no_record:
        with Path(args.results).open("a") as f:
            f.write(section)
    print(f"RESULT name=generate ratio={ratio:.2f} target={TARGET}")


if __name__ == "__main__":
    main()
