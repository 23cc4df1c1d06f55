"""Argument wiring for ``codelm eval``; light to import (no torch until a model is loaded).

    codelm eval --model CKPT --tasks humaneval,mbpp -n 10 --temperature 0.2 \\
                --allow-code-execution --output runs/eval/ckpt
    codelm eval --endpoint http://127.0.0.1:8000 [--model NAME] [--chat] --tasks mbpp-plus ...
    codelm eval --samples samples.jsonl --tasks humaneval --allow-code-execution --output DIR
    codelm eval --list-tasks

cli.py calls ``add_eval_args(parser)`` to declare the flags and ``eval_from_args(args)`` to run
(``codelm.eval.runner``); ``python -m codelm.eval.cli ...`` works before it is wired. Every flag
is documented in docs/eval.md.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any

from codelm.errors import CodelmError


def add_eval_args(p: argparse.ArgumentParser) -> None:
    """The flags of ``codelm eval``."""
    src = p.add_argument_group("what to evaluate (one of --model, --endpoint, --samples)")
    src.add_argument(
        "--model",
        help="checkpoint directory, hub id or .gguf file (llama.cpp); with --endpoint, the served model name",
    )
    src.add_argument("--endpoint", metavar="URL", help="an OpenAI-compatible server (http://host:port[/v1])")
    src.add_argument(
        "--samples",
        metavar="FILE",
        help='score a JSONL of {"task_id", "completion"} records (the problems it covers; see --require-all)',
    )
    src.add_argument(
        "--require-all",
        action="store_true",
        help="--samples: every selected problem needs samples and every sample a selected task",
    )
    src.add_argument(
        "--chat", action="store_true", help="instruct model: chat prompts, code from the reply's fence"
    )
    src.add_argument("--api-key", help="for --endpoint (default: $CODELM_API_KEY or $OPENAI_API_KEY)")
    src.add_argument(
        "--concurrency", type=int, default=8, help="requests in flight to --endpoint (default 8)"
    )
    src.add_argument("--family", help="force the model family instead of detecting it")
    src.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda if present, else cpu)")
    src.add_argument("--dtype", help="float32, bfloat16 or float16")
    src.add_argument("--threads", type=int, help="CPU threads for torch")
    src.add_argument("--allow-pickle", action="store_true", help="allow pickled .bin weights (can run code)")
    t = p.add_argument_group("tasks")
    t.add_argument("--tasks", help="comma-separated task names or groups (see --list-tasks)")
    t.add_argument("--list-tasks", action="store_true", help="print the task registry and exit")
    t.add_argument("--verbose", action="store_true", help="log details (e.g. a missing toolchain's output)")
    t.add_argument("--data-dir", help="directory holding the benchmark files (default: bundled or hub)")
    t.add_argument(
        "--data", action="append", default=[], metavar="TASK=SOURCE", help="a file or hub id for one task"
    )
    t.add_argument("--limit", type=int, help="evaluate only the first N problems of each task")
    t.add_argument(
        "--release-window",
        metavar="START:END",
        help="only problems released in these days (YYYY-MM-DD, inclusive, either open; livecodebench)",
    )
    t.add_argument(
        "--limit-spread", action="store_true", help="--limit picks N problems spread evenly over the file"
    )
    t.add_argument(
        "--unigram-corpus",
        metavar="PATH",
        help="perplexity's unigram baseline: packed shard dir or JSONL of texts (default: the documents)",
    )
    t.add_argument(
        "--reference-model",
        metavar="CKPT",
        help="preference: DPO's reference checkpoint, for the implicit reward margin",
    )
    t.add_argument("--dpo-beta", type=float, help="preference: beta of the implicit reward (default 0.1)")
    s = p.add_argument_group("sampling (exactly these values; family recommendations are not applied)")
    s.add_argument("-n", "--n", type=int, help="samples per problem (default 1)")
    s.add_argument("--temperature", type=float, help="default: 0 (greedy) when n is 1, else 0.2")
    s.add_argument("--top-p", type=float, help="default 0.95")
    s.add_argument("--top-k", type=int, help="default: off")
    s.add_argument("--repetition-penalty", type=float, help="default: off")
    s.add_argument("--max-new-tokens", type=int, help="default: per task (512; chat 1024; MTPB per turn)")
    s.add_argument("--seed", type=int, help="makes sampling reproducible")
    s.add_argument("--k", help="pass@k values, comma-separated (those <= n are reported; default 1,10,100)")
    s.add_argument("--batch-size", type=int, help="prompts per backend call (default 64)")
    x = p.add_argument_group("execution")
    x.add_argument("--allow-code-execution", action="store_true", help="run model code in the sandbox")
    x.add_argument("--generate-only", action="store_true", help="write samples without executing them")
    x.add_argument("--workers", type=int, help="sandbox workers (default 2)")
    x.add_argument(
        "--timeout-factor", type=float, help="timeout = max(floor, factor x canonical) (default 10)"
    )
    x.add_argument("--timeout-floor", type=float, help="seconds (default: per task, 3; MTPB/HumanEval-X 10)")
    o = p.add_argument_group("output")
    o.add_argument("--output", help="run directory: summary.json, samples.jsonl, report.md")
    o.add_argument("--resume", action="store_true", help="continue the run in --output, redoing nothing")
    o.add_argument("--no-progress", action="store_true", help="no progress bars")
    from codelm.config import add_config_args

    add_config_args(o, "evaluation (EvalConfig: tasks, sampling, limits, data, execution)")


def eval_from_args(args: argparse.Namespace) -> dict[str, Any] | None:
    """Run ``codelm eval`` from parsed arguments; returns the summary (None for --list-tasks)."""
    if getattr(args, "verbose", False):
        verbose_logging()
    if args.list_tasks:
        print_tasks()
        return None
    config = config_from_args(args)
    if args.print_config:
        from codelm.config import dump

        print(dump(config), end="")
        return None
    options = options_from_args(args, config)
    backend = backend_from_args(args)
    try:
        from .runner import run_eval

        return run_eval(options, backend)
    finally:
        backend.close()


def config_from_args(args: argparse.Namespace):
    """The `EvalConfig` of this command: `--config FILE`, then the flags given, then `--set`."""
    from codelm.config import config_from_args as build

    from .config import EvalConfig

    data = {}
    for item in args.data:
        name, sep, source = item.partition("=")
        if not sep or not name or not source:
            raise CodelmError(f"--data wants TASK=PATH_OR_HUB_ID, got {item!r}")
        data[name.strip()] = source.strip()
    try:
        ks = [int(k) for k in args.k.split(",") if k.strip()] if args.k else None
    except ValueError:
        raise CodelmError(f"--k wants comma-separated whole numbers, got {args.k!r}") from None
    flags = {
        "tasks": [t for t in args.tasks.split(",") if t.strip()] if args.tasks else None,
        "mode": "chat" if args.chat else None,
        "n": args.n,
        "temperature": args.temperature,
        "top_p": args.top_p,
        "top_k": args.top_k,
        "repetition_penalty": args.repetition_penalty,
        "max_new_tokens": args.max_new_tokens,
        "seed": args.seed,
        "k": ks,
        "batch_size": args.batch_size,
        "limit": args.limit,
        "limit_spread": True if args.limit_spread else None,
        "data_dir": args.data_dir,
        "release_window": args.release_window,
        "unigram_corpus": args.unigram_corpus,
        "reference_model": args.reference_model,
        "dpo_beta": args.dpo_beta,
        "workers": args.workers,
        "generate_only": True if args.generate_only else None,
        "timeout_factor": args.timeout_factor,
        "timeout_floor": args.timeout_floor,
        "require_all": True if args.require_all else None,
    }
    flags |= {f"data.{name}": source for name, source in data.items()}
    return build(EvalConfig, args, flags, "eval config")


def options_from_args(args: argparse.Namespace, config=None):
    """The runner's options: the config plus what only the command line says (output, resume)."""
    config = config if config is not None else config_from_args(args)
    if not config.tasks:
        raise CodelmError("give --tasks (e.g. --tasks humaneval,mbpp; --list-tasks shows them)")
    if not args.output:
        raise CodelmError("give --output DIR for summary.json, samples.jsonl and report.md")
    if config.generate_only and args.samples:
        raise CodelmError("--generate-only with --samples has nothing to do")
    from .tasks import executes_code

    if not config.generate_only and not args.allow_code_execution and executes_code(config.tasks):
        from .worker import CodeExecutionNotAllowed, require_opt_in

        try:
            require_opt_in(False)
        except CodeExecutionNotAllowed as exc:  # the same words, as a one-line CLI error
            raise CodelmError(f"{exc} (or --generate-only to only write samples)") from exc
    return config.options(
        args.output,
        allow_code_execution=args.allow_code_execution,
        resume=args.resume,
        progress=not args.no_progress,
    )


