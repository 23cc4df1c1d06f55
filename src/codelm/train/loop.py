"""The one training loop, on accelerate, shared by every stage (pretrain/FIM/long context, SFT, DPO, RL).

    from codelm.train.config import load_config
    from codelm.train.loop import train
    train(load_config("configs/train/pretrain-fim.yaml", ["run.max_steps=10"]))

Single process, DDP (`accelerate launch --multi_gpu`, also on CPU with gloo), FSDP and DeepSpeed all
run this same code; the accelerate config file picks the strategy (configs/train/accelerate/).

One step: take the next global batch of units from the stage's source (every process computes the
same global order and keeps its slice), run its micro-batches under `accelerator.accumulate`, scaling
each micro-batch's loss *sum* by world * accumulation / units-in-the-global-batch, so that after
accelerate's 1/accumulation and DDP's 1/world the gradient is that of the global per-unit mean; then
clip, step the optimizer and the schedule, log, score the held-out rows every `eval_every` steps
(train/heldout.py; also before the first step and after the last), and checkpoint every `save_every`
steps. MFU is against the peak `metrics.resolve_peak` finds (config, GPU table, or measured here).

`run.compile` runs the stage's objective (forward and loss) through `torch.compile` (inductor); the
module itself is not replaced, so the weights, optimizer, checkpoints (no `_orig_mod.` keys), held-out
scoring and rl generation are those of an eager run, and only the training forward/loss is compiled.
The first step pays the compilation (docs/training.md: CPU figures); the compiled code is dropped when
`train` returns.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from codelm.errors import CodelmError
from codelm.train import checkpoint as ckpt
from codelm.train.config import TrainConfig
from codelm.train.heldout import score
from codelm.train.init import build_model, context_length, load_tokenizer, resolve_family
from codelm.train.metrics import MetricsWriter, Peak, flops_per_token, plot_metrics, resolve_peak
from codelm.train.optim import check_strategy, make_optimizer
from codelm.train.packing import collate
from codelm.train.prefetch import Inline, Prefetcher, StepData
from codelm.train.schedule import make_scheduler
from codelm.train.stages import build_stage


@contextlib.contextmanager
def _runtime(cfg: TrainConfig) -> Iterator[None]:
    """Threads and determinism for the run, restored afterwards; accelerate's singletons reset.

    `train` may run several times in one process (a recipe's stages in sequence, the tests), and
    accelerate refuses a second Accelerator with another precision unless its state is cleared.
    """
    from accelerate.state import AcceleratorState, GradientState

    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    if cfg.run.threads:
        torch.set_num_threads(cfg.run.threads)
    if cfg.run.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS determinism, before CUDA init
        torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)
        if cfg.run.compile:  # the next run's model is another module: start from a clean dynamo cache
            torch._dynamo.reset()
        AcceleratorState._reset_state()  # keeps PartialState, i.e. the process group
        GradientState._reset_state()


def _has_accelerator() -> bool:
    """A GPU (or other device) accelerate would pick. Without one, `run.device` unset means the CPU,
    said explicitly: under `accelerate launch` with a multi-GPU config on a CPU-only machine,
    accelerate otherwise leaves every process outside the process group (world size 1 each, all
    writing the same run directory) instead of joining them over gloo."""
    mps = getattr(torch.backends, "mps", None)
    xpu = getattr(torch, "xpu", None)
    return bool(
        torch.cuda.is_available()
        or (xpu is not None and xpu.is_available())
        or (mps is not None and mps.is_available())
    )


def resolve_precision(precision: str, cpu_only: bool = False) -> str:
    """`auto` -> bf16 where the hardware computes it natively, else fp32 (fp32/bf16 pass through).

    CUDA: bf16 when the GPU supports it (Ampere and later). CPU: bf16 autocast pays only with
    AVX512-BF16 or AMX instructions (x1.26 tokens/s on the tiny recipe's AMD EPYC Zen 4, docs/
    training.md); elsewhere oneDNN emulates it and it is slower than fp32."""
    if precision != "auto":
        return precision
    if not cpu_only and torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # torch.cpu, torch >= 2.3
    return "bf16" if any(getattr(torch.cpu, p, lambda: False)() for p in probes) else "fp32"


def _configure_deepspeed(acc: Any, cfg: TrainConfig, rows_per_unit: int) -> None:
    """DeepSpeed reads batch size and clipping from its own config; fill them from the stage's."""
    plugin = getattr(acc.state, "deepspeed_plugin", None)
    if plugin is None:
        return
    ds = plugin.deepspeed_config
    ds["train_micro_batch_size_per_gpu"] = cfg.batch.micro_batch_size * rows_per_unit
    ds["gradient_clipping"] = cfg.optim.grad_clip
    ds.pop("train_batch_size", None)  # derived by DeepSpeed from the two above and the world size


@dataclass
class Run:
    """Everything one training run holds between steps."""

    cfg: TrainConfig
    acc: Any
    model: Any
    optimizer: torch.optim.Optimizer
    scheduler: Any
    stage: Any
    family: Any
    tokenizer: Any
    metrics: MetricsWriter
    world: int
    accum: int
    step: int = 0
    tokens_seen: int = 0
    data_state: dict[str, Any] | None = None  # source position after the last step trained
    peak: Peak | None = None  # what MFU is computed against (metrics.resolve_peak)
    heldout_batches: list[Any] | None = None  # this process's share of the held-out rows
    objective: Any = None  # the stage's objective as training calls it: compiled under run.compile

    def meta(self) -> dict[str, Any]:
        model = self.acc.unwrap_model(self.model)
        meta = ckpt.run_meta(
            self.cfg, self.stage, self.family, model, self.step, self.tokens_seen, self.world
        )
        meta["data"]["position"] = self.data_state  # the source itself may have run ahead (prefetch)
        if self.peak is not None:
            meta["device"] = {**self.peak.as_dict(), "processes": self.world}
        return meta

    def evaluate(self) -> dict[str, float]:
        """The held-out fields of a record (train/heldout.py): loss per unit, and DPO's rewards."""
        if not self.heldout_batches:
            return {}
        t0 = time.perf_counter()
        model = self.acc.unwrap_model(self.model)  # no DDP collectives: each process scores its share
        sums = score(model, self.stage.objective, self.heldout_batches, self.acc.device)
        reduced = self.acc.reduce(torch.stack(list(sums.values())), reduction="sum").tolist()
        totals = dict(zip(sums, reduced, strict=True))
        units = totals.pop("units")
        out = {f"heldout_{k}": v / units for k, v in totals.items()}
        return out | {"heldout_units": int(units), "heldout_time_s": time.perf_counter() - t0}


def prepare(cfg: TrainConfig, resume: bool) -> Run:
    """Accelerator, model, stage, optimizer and schedule; restored from the newest checkpoint on resume."""
    from accelerate import Accelerator, PartialState
    from accelerate.utils import set_seed

    out = Path(cfg.run.out_dir)
    cpu = cfg.run.device == "cpu" or (cfg.run.device is None and not _has_accelerator())
    world = PartialState(cpu=cpu).num_processes
    accum = cfg.batch.accumulation(world)
    cfg.run.precision = resolve_precision(cfg.run.precision, cpu)
    precision = "bf16" if cfg.run.precision == "bf16" else "no"
    acc = Accelerator(cpu=cpu, mixed_precision=precision, gradient_accumulation_steps=accum)
    check_strategy(cfg.optim.name, acc.distributed_type.name)  # before any model is loaded
    found = ckpt.latest_checkpoint(out)
    if found is not None and not resume:
        raise CodelmError(f"{out} already has checkpoints: pass --resume, or choose another run.out_dir")
    if resume and found is None:
        raise CodelmError(f"nothing to resume: no checkpoint under {out}/checkpoints")
    set_seed(cfg.run.seed)
    family = resolve_family(cfg.model)
    tokenizer = load_tokenizer(cfg.model)
    model = build_model(cfg.model, tokenizer, family, cfg.batch.seq_len)
    stage = build_stage(cfg, tokenizer, family, model.to(acc.device), acc.device)
    optimizer = make_optimizer(model, cfg)
    o = cfg.optim
    scheduler = make_scheduler(
        optimizer,
        warmup_steps=o.warmup_steps,
        max_steps=cfg.run.max_steps,
        decay=o.decay,
        min_lr_ratio=o.min_lr_ratio,
    )
    _configure_deepspeed(acc, cfg, stage.source.rows_per_unit)
    model, optimizer = acc.prepare(model, optimizer)
    acc.register_for_checkpointing(scheduler)
    metrics = MetricsWriter(
        out, max_steps=cfg.run.max_steps, tensorboard=cfg.run.tensorboard, enabled=acc.is_main_process
    )
    run = Run(cfg, acc, model, optimizer, scheduler, stage, family, tokenizer, metrics, world, accum)
    run.objective = torch.compile(stage.objective) if cfg.run.compile else stage.objective
    if resume:
        state, meta = ckpt.load_checkpoint(acc, found)
        ckpt.check_resume_config(meta["config"], cfg.to_dict())
        stage.source.load_state_dict(state["data"])
        run.step, run.tokens_seen = state["step"], state["tokens_seen"]
    if stage.heldout is not None:
        pad = tokenizer.convert_tokens_to_ids(family.tokenizer.pad)
        run.heldout_batches = stage.heldout.batches(acc.process_index, world, cfg.batch.micro_batch_size, pad)
    metrics.truncate_after(run.step)  # a fresh run drops a crashed earlier run's records (step 0)
    run.data_state = stage.source.state_dict()
    return run


def step_producer(run: Run) -> Callable[[], StepData]:
    """A function that prepares the next step's data for this process (run in the prefetch thread)."""
    cfg, source, stage = run.cfg, run.stage.source, run.stage
    pad_id = run.tokenizer.convert_tokens_to_ids(run.family.tokenizer.pad)
    rpu, per = source.rows_per_unit, cfg.batch.global_sequences // run.world
    micro = cfg.batch.micro_batch_size * rpu
    lo = run.acc.process_index * per * rpu

    def produce() -> StepData:
        rows = source.next_units(cfg.batch.global_sequences)  # the global batch, the same on every process
        mine = rows[lo : lo + per * rpu]
        batches = [collate(mine[i : i + micro], pad_id) for i in range(0, len(mine), micro)]
        tokens = sum(len(r) for r in rows)
        return StepData(batches, max(1, stage.units(rows)), tokens, source.state_dict())

    return produce


def train_step(run: Run, data: StepData) -> tuple[torch.Tensor, dict[str, torch.Tensor], Any]:
    """One optimizer step; returns the loss sum, the objective's metric sums and the gradient norm."""
    acc = run.acc
    scale = run.world * run.accum / data.units
    loss_sum = torch.zeros((), device=acc.device, dtype=torch.float64)
    sums: dict[str, torch.Tensor] = {}
    for batch in data.micro:
        with acc.accumulate(run.model):
            loss, extra = run.objective(run.model, batch.to(acc.device))
            acc.backward(loss * scale)
        loss_sum += loss.detach().double()
        for k, v in extra.items():
            sums[k] = sums.get(k, 0) + v.double()
    clip = run.cfg.optim.grad_clip
    grad_norm = acc.clip_grad_norm_(run.model.parameters(), clip) if clip else None
    run.optimizer.step()
    run.scheduler.step()
    run.optimizer.zero_grad(set_to_none=True)
    run.step += 1
    run.tokens_seen += data.tokens
    run.data_state = data.state
    return loss_sum, sums, grad_norm


def log_step(run: Run, data: StepData, sums: list[torch.Tensor], names: list[str], **fields: Any) -> dict:
    """Reduce the step's sums across processes into per-unit means, and write them."""
    totals = run.acc.reduce(torch.stack(sums), reduction="sum").tolist()
    record = {"step": run.step, "loss": totals[0] / data.units, **fields, "tokens": run.tokens_seen}
    record.update({k: v / data.units for k, v in zip(names, totals[1:], strict=True)})
    run.metrics.log(record)
    return record


def train(
    cfg: TrainConfig, *, resume: bool = False, on_step: Callable[[int, dict[str, Any]], None] | None = None
) -> Path:
    """Run the stage `cfg` describes; returns the final HF checkpoint directory (OUT/final).

    `on_step(step, record)` is called after every step (and its checkpoint); `record` holds the
    logged metrics on logging steps, else it is empty.
    """
    with _runtime(cfg):
        run = prepare(cfg, resume)
        acc, out = run.acc, Path(cfg.run.out_dir)
        fpt = flops_per_token(acc.unwrap_model(run.model), cfg.batch.seq_len)
        run.peak = resolve_peak(acc.device, cfg.run.precision, cfg.run.peak_tflops)  # training threads
        peak_fields = {"peak_tflops": run.peak.tflops, "peak_source": run.peak.source}
        run.model.train()
        if run.step == 0 and run.heldout_batches:  # where the held-out curve starts
            run.metrics.log({"step": 0, **run.evaluate(), "tokens": 0})
        if run.stage.producer is not None:  # data made from the current weights: never read ahead
            prefetch: Prefetcher | Inline = Inline(run.stage.producer(run), run.stage.close)
        else:
            prefetch = Prefetcher(step_producer(run))
        try:
            while run.step < cfg.run.max_steps:
                t0 = time.perf_counter()
                lr = run.optimizer.param_groups[0]["lr"]
                data = prefetch.next()
                loss_sum, sums, grad_norm = train_step(run, data)
                dt = time.perf_counter() - t0  # the held-out evaluation is not part of the step
                last = run.step == cfg.run.max_steps
                every = cfg.run.eval_every
                heldout = run.evaluate() if last or (every and run.step % every == 0) else {}
                record: dict[str, Any] = {}
                if run.step % cfg.run.log_every == 0 or last or heldout:
                    extra = {"grad_norm": float(grad_norm)} if grad_norm is not None else {}
                    extra |= data.fields
                    if "rollout_time_s" in data.fields:  # rl: the rest of the step is the update
                        extra["update_time_s"] = dt - data.fields["rollout_time_s"]
                    mfu = fpt * data.tokens / dt / (run.peak.tflops * 1e12 * run.world)
                    record = log_step(
                        run,
                        data,
                        [loss_sum, *sums.values()],
                        list(sums),
                        lr=lr,
                        tokens_per_s=data.tokens / dt,
                        step_time_s=dt,
                        mfu=mfu,
                        **peak_fields,
                        **extra,
                        **heldout,
                    )
                if (cfg.run.save_every and run.step % cfg.run.save_every == 0) or last:
                    state = {"step": run.step, "tokens_seen": run.tokens_seen, "data": run.data_state}
                    ckpt.save_checkpoint(acc, out, run.step, state, run.meta(), cfg.run.keep_checkpoints)
                if on_step is not None:
                    on_step(run.step, record)
        finally:
            prefetch.close()
        run.metrics.close()
        meta = run.meta()
        context = context_length(acc.unwrap_model(run.model).config)
        final = ckpt.export_final(acc, run.model, run.tokenizer, run.family, out / "final", meta, context)
        if acc.is_main_process and cfg.run.plot and (out / "metrics.jsonl").is_file():
            plot_metrics(out / "metrics.jsonl", out / "loss.png")
        acc.end_training()
        return final
