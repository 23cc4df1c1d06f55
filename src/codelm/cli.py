"""The `codelm` command: verbs map to pillar entry points, nothing else lives here.

codelm models                       families and their formats
codelm models make-tiny FAMILY DIR  a tiny offline checkpoint
codelm complete|infill|chat ...     generate with the engine
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from codelm import __version__
from codelm.errors import CodelmError


def _model_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument(
        "--model", required=True, help="checkpoint directory, hub id (org/name) or .gguf file (llama.cpp)"
    )
    g.add_argument("--family", help="force the model family instead of detecting it")
    g.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda if present, else cpu)")
    g.add_argument(
        "--dtype",
        help="auto, float32, bfloat16 or float16 (default auto: bf16 on GPU and on CPUs with "
        "native bf16 for models of 64M+ parameters, else fp32)",
    )
    g.add_argument("--threads", type=int, help="CPU threads for torch (or llama.cpp)")
    g.add_argument("--allow-pickle", action="store_true", help="allow pickled .bin weights (can run code)")
    s = p.add_argument_group("sampling (defaults: the family's recommended settings)")
    s.add_argument("--max-new-tokens", type=int)
    s.add_argument("--temperature", type=float, help="0 = greedy")
    s.add_argument("--top-p", type=float)
    s.add_argument("--top-k", type=int)
    s.add_argument("--repetition-penalty", type=float)
    s.add_argument("--n", type=int, help="samples per prompt")
    s.add_argument("--seed", type=int, help="makes sampling reproducible")
    s.add_argument("--stop", action="append", help="stop string (repeatable)")
    s.add_argument(
        "--skip-special-tokens",
        action=argparse.BooleanOptionalAction,
        help="leave special tokens that are not stops out of the text (default: yes, as vLLM)",
    )
    o = p.add_argument_group("output")
    o.add_argument("--stream", action="store_true", help="print text as it is generated (n=1)")
    o.add_argument("--json", action="store_true", help="print results as JSON")


def _sampling(args: argparse.Namespace, engine: Any = None, kind: str = "completion") -> dict[str, Any]:
    """The sampling flags given; with `engine`, n > 1 on a greedy family default samples at
    temperature 1 (OpenAI's default, as the server does), said on stderr."""
    keys = (
        "max_new_tokens",
        "temperature",
        "top_p",
        "top_k",
        "repetition_penalty",
        "n",
        "seed",
        "stop",
        "skip_special_tokens",
        "max_thinking_tokens",
    )
    out = {k: getattr(args, k) for k in keys if getattr(args, k, None) is not None}
    if engine is not None and (args.n or 1) > 1 and args.temperature is None:
        from codelm.engine.rules import sample_temperature

        temperature = sample_temperature(engine.family, kind, args.n, None)
        if temperature is not None:
            out["temperature"] = temperature
            print(
                f"codelm: note: --n {args.n} without --temperature samples at temperature {temperature} "
                f"({engine.family.name}'s default is greedy, which would give {args.n} identical samples; "
                "--temperature 0 asks for that)",
                file=sys.stderr,
            )
    return out


def _engine(args: argparse.Namespace):
    from codelm.engine import Engine

    return Engine.from_pretrained(
        args.model,
        family=args.family,
        device=args.device,
        dtype=args.dtype,
        threads=args.threads,
        allow_pickle=args.allow_pickle,
        chat_format=getattr(args, "chat_format", None) or "chat",
        reasoning=getattr(args, "reasoning", None) is not False,
    )


def _emit(engine, request, args: argparse.Namespace) -> None:
    from codelm.cli_chat import ReasoningEcho

    if args.stream:
        echo = ReasoningEcho(args)
        for chunk in engine.stream(request):
            echo(chunk.reasoning, chunk.text)
            sys.stdout.write(chunk.text)
            sys.stdout.flush()
        echo.close()
        sys.stdout.write("\n")
        return
    result = engine.generate([request])[0]
    if args.json:
        print(
            json.dumps(
                {
                    "prompt_tokens": result.prompt_tokens,
                    "completions": [
                        {
                            "text": c.text,
                            **({"reasoning": c.reasoning} if c.reasoning is not None else {}),
                            "finish_reason": c.finish_reason,
                            "completion_tokens": c.completion_tokens,
                        }
                        for c in result.completions
                    ],
                },
                indent=2,
            )
        )
        return
    for i, c in enumerate(result.completions):
        if len(result.completions) > 1:
            print(f"----- sample {i + 1} ({c.finish_reason}) -----")
        ReasoningEcho(args).whole(c.reasoning)
        print(c.text)


def _read_text(value: str | None, file: str | None, what: str) -> str:
    if file is not None:
        return sys.stdin.read() if file == "-" else _read_file(file)
    if value is None:
        raise CodelmError(f"give --{what} TEXT or --{what}-file FILE ('-' reads stdin)")
    return value


def _read_file(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise CodelmError(f"cannot read {path}: {exc.strerror}") from exc


def cmd_complete(args: argparse.Namespace) -> None:
    engine = _engine(args)
    prompt = _read_text(args.prompt, args.prompt_file, "prompt")
    _emit(engine, engine.completion_request(prompt, **_sampling(args, engine)), args)


def cmd_infill(args: argparse.Namespace) -> None:
    engine = _engine(args)
    prefix = _read_text(args.prefix, args.prefix_file, "prefix")
    suffix = _read_text(args.suffix, args.suffix_file, "suffix") if (args.suffix or args.suffix_file) else ""
    _emit(engine, engine.infill_request(prefix, suffix, **_sampling(args, engine, "infill")), args)


def cmd_chat(args: argparse.Namespace) -> None:
    from codelm.cli_chat import chat_from_file, chat_interactive

    engine = _engine(args)
    if args.messages:
        chat_from_file(engine, args.messages, _sampling(args, engine, "chat"), args)
    else:
        chat_interactive(engine, _sampling(args, engine, "chat"), system=args.system, args=args)


def cmd_models(args: argparse.Namespace) -> None:
    from codelm.cli_models import print_families

    print_families()


def cmd_make_tiny(args: argparse.Namespace) -> None:
    from codelm.models.tiny import make_tiny

    out = make_tiny(args.family, args.out_dir, vocab_size=args.vocab_size, seed=args.seed)
    print(out)


def cmd_export_gguf(args: argparse.Namespace) -> None:
    from codelm.models.gguf_export import export_gguf

    print(export_gguf(args.checkpoint, args.out, args.type, family=args.family))


def cmd_detect(args: argparse.Namespace) -> None:
    from codelm.models.detect import detect_family

    print(detect_family(args.path).name)


def cmd_sizes(args: argparse.Namespace) -> None:
    from codelm.cli_models import print_sizes

    print_sizes()


def cmd_serve(args: argparse.Namespace) -> None:
    from codelm.serve.launch import serve_from_args

    serve_from_args(args)


def cmd_data_curate(args: argparse.Namespace) -> None:
    from codelm.data.curate import curate_from_args

    out = curate_from_args(args)
    if out is not None:
        print(out)


def cmd_data_quality_train(args: argparse.Namespace) -> None:
    from codelm.data.quality.train import quality_train_from_args

    print(quality_train_from_args(args))


def cmd_train(args: argparse.Namespace) -> None:
    from codelm.train.cli import train_from_args

    train_from_args(args)  # prints the output directory itself


def cmd_tokenizer_train(args: argparse.Namespace) -> None:
    from codelm.train.cli import tokenizer_train_from_args

    print(tokenizer_train_from_args(args))


def _train_parsers(sub) -> None:
    from codelm.train.cli import add_tokenizer_train_args, add_train_args

    tr = sub.add_parser(
        "train", help="run one training stage (pretrain/FIM/long-context, SFT, DPO) from YAML"
    )
    add_train_args(tr)
    tr.set_defaults(func=cmd_train)
    tok = sub.add_parser("tokenizer", help="train a byte-level BPE tokenizer in a family's format")
    tsub = tok.add_subparsers(dest="tokenizer_verb", metavar="ACTION", required=True)
    tt = tsub.add_parser("train", help="train on files or directories of code and save an HF tokenizer")
    add_tokenizer_train_args(tt)
    tt.set_defaults(func=cmd_tokenizer_train)


def cmd_data_pack(args: argparse.Namespace) -> None:
    from codelm.data.pack import pack_from_args

    out = pack_from_args(args)
    if out is not None:
        print(out)


def cmd_eval(args: argparse.Namespace) -> None:
    from codelm.eval.cli import eval_from_args

    eval_from_args(args)


def cmd_run(args: argparse.Namespace) -> None:
    from codelm.recipes.cli import run_from_args

    run_from_args(args)


def _data_parsers(sub) -> None:
    from codelm.data.curate import add_curate_args
    from codelm.data.quality.train import add_quality_train_args

    data = sub.add_parser("data", help="curate raw repositories into training data")
    dsub = data.add_subparsers(dest="data_verb", metavar="ACTION", required=True)
    cur = dsub.add_parser("curate", help="run a curation YAML (readers, steps, executor) into OUT")
    add_curate_args(cur)
    cur.set_defaults(func=cmd_data_curate)
    from codelm.data.pack import add_pack_args

    pk = dsub.add_parser("pack", help="tokenize curated documents into training shards (optionally FIM)")
    add_pack_args(pk)
    pk.set_defaults(func=cmd_data_pack)
    qt = dsub.add_parser("quality-train", help="label a sample with an oracle and fit the quality scorer")
    add_quality_train_args(qt)
    qt.set_defaults(func=cmd_data_quality_train)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="codelm", description="Build, evaluate and serve open code LMs.")
    p.add_argument("--version", action="version", version=f"codelm {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = p.add_subparsers(dest="verb", metavar="VERB", required=True)

    m = sub.add_parser("models", help="model families: formats, tiny checkpoints, detection, sizes")
    m.set_defaults(func=cmd_models)
    msub = m.add_subparsers(dest="models_verb", metavar="ACTION")
    t = msub.add_parser("make-tiny", help="write a tiny random-weight checkpoint of FAMILY to OUT_DIR")
    t.add_argument("family")
    t.add_argument("out_dir")
    t.add_argument("--vocab-size", type=int, default=2048)
    t.add_argument("--seed", type=int, default=0)
    t.set_defaults(func=cmd_make_tiny)
    d = msub.add_parser("detect", help="print the family of a checkpoint directory")
    d.add_argument("path")
    d.set_defaults(func=cmd_detect)
    msub.add_parser(
        "sizes", help="parameter counts of the real sizes (built on the meta device)"
    ).set_defaults(func=cmd_sizes)

    ex = sub.add_parser("export", help="convert a checkpoint for other runtimes")
    exsub = ex.add_subparsers(dest="export_verb", metavar="FORMAT", required=True)
    eg = exsub.add_parser("gguf", help="GGUF for llama.cpp (Llama-architecture families: llama, seedcoder)")
    eg.add_argument("checkpoint", help="checkpoint directory")
    eg.add_argument("--out", required=True, help="the .gguf file to write")
    eg.add_argument("--type", choices=["f32", "f16", "q8_0"], default="f16", help="weight type (default f16)")
    eg.add_argument("--family", help="force the model family (default: detected)")
    eg.set_defaults(func=cmd_export_gguf)

    c = sub.add_parser("complete", help="continue a prompt")
    c.add_argument("--prompt")
    c.add_argument("--prompt-file", help="read the prompt from a file ('-' = stdin)")
    _model_args(c)
    c.set_defaults(func=cmd_complete)

    i = sub.add_parser("infill", help="fill in the middle between --prefix and --suffix")
    i.add_argument("--prefix")
    i.add_argument("--suffix")
    i.add_argument("--prefix-file")
    i.add_argument("--suffix-file")
    _model_args(i)
    i.set_defaults(func=cmd_infill)

    ch = sub.add_parser("chat", help="multi-turn chat (interactive, or one reply to --messages FILE)")
    ch.add_argument("--messages", help='JSON file: [{"role": "user", "content": "..."}, ...]')
    ch.add_argument("--system", help="system message for an interactive chat")
    _model_args(ch)
    from codelm.cli_chat import add_reasoning_args

    add_reasoning_args(ch)
    ch.set_defaults(func=cmd_chat)
    _data_parsers(sub)
    _train_parsers(sub)
    from codelm.eval.cli import add_eval_args

    ev = sub.add_parser(
        "eval", help="score a model or samples on HumanEval, MBPP(+), HumanEval-X, infilling, MTPB"
    )
    add_eval_args(ev)
    ev.set_defaults(func=cmd_eval)
    from codelm.recipes.cli import add_run_args

    rn = sub.add_parser("run", help="run a recipe stage by stage (default: the tiny recipe), or --dry-run")
    add_run_args(rn)
    rn.set_defaults(func=cmd_run)

    sv = sub.add_parser("serve", help="OpenAI-compatible server with FIM, chat, streaming and a playground")
    sv.add_argument(
        "--model", help="checkpoint directory, hub id or .gguf file (the family is detected); required"
    )
    sv.add_argument("--family", help="force the model family (required with --upstream if not detectable)")
    sv.add_argument("--host", help="default 127.0.0.1")
    sv.add_argument("--port", type=int, help="default 8000")
    sv.add_argument("--api-key", help="require 'Authorization: Bearer KEY' (default: $CODELM_API_KEY)")
    sv.add_argument("--upstream", help="gateway mode: forward rendered prompts to this OpenAI-compatible URL")
    sv.add_argument(
        "--served-model-name", help="name reported by /v1/models (default: the model path's name)"
    )
    sv.add_argument(
        "--chat-format", choices=["chat", "reasoning"], help="reasoning: the family's reasoning template"
    )
    sv.add_argument(
        "--reasoning",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="separate a reply's thinking into reasoning_content (default: yes)",
    )
    sv.add_argument("--max-batch-size", type=int, help="rows decoded together per step (default 32)")
    sv.add_argument("--max-queue", type=int, help="waiting requests before 503 (default 256)")
    sv.add_argument("--max-body-bytes", type=int, help=f"larger request bodies get 413 (default {4 << 20})")
    sv.add_argument(
        "--client-timeout", type=float, help="seconds to send a request's headers, and its body (default 30)"
    )
    sv.add_argument("--device")
    sv.add_argument("--dtype")
    sv.add_argument("--threads", type=int)
    sv.add_argument("--allow-pickle", action="store_true", default=None)
    from codelm.config import add_config_args

    add_config_args(sv, "server (ServeConfig)")
    sv.set_defaults(func=cmd_serve)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], None] = args.func
    try:
        func(args)
    except CodelmError as exc:
        if args.debug:
            raise
        print(f"codelm: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("codelm: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
