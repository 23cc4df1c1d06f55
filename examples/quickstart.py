"""The main job until the recipes land: every family end to end, offline, on a laptop CPU.

For each of the five families it builds a tiny checkpoint (real architecture, random weights, a BPE
trained on the standard library), detects its family back from the files, then completes, infills
and chats through the engine with the family's own formats, streams a completion, and measures
batch-1 decode speed. Weights are random, so the text is gibberish; the formats are the point.

    make quickstart            # or: .venv/bin/python examples/quickstart.py [--out runs/quickstart]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from codelm.engine import Engine
from codelm.errors import UnsupportedFeatureError
from codelm.models import FAMILY_NAMES
from codelm.models.detect import detect_family
from codelm.models.tiny import make_tiny

PREFIX = "def mean(xs):\n    total = "
SUFFIX = "\n    return total / len(xs)\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/quickstart")
    args = ap.parse_args()
    console = Console()
    table = Table(title="codelm quickstart: tiny checkpoints of every family")
    for col in ("family", "architecture", "params", "detected", "FIM", "chat", "decode tok/s"):
        table.add_column(col)
    for name in FAMILY_NAMES:
        t0 = time.perf_counter()
        path = make_tiny(name, Path(args.out) / f"tiny-{name}")
        console.print(f"[bold]{name}[/]: built {path} in {time.perf_counter() - t0:.1f}s")
        engine = Engine.from_pretrained(str(path))
        params = sum(p.numel() for p in engine.model.parameters())
        done = engine.complete("import os\n\n\ndef ", max_new_tokens=16, temperature=0.8, seed=0)
        console.print(f"  complete -> {done.text!r} ({done.completions[0].finish_reason})", markup=False)
        try:
            fill = engine.infill(PREFIX, SUFFIX, max_new_tokens=12, temperature=0.0)
            console.print(f"  FIM prompt {fill.request.prompt!r}", markup=False)
            console.print(f"  infill   -> {fill.text!r}", markup=False)
        except UnsupportedFeatureError as exc:
            console.print(f"  infill   -> refused: {exc}", markup=False)
        if engine.family.chat:
            reply = engine.chat(
                [{"role": "user", "content": "Write a function that reverses a string."}],
                max_new_tokens=12,
                temperature=0.0,
            )
            console.print(f"  chat prompt {reply.request.prompt[-90:]!r}", markup=False)
            console.print(f"  chat     -> {reply.text!r}", markup=False)
        console.print("  stream   -> ", end="")
        t0 = time.perf_counter()
        tokens = 0
        for chunk in engine.stream(
            engine.completion_request("class Stack:\n", max_new_tokens=64, temperature=0.0)
        ):
            console.print(repr(chunk.text)[1:-1], end="", markup=False, highlight=False)
            tokens = chunk.completion_tokens or tokens
        rate = tokens / (time.perf_counter() - t0)
        console.print()
        fam = engine.family
        table.add_row(
            name,
            fam.architecture,
            f"{params:,}",
            detect_family(path).name,
            fam.fim.order.upper() if fam.fim else "none",
            "yes" if fam.chat else "no",
            f"{rate:.0f}",
        )
    console.print(table, markup=False)
    console.print(
        f"Checkpoints are in {args.out}/; try: codelm infill --model {args.out}/tiny-seedcoder "
        f"--prefix 'def f(x):' --suffix 'return y'",
        markup=False,
    )


if __name__ == "__main__":
    main()
