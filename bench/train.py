"""Training throughput: codelm's loop against three anchors, same model, data, batch, optimizer, precision.

Contenders (`--contenders`, interleaved run by run so machine load hits all alike):

- trainer: a plain HF `Trainer`;
- minimal: a minimal PyTorch loop -- forward, loss, backward, clipping, fused AdamW, the schedule,
  `zero_grad(set_to_none)`, nothing else -- whose batches are all made before its clock starts;
- minimal-compiled: the same with forward + loss under `torch.compile` (inductor, default mode);
- codelm: codelm's loop as it runs by default (prefetch thread, logging every step);
- codelm-compiled: the same with `run.compile: true`.

All train the same freshly initialised model (same seed) on the same rows, packed on the fly by the
same source (stdlib sources, FIM at 0.5 except for CodeGen1, documents kept apart by restarting
position ids in every contender), with the same AdamW (decay on matrices only, fused), warmup + cosine
schedule, clipping at 1.0 and batch. Tokens/s is taken at the median step time after a warm-up (which
also leaves compilation out; its cost is reported apart as the first step's time), and the figure of
a contender is the median over its runs.

FLOP/s = `metrics.flops_per_token` (6N + attention, what the training logs use) x tokens/s. MFU is
against the peak measured in this run with the training logs' own `metrics.measure_matmul_tflops` on
the same threads (fp32, and bf16 when a contender runs it), before every round and at the end; the
best measurement is the peak (a busy moment lowers it). The bench also checks that codelm's logged MFU
implies the same FLOPs per token as the bench computes.

`--precision both` runs fp32 and, where `run.precision: auto` picks bf16 (an AVX512-BF16/AMX CPU, a
bf16 GPU), bf16 too. RESULT ratio = codelm's best config / the compiled minimal loop's best (or, when
that is not run, / the Trainer); target 1.0.

    python bench/train.py --size 30M --threads 2 --batch 4 --steps 12   # issue 17 (RESULTS.md)
    python bench/train.py --contenders trainer,codelm --precision fp32  # the tiny Llama vs HF Trainer
    python bench/train.py --family codegen1 --size 350M --vocab-size 51200 --device cuda \\
        --precision bf16 --seq-len 2048 --batch 8 --steps 30   # the ~350M MFU measurement on one GPU
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
from codelm.train.metrics import flops_per_token, measure_matmul_tflops, read_metrics

WARMUP = 3  # steps left out of the timing (compilation, allocator, autotuning, first-touch)
CONTENDERS = (
    "trainer",
    "minimal",
    "minimal-compiled",
    "codelm",
    "codelm-compiled",
    "codelm-compiled-wrappers",
)
# codelm-compiled-wrappers: codelm compiled with FIM re-tokenized through the transformers calls, the
# path before train/fim.py's FastCodec, for an A/B of that change; never counted as codelm's best
# bench-only model shapes on the family's tiny config (model.overrides): ~30M parameters with the
# tiny 2,048-row vocabulary, a small-GPT-2-like shape (head_dim 64, MLP 3x hidden, full-width KV)
SIZES = {
    "30M": {
        "hidden_size": 512,
        "num_hidden_layers": 8,
        "num_attention_heads": 8,
        "num_key_value_heads": 8,
        "intermediate_size": 1536,
        "max_position_embeddings": 1024,
    }
}


def build_data(tmp: Path, family: str, corpus_bytes: int) -> tuple[Path, Path]:
    from transformers import AutoTokenizer

    from codelm.train.shards import pack_texts

    ckpt = make_tiny(family, tmp / "tiny", corpus_bytes=1_000_000)
    tok = AutoTokenizer.from_pretrained(ckpt)
    shards = pack_texts(stdlib_sources(corpus_bytes), tok, tmp / "shards", family=family)
    return ckpt, shards


def make_cfg(args: argparse.Namespace, ckpt: Path, shards: Path, out: Path, precision: str, compile_: bool):
    size = "tiny" if args.size in SIZES else args.size
    sets = [
        "stage=pretrain",
        f"model.family={args.family}",
        f"model.size={size}",
        f"model.tokenizer={ckpt}",
        f"pretrain.shards=[{shards}]",
        f"pretrain.fim_rate={0.0 if args.family == 'codegen1' else 0.5}",  # CodeGen1 has no FIM tokens
        f"batch.seq_len={args.seq_len}",
        f"batch.micro_batch_size={args.batch}",
        f"batch.global_batch_size={args.batch}",
        "optim.lr=1.0e-3",
        "optim.warmup_steps=2",
        f"run.max_steps={args.steps}",
        f"run.out_dir={out}",
        f"run.precision={precision}",
        f"run.compile={str(compile_).lower()}",
        "run.deterministic=false",
        "run.plot=false",
        "run.tensorboard=false",
    ]
    if args.device == "cpu":
        sets += ["run.device=cpu", f"run.threads={args.threads}"]
    overrides = dict(SIZES.get(args.size, {}))
    if args.vocab_size:
        overrides["vocab_size"] = args.vocab_size  # e.g. the real 51200 rows
    for kv in args.override:
        overrides.update(yaml.safe_load(kv.replace("=", ": ", 1)))
    if overrides:
        sets.append(f"model.overrides={json.dumps(overrides)}")
    return load_config(None, sets)


def steady_tokens_per_s(cfg, stamps: list[float]) -> float:
    """Tokens per second at the median step time, after the warm-up and before the last step.

    `stamps` are the step-end times. The median, not the mean, because the bench machine is shared:
    a burst of load from elsewhere lengthens a few steps of one run and says nothing about the loop.
    """
    steps = [b - a for a, b in zip(stamps[WARMUP - 1 : -2], stamps[WARMUP:-1], strict=True)]
    return cfg.batch.global_sequences * cfg.batch.seq_len / statistics.median(steps)


def _sync(cfg) -> None:
    if cfg.run.device != "cpu" and torch.cuda.is_available():
        torch.cuda.synchronize()


def run_codelm(cfg) -> dict:
    """codelm's loop, logging every step as it does by default; the run's figures."""
    from codelm.train.loop import train

    stamps: list[float] = []
    train(cfg, on_step=lambda step, record: stamps.append(time.perf_counter()))
    records = [r for r in read_metrics(Path(cfg.run.out_dir) / "metrics.jsonl") if "mfu" in r]
    last = records[-1]
    return {
        "tps": steady_tokens_per_s(cfg, stamps),
        "first_step_s": records[0]["step_time_s"],
        # what the log says, to check it against the bench's own computation
        "log_flops_per_token": last["mfu"] * last["peak_tflops"] * 1e12 / last["tokens_per_s"],
        "log_peak_tflops": last["peak_tflops"],
    }


def _model_and_stage(cfg):
    from codelm.train.init import build_model, load_tokenizer, resolve_family
    from codelm.train.stages import build_stage

    torch.manual_seed(cfg.run.seed)
    family, tok = resolve_family(cfg.model), load_tokenizer(cfg.model)
    model = build_model(cfg.model, tok, family, cfg.batch.seq_len)
    model.config.use_cache = False  # as codelm passes use_cache=False: packed documents stay apart
    stage = build_stage(cfg, tok, family, model, torch.device("cpu"))
    return model, stage, tok.convert_tokens_to_ids(family.tokenizer.pad)


def run_minimal(cfg, compiled: bool) -> dict:
    """Forward, loss, backward, clip, fused AdamW, schedule: the least a training step does."""
    import torch.nn.functional as F

    from codelm.train.packing import IGNORE, collate
    from codelm.train.schedule import make_scheduler

    model, stage, pad = _model_and_stage(cfg)
    device = torch.device("cpu" if cfg.run.device == "cpu" else "cuda")
    model.to(device)
    n = cfg.batch.global_sequences
    batches = [collate(stage.source.next_units(n), pad).to(device) for _ in range(cfg.run.max_steps)]
    o = cfg.optim
    groups = [
        {"params": [p for p in model.parameters() if p.ndim >= 2], "weight_decay": o.weight_decay},
        {"params": [p for p in model.parameters() if p.ndim < 2], "weight_decay": 0.0},
    ]
    opt = torch.optim.AdamW(groups, lr=o.lr, betas=tuple(o.betas), eps=o.eps, fused=True)
    sched = make_scheduler(
        opt,
        warmup_steps=o.warmup_steps,
        max_steps=cfg.run.max_steps,
        decay=o.decay,
        min_lr_ratio=o.min_lr_ratio,
    )

    def forward_loss(
        input_ids: torch.Tensor, position_ids: torch.Tensor, labels: torch.Tensor
    ) -> torch.Tensor:
        logits = model(input_ids=input_ids, position_ids=position_ids, use_cache=False).logits
        targets = F.pad(labels[:, 1:], (0, 1), value=IGNORE)
        return F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=IGNORE)

    step_fn = torch.compile(forward_loss) if compiled else forward_loss
    bf16 = cfg.run.precision == "bf16"
    model.train()
    stamps: list[float] = []
    t0 = time.perf_counter()
    for b in batches:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = step_fn(b.input_ids, b.position_ids, b.labels)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), o.grad_clip)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        _sync(cfg)
        stamps.append(time.perf_counter())
    if compiled:
        torch._dynamo.reset()  # the next run's model is another module
    return {"tps": steady_tokens_per_s(cfg, stamps), "first_step_s": stamps[0] - t0}


def run_trainer(cfg) -> dict:
    """The same model, rows, optimizer and schedule through transformers.Trainer."""
    from transformers import Trainer, TrainerCallback, TrainingArguments

    from codelm.train.packing import collate

    model, stage, _ = _model_and_stage(cfg)

    class Rows(torch.utils.data.IterableDataset):
        """The same rows codelm trains on, packed on the fly by the same source, as codelm does."""

        def __iter__(self):
            while True:
                b = collate(stage.source.next_units(1), 0)
                yield {"input_ids": b.input_ids[0], "labels": b.labels[0], "position_ids": b.position_ids[0]}

    def stack(features):
        return {k: torch.stack([f[k] for f in features]) for k in features[0]}

    stamps: list[float] = []
    start: list[float] = []

    class Clock(TrainerCallback):
        def on_step_begin(self, *a, **k):
            if not start:
                start.append(time.perf_counter())

        def on_step_end(self, *a, **k):
            stamps.append(time.perf_counter())

    o = cfg.optim
    targs = TrainingArguments(
        output_dir=cfg.run.out_dir,
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
    return {"tps": steady_tokens_per_s(cfg, stamps), "first_step_s": stamps[0] - start[0]}


def run_contender(name: str, cfg) -> dict:
    if name == "trainer":
        return run_trainer(cfg)
    if name.startswith("minimal"):
        return run_minimal(cfg, compiled=name.endswith("-compiled"))
    if name == "codelm-compiled-wrappers":
        from codelm.train import fim

        saved = fim.FastCodec.__dict__["of"]
        fim.FastCodec.of = staticmethod(lambda tokenizer: None)  # same ids, through the wrappers
        try:
            return run_codelm(cfg)
        finally:
            fim.FastCodec.of = saved
    return run_codelm(cfg)


def measure_peaks(device: torch.device, precisions: list[str], into: dict[str, list[float]]) -> None:
    """The matmul peak of each precision now, by the function the training logs use (metrics.py)."""
    for p in dict.fromkeys(["fp32", *precisions]):
        into.setdefault(p, []).append(measure_matmul_tflops(device, p))
        print(f"matmul peak {p}: {into[p][-1]:.3f} TFLOP/s (load average {load_average()})", flush=True)


def load_average() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def report(args, results: dict, peaks: dict, fpt: float, params: int, loads: tuple[str, str]) -> float:
    """Print the table, append it to RESULTS.md, and return the RESULT ratio."""
    rows, best = [], {}
    for (precision, name), runs in results.items():
        tps = statistics.median(r["tps"] for r in runs)
        tflops = tps * fpt / 1e12
        peak = max(peaks[precision])
        first = ", ".join(f"{r['first_step_s']:.1f}" for r in runs)
        spread = ", ".join(f"{r['tps']:.0f}" for r in runs)
        rows.append(
            f"| {name} | {precision} | {tps:.1f} ({spread}) | {tflops:.4f} | {tflops / peak:.1%} | {first} |"
        )
        family = (
            "codelm-wrappers"  # an A/B of the data path, not a configuration codelm runs
            if name.endswith("-wrappers")
            else "codelm"
            if name.startswith("codelm")
            else name.replace("-compiled", "") + "-compiled" * ("compiled" in name)
        )
        if tps > best.get(family, (0.0, ""))[0]:
            best[family] = (tps, f"{name} {precision}")
    anchor = "minimal-compiled" if "minimal-compiled" in best else "trainer"
    ratio = best["codelm"][0] / best[anchor][0]
    peak_text = "; ".join(
        f"{p} {min(v):.3f}-{max(v):.3f} TFLOP/s (peak {max(v):.3f})" for p, v in peaks.items()
    )
    logged = sorted(
        r["log_peak_tflops"] for (_, n), runs in results.items() if n.startswith("codelm") for r in runs
    )
    checks = [
        abs(r["log_flops_per_token"] / fpt - 1)
        for (_, n), runs in results.items()
        if n.startswith("codelm")
        for r in runs
    ]
    agree = f"largest relative difference {max(checks):.1e}" if checks else "no codelm run"
    table = (
        "| contender | precision | tok/s: median (runs) | achieved TFLOP/s | MFU vs measured peak "
        "| first step s |\n"
        "|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n"
    )
    device = torch.cuda.get_device_name() if args.device == "cuda" else f"{os.cpu_count()} cores"
    machine = f"{platform.machine()}, {device}, torch {torch.__version__}"
    text = (
        f"Machine: {machine}; {args.threads} torch thread(s); load average (1, 5, 15 min) {loads[0]} before, "
        f"{loads[1]} after. {args.family} {args.size} ({params:,} params, {fpt / 1e6:.1f} MFLOP per token "
        f"trained), seq_len {args.seq_len}, batch {args.batch} sequences, stdlib rows packed on the fly (FIM "
        f"0.5 unless CodeGen1), {args.steps} steps per run, tokens/s at the median step time (without the "
        f"first {WARMUP} and the last), median of {args.repeats} interleaved runs. Matmul peak measured in "
        f"this run (metrics.measure_matmul_tflops, {args.repeats + 1} times): {peak_text}; codelm's logs "
        f"measured {', '.join(f'{x:.3f}' for x in logged)} at their starts. Logged MFU vs the bench's "
        f"FLOPs per token: {agree}. Best: codelm {best['codelm'][1]} {best['codelm'][0]:.1f} tok/s, "
        f"{anchor} {best[anchor][1]} {best[anchor][0]:.1f} tok/s.\n\n"
    )
    print(table + "\n" + text)
    if not args.no_results:
        command = "python bench/train.py " + " ".join(args.argv)
        with open(args.results, "a") as f:
            f.write(f"\n## train, {date.today()}\n\n`{command}`\n\n{text}{table}")
    return ratio


def main() -> None:
    import sys

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--family", default="llama")
    ap.add_argument(
        "--size",
        "--model-size",
        dest="size",
        default="tiny",
        help=f"tiny, {', '.join(SIZES)}, or a real size",
    )
    ap.add_argument("--device", default="cpu", help="cpu, or cuda (accelerate picks the GPU)")
    ap.add_argument("--precision", default="both", choices=["fp32", "bf16", "both"])
    ap.add_argument(
        "--contenders", default=",".join(CONTENDERS[:5]), help=f"comma-separated, of {CONTENDERS}"
    )
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
    args.argv = sys.argv[1:]
    contenders = [c for c in args.contenders.split(",") if c]
    unknown = sorted(set(contenders) - set(CONTENDERS))
    if unknown or not {"codelm", "codelm-compiled"} & set(contenders):
        ap.error(f"--contenders: at least one codelm contender, from {CONTENDERS} (unknown: {unknown})")
    if args.device == "cpu":
        torch.set_num_threads(args.threads)
    if args.precision == "both":
        from codelm.train.loop import resolve_precision

        precisions = list(dict.fromkeys(["fp32", resolve_precision("auto", args.device == "cpu")]))
    else:
        precisions = [args.precision]
    device = torch.device("cpu" if args.device == "cpu" else "cuda")
    loads = [load_average()]
    results: dict[tuple[str, str], list[dict]] = {}
    peaks: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        ckpt, shards = build_data(Path(tmp), args.family, args.corpus_bytes)
        probe = make_cfg(args, ckpt, shards, Path(tmp) / "probe", "fp32", False)
        model, _, _ = _model_and_stage(probe)
        fpt, params = flops_per_token(model, args.seq_len), sum(p.numel() for p in model.parameters())
        del model
        for i in range(args.repeats):  # interleaved, so machine load hits every contender alike
            measure_peaks(device, precisions, peaks)
            for precision in precisions:
                for name in contenders:
                    out = Path(tmp) / f"{name}-{precision}-{i}"
                    cfg = make_cfg(args, ckpt, shards, out, precision, name.startswith("codelm-compiled"))
                    r = run_contender(name, cfg)
                    results.setdefault((precision, name), []).append(r)
                    first = r["first_step_s"]
                    print(f"round {i} {precision} {name}: {r['tps']:.1f} tok/s, first step {first:.1f} s")
        measure_peaks(device, precisions, peaks)
    loads.append(load_average())
    ratio = report(args, results, peaks, fpt, params, (loads[0], loads[-1]))
    print(f"RESULT name=train ratio={ratio:.3f} target=1.0")


if __name__ == "__main__":
    main()
