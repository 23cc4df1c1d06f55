"""Argument wiring for `codelm train` and `codelm tokenizer train`; light to import.

    codelm train CONFIG.yaml [--resume] [--set key=value ...] [--print-config]
    codelm tokenizer train --family F --input PATHS... --vocab-size N --out DIR

cli.py calls `add_train_args(parser)` / `add_tokenizer_train_args(parser)` to declare the flags and
`train_from_args(args)` / `tokenizer_train_from_args(args)` to run; torch, transformers and tokenizers
are imported only then. For several processes wrap it in accelerate, e.g. `accelerate launch
--config_file configs/train/accelerate/ddp-cpu.yaml -m codelm.train.cli CONFIG.yaml` (docs/training.md).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml


def add_train_args(p: argparse.ArgumentParser) -> None:
    """The flags of `codelm train`."""
    p.add_argument("config", help="stage YAML (configs/train/*.yaml)")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in run.out_dir")
    from codelm.config import add_config_args

    add_config_args(p, "stage", file=False)  # e.g. --set optim.lr=1e-3 --set run.max_steps=10


def add_tokenizer_train_args(p: argparse.ArgumentParser) -> None:
    """The flags of `codelm tokenizer train` (cli.py calls this, then `tokenizer_train_from_args`)."""
    p.add_argument("--family", required=True, help="format whose special tokens and chat template to use")
    p.add_argument("--input", nargs="+", required=True, metavar="PATH", help="files, dirs, .jsonl(.gz)")
    p.add_argument("--vocab-size", type=int, required=True, help="BPE vocabulary size incl. special tokens")
    p.add_argument("--out", required=True, help="output directory (an HF tokenizer)")
    p.add_argument("--min-frequency", type=int, default=2, help="minimum pair count for a merge")
    p.add_argument("--max-bytes", type=int, help="stop reading the corpus after this many characters")
    p.add_argument("--max-len", type=int, help="model_max_length (default: the family's context)")
    p.add_argument("--no-split-digits", action="store_true", help="let BPE merge digits")
    p.add_argument("--no-whitespace-runs", action="store_true", help="no space/tab run tokens")


def tokenizer_train_from_args(args: argparse.Namespace) -> Path:
    """Run `codelm tokenizer train` (codelm.train.tokenizer); prints and returns the output directory."""
    from codelm.train.tokenizer import tokenizer_train_from_args as run

    return run(args)


def train_from_args(args: argparse.Namespace) -> Path | None:
    """Run `codelm train` from parsed arguments; prints the final checkpoint directory."""
    from codelm.train.config import load_config

    cfg = load_config(args.config, list(args.overrides or []))
    if getattr(args, "print_config", False):
        yaml.safe_dump(cfg.to_dict(), sys.stdout, sort_keys=False)
        return None
    from codelm.train.loop import train

    final = train(cfg, resume=args.resume)
    print(final)
    return final


def main(argv: list[str] | None = None) -> int:
    """`python -m codelm.train.cli CONFIG ...`, handy under `accelerate launch` before cli.py wires it."""
    from codelm.errors import CodelmError

    p = argparse.ArgumentParser(prog="codelm train", description=__doc__.splitlines()[0])
    add_train_args(p)
    args = p.parse_args(argv)
    try:
        train_from_args(args)
    except CodelmError as exc:
        print(f"codelm: error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # e.g. --print-config | head
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