def backend_from_args(args: argparse.Namespace):
    """The backend the flags name: exactly one of --model, --endpoint, --samples."""
    if args.samples:
        if args.model or args.endpoint:
            raise CodelmError("--samples scores a file: drop --model and --endpoint")
        from .backends.samples import SamplesBackend

        return SamplesBackend(args.samples)
    if args.endpoint:
        from .backends.openai import OpenAIBackend

        key = args.api_key or os.environ.get("CODELM_API_KEY") or os.environ.get("OPENAI_API_KEY")
        return OpenAIBackend(args.endpoint, args.model, api_key=key, concurrency=args.concurrency)
    if not args.model:
        raise CodelmError("give --model CHECKPOINT, --endpoint URL or --samples FILE")
    from .backends.engine import EngineBackend

    return EngineBackend.from_pretrained(
        args.model,
        family=args.family,
        device=args.device,
        dtype=args.dtype,
        threads=args.threads,
        allow_pickle=args.allow_pickle,
    )


def verbose_logging() -> None:
    """--verbose: codelm's INFO records on stderr (nothing else's: libraries stay quiet)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    logger = logging.getLogger("codelm")
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)


def print_tasks() -> None:
    """One line per task (a reason it cannot run is one line too; --verbose logs the details)."""
    from .tasks import GROUPS, TASKS, get_task

    for name in TASKS:
        task = get_task(name)
        why = " ".join((task.unavailable() or "").split())
        print(f"{name:40s} {task.title}" + (f"  [unavailable: {why}]" if why else ""))
    for name, members in GROUPS.items():
        print(f"{name:40s} = {', '.join(members)}")


def main(argv: list[str] | None = None) -> int:
    """``python -m codelm.eval.cli ...`` (the same flags as ``codelm eval``)."""
    p = argparse.ArgumentParser(prog="codelm eval", description=__doc__.splitlines()[0])
    add_eval_args(p)
    args = p.parse_args(argv)
    try:
        eval_from_args(args)
    except CodelmError as exc:
        print(f"codelm: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
