"""Training throughput: codelm's loop against a plain HF Trainer, same model, data, batch, precision.

Both train the same freshly initialised model on the same rows, packed on the fly by the same source
(stdlib sources, FIM at 0.5 except for CodeGen1, documents kept apart by restarting position ids in
both), with the same optimizer (fused AdamW), schedule, clipping and batch. Tokens/s is taken at the
median step time after a warm-up, in runs interleaved so machine load hits both alike. Target:
codelm >= 1.0x the Trainer. The codelm run also reports MFU (metrics.py).

    python bench/train.py                                  # tiny Llama on CPU (what RESULTS.md holds)
    python bench/train.py --family codegen1 --size 350M --vocab-size 51200 --device cuda \\
        --precision bf16 --seq-len 2048 --batch 8 --steps 30   # the ~350M MFU measurement on one GPU
    python bench/train.py --family llama --device cuda --precision bf16 --seq-len 2048 --vocab-size 51200 \\
        --override hidden_size=1024 --override num_hidden_layers=24 --override num_attention_heads=16 \\
        --override num_key_value_heads=16 --override intermediate_size=2816 \\
        --override max_position_embeddings=2048            # a ~350M Llama (SDPA attention) instead
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from datetime import date
from pathlib import Path

import torch
import yaml

from codelm.models.tiny import make_tiny, stdlib_sources
from codelm.train.config import load_config
from codelm.train.metrics import read_metrics


def build_data(tmp: Path, family: str, corpus_bytes: int) -> tuple[Path, Path]:
    from transformers import AutoTokenizer

    from codelm.train.shards import pack_texts

    ckpt = make_tiny(family, tmp / "tiny", corpus_bytes=1_000_000)
    tok = AutoTokenizer.from_pretrained(ckpt)
    shards = pack_texts(stdlib_sources(corpus_bytes), tok, tmp / "shards", family=family)
    return ckpt, shards


def make_cfg(args: argparse.Namespace, ckpt: Path, shards: Path, out: Path):
    sets = [
        "stage=pretrain",
        f"model.family={args.family}",
        f"model.size={args.size}",
        f"model.tokenizer={ckpt}",
        f"pretrain.shards=[{shards}]",
        f"pretrain.fim_rate={0.0 if args.family == 'codegen1' else 0.5}",  # CodeGen1 has no FIM tokens
        f"batch.seq_len={args.seq_len}",
        f"batch.micro_batch_size={args.batch}",
        f"batch.global_batch_size={args.batch}",
        "optim.lr=1.0e-3",
        "optim.warmup_steps=2",
        f"run.max_steps={args.steps}",
        f"run.log_every={args.steps}",
        f"run.out_dir={out}",
        f"run.precision={args.precision}",
        "run.deterministic=false",
        "run.plot=false",
        "run.tensorboard=false",
    ]
    if args.device == "cpu":
        sets += ["run.device=cpu", f"run.threads={args.threads}"]
    overrides = {"vocab_size": args.vocab_size} if args.vocab_size else {}  # e.g. the real 51200 rows
    for kv in args.override:
        overrides.update(yaml.safe_load(kv.replace("=", ": ", 1)))
    if overrides:
        sets.append(f"model.overrides={json.dumps(overrides)}")
    return load_config(None, sets)


def steady_tokens_per_s(cfg, stamps: list[float]) -> float:
    """Tokens per second at the median step time, after the warm-up and before the last step.

    The median, not the mean, because the bench machine is shared: a burst of load from elsewhere
    lengthens a few steps of one run and says nothing about either loop.
    """
    steps = [b - a for a, b in zip(stamps[WARMUP - 1 : -2], stamps[WARMUP:-1], strict=True)]
    return cfg.batch.global_sequences * cfg.batch.seq_len / statistics.median(steps)


def run_codelm(cfg) -> tuple[float, float, int]:
    """(tokens/s, MFU) over the steps after warm-up, and the model's parameter count.

    Timed like the Trainer: a timestamp at the end of every step, logging only at the last step
    (the Trainer here logs nothing), the last step left out (it writes the final checkpoint).
    """
    from codelm.train.loop import train

    stamps: list[float] = []
    final = train(cfg, on_step=lambda step, record: stamps.append(time.perf_counter()))
    tps = steady_tokens_per_s(cfg, stamps)
    last = read_metrics(Path(cfg.run.out_dir) / "metrics.jsonl")[-1]
    mfu = last["mfu"] * tps / last["tokens_per_s"]  # MFU scales with throughput
    params = json.loads((final / "meta.json").read_text())["model"]["parameters"]
    return tps, mfu, params


def run_trainer(cfg, out: Path) -> float:
    """The same model, rows, optimizer and schedule through transformers.Trainer; tokens/s."""
    from transformers import Trainer, TrainerCallback, TrainingArguments

    from codelm.train.init import build_model, load_tokenizer, resolve_family
    from codelm.train.packing import collate
    from codelm.train.stages import build_stage

    torch.manual_seed(cfg.run.seed)
    family, tok = resolve_family(cfg.model), load_tokenizer(cfg.model)
    model = build_model(cfg.model, tok, family, cfg.batch.seq_len)
    model.config.use_cache = False  # as codelm passes use_cache=False: packed documents stay apart
    stage = build_stage(cfg, tok, family, model, torch.device("cpu"))

    class Rows(torch.utils.data.IterableDataset):
        """The same rows codelm trains on, packed on the fly by the same source, as codelm does."""

        def __iter__(self):
            while True:
                b = collate(stage.source.next_units(1), 0)
                yield {"input_ids": b.input_ids[0], "labels": b.labels[0], "position_ids": b.position_ids[0]}

    def stack(features):
        return {k: torch.stack([f[k] for f in features]) for k in features[0]}

    stamps: list[float] = []

    class Clock(TrainerCallback):
        def on_step_end(self, *a, **k):
            stamps.append(time.perf_counter())

    o = cfg.optim
    targs = TrainingArguments(
        output_dir=str(out),
        per_device_train_batch_size=cfg.batch.micro_batch_size,
        max_steps=cfg.run.max_steps,
        learning_rate=o.lr,
        warmup_steps=o.warmup_steps,
        lr_scheduler_type="cosine",
        weight_decay=o.weight_decay,
        adam_beta1=o.betas[0],
        adam_beta2=o.betas[1],
        max_grad_norm=o.grad_clip,
        bf16=cfg.run.precision == "bf16",
        use_cpu=cfg.run.device == "cpu",
        save_strategy="no",
        report_to="none",
        logging_steps=10**9,
        disable_tqdm=True,
        dataloader_num_workers=0,
        seed=cfg.run.seed,
    )
    trainer = Trainer(model=model, args=targs, train_dataset=Rows(), data_collator=stack, callbacks=[Clock()])
    trainer.train()
    return steady_tokens_per_s(cfg, stamps)


WARMUP = 3  # steps left out of the timing (allocator, autotuning, first-touch)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--family", default="llama")
    ap.add_argument("--size", "--model-size", dest="size", default="tiny", help="tiny or a real size (350M)")
    ap.add_argument("--device", default="cpu", help="cpu, or cuda (accelerate picks the GPU)")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--vocab-size", type=int, help="embedding rows (default: the tokenizer's, padded)")
    ap.add_argument(
        "--override",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="model config field, e.g. --override num_hidden_layers=24 (repeatable)",
    )
    ap.add_argument("--corpus-bytes", type=int, default=3_000_000)
    ap.add_argument("--results", default=str(Path(__file__).with_name("RESULTS.md")))
    ap.add_argument("--no-results", action="store_true", help="do not append to RESULTS.md")
    args = ap.parse_args()
    if args.device == "cpu":
        torch.set_num_threads(args.threads)
    ours, theirs, mfus = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        ckpt, shards = build_data(Path(tmp), args.family, args.corpus_bytes)
        for i in range(args.repeats):  # interleaved, so machine load hits both alike
            tps, mfu, params = run_codelm(make_cfg(args, ckpt, shards, Path(tmp) / f"codelm{i}"))
            ours.append(tps)
            mfus.append(mfu)
            theirs.append(
                run_trainer(make_cfg(args, ckpt, shards, Path(tmp) / f"hf{i}"), Path(tmp) / f"hf{i}")
            )
    o, h = max(ours), max(theirs)  # best of the repeats: the least disturbed run of each
    ratio = o / h
    device = torch.cuda.get_device_name() if args.device == "cuda" else f"{os.cpu_count()} cores"
    machine = f"{platform.machine()}, {device}, torch {torch.__version__}"
    print(
        "runs (tok/s): Trainer "
        + " ".join(f"{x:.0f}" for x in theirs)
        + "; codelm "
        + " ".join(f"{x:.0f}" for x in ours)
    )
    print(f"HF Trainer:  {h:10.1f} tok/s (best of {args.repeats})")
    print(f"codelm loop: {o:10.1f} tok/s, MFU {statistics.median(mfus) * 100:.2f}%")
    if not args.no_results:
        threads = f"; {args.threads} torch thread(s)" if args.device == "cpu" else ""
        section = (
            f"\n## train, {date.today()}\n\n"
            f"Machine: {machine}{threads}. {args.family} {args.size} ({params:,} params), "
            f"seq_len {args.seq_len}, batch {args.batch} sequences, {args.precision}, stdlib rows packed "
            f"on the fly (FIM 0.5 unless CodeGen1), {args.steps} steps per run, tokens/s at the median step "
            f"time (without the first {WARMUP} and the last), best of {args.repeats} interleaved runs "
            f"(Trainer {', '.join(f'{x:.0f}' for x in theirs)}; codelm {', '.join(f'{x:.0f}' for x in ours)} "
            "tok/s; the machine is shared, so runs vary). "
            f"codelm MFU {statistics.median(mfus) * 100:.2f}% (against metrics.PEAK_TFLOPS).\n\n"
            "| anchor: HF Trainer | codelm loop | ratio | target |\n|---|---|---|---|\n"
            f"| {h:.1f} tok/s | {o:.1f} tok/s | {ratio:.3f} | >= 1.0 |\n"
        )
        with open(args.results, "a") as f:
            f.write(section)
    print(f"RESULT name=train ratio={ratio:.3f} target=1.0")


if __name__ == "__main__":
    main()
