"""RL throughput: codelm's `rl` stage against TRL's GRPOTrainer, same model, prompts, group and reward.

Both train the same tiny random-init Llama (codelm.models.tiny) on the same 32 prompts ("def fN():\\n
    return "), sampling G = 8 completions of up to --max-new-tokens tokens per prompt at temperature
1, 4 prompts (32 completions) per optimizer step, one update per rollout, no KL (no reference model),
token-level loss (TRL's `dapo` loss type, codelm's `loss_norm: token`), clip 0.2, the same AdamW
settings, and the same reward: `int_reward` below, a plain Python callable (1.0 when the completion
is an integer literal), given to TRL as a reward function and to codelm as `rl.reward: rl:int_reward`,
so neither runs the sandbox and the comparison is of the training machinery: generation, scoring,
log-probs and update. Samples/s = completions per second and updates/s = optimizer steps per second,
at the median step time after a warm-up, best of interleaved repeats (the machine is shared). Target:
codelm >= 1.5x TRL. codelm's own step split (generation / execution / update) says where time goes.

    python bench/rl.py                     # what RESULTS.md holds
    python bench/rl.py --max-new-tokens 64 --steps 8 --repeats 1 --no-results
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import torch

PROMPTS = [f"def f{n}():\n    return " for n in range(32)]
WARMUP = 2  # steps left out of the timing


def int_reward(problem: dict, completion: str) -> float:
    """1.0 when the completion is an integer literal (what `assert isinstance(fN(), int)` checks)."""
    return float(completion.strip().isdigit())


def trl_reward(prompts: list, completions: list, **kwargs) -> list[float]:
    return [int_reward({}, c) for c in completions]


def median_step(stamps: list[float]) -> float:
    steps = [b - a for a, b in zip(stamps[WARMUP - 1 : -2], stamps[WARMUP:-1], strict=True)]
    return statistics.median(steps)


def run_codelm(args: argparse.Namespace, ckpt: Path, data: Path, out: Path) -> tuple[float, dict]:
    """Median step seconds, and the mean generation / execution / update split of the timed steps."""
    from codelm.train.config import load_config
    from codelm.train.loop import train
    from codelm.train.metrics import read_metrics

    cfg = load_config(
        None,
        [
            "stage=rl",
            f"model.init_from={ckpt}",
            f"rl.data={data}",
            "rl.reward=rl:int_reward",
            f"rl.group_size={args.group}",
            f"rl.max_new_tokens={args.max_new_tokens}",
            f"rl.generation_batch={args.group * args.prompts}",
            "batch.seq_len=128",
            f"batch.micro_batch_size={args.group * args.prompts}",
            f"batch.global_batch_size={args.group * args.prompts}",
            "optim.lr=1.0e-5",
            "optim.weight_decay=0.0",
            "optim.decay=constant",
            f"run.max_steps={args.steps}",
            f"run.out_dir={out}",
            f"run.threads={args.threads}",
            "run.device=cpu",
            "run.plot=false",
            "run.tensorboard=false",
            "run.log_every=1",
        ],
    )
    stamps: list[float] = []
    train(cfg, on_step=lambda step, record: stamps.append(time.perf_counter()))
    rows = read_metrics(out / "metrics.jsonl")[WARMUP:-1]
    split = {
        k: statistics.mean(r[k] for r in rows)
        for k in ("generation_time_s", "execution_time_s", "update_time_s")
    }
    split["logprob_time_s"] = statistics.mean(r["rollout_time_s"] - r["generation_time_s"] for r in rows)
    split["completion_len"] = statistics.mean(r["completion_len"] for r in rows)
    return median_step(stamps), split


def run_trl(args: argparse.Namespace, ckpt: Path, out: Path) -> tuple[float, float]:
    """Median step seconds of TRL's GRPOTrainer on the same model, prompts, group and reward, and
    its mean completion length (both sample a random model: almost all run to the limit)."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(ckpt, dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(ckpt)
    tok.padding_side = "left"
    stamps: list[float] = []

    class Clock(TrainerCallback):
        def on_step_end(self, *a, **k):
            stamps.append(time.perf_counter())

    config = GRPOConfig(
        output_dir=str(out),
        per_device_train_batch_size=args.group * args.prompts,
        num_generations=args.group,
        max_completion_length=args.max_new_tokens,
        temperature=1.0,
        beta=0.0,
        loss_type="dapo",
        epsilon=0.2,
        learning_rate=1e-5,
        weight_decay=0.0,
        lr_scheduler_type="constant",
        max_steps=args.steps,
        use_cpu=True,
        report_to="none",
        logging_steps=10**9,
        save_strategy="no",
        disable_tqdm=True,
        seed=0,
    )
    dataset = Dataset.from_dict({"prompt": PROMPTS * 4})
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=[trl_reward],
        args=config,
        train_dataset=dataset,
        processing_class=tok,
        callbacks=[Clock()],
    )
    trainer.train()
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state()  # the Trainer leaves its state behind; the next run sets its own
    GradientState._reset_state()
    length = next(
        r["completions/mean_length"] for r in trainer.state.log_history if "completions/mean_length" in r
    )
    return median_step(stamps), float(length)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--group", type=int, default=8)
    ap.add_argument("--prompts", type=int, default=4, help="prompts per step")
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--results", default=str(Path(__file__).with_name("RESULTS.md")))
    ap.add_argument("--no-results", action="store_true", help="do not append to RESULTS.md")
    args = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).parent))  # so codelm finds `rl:int_reward`
    torch.set_num_threads(args.threads)
    from codelm.models.tiny import make_tiny

    load = os.getloadavg()[0]  # the machine is shared: say how busy it was
    ours, theirs, splits = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        ckpt = make_tiny("llama", root / "tiny", corpus_bytes=1_000_000)
        data = root / "problems.jsonl"
        data.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in PROMPTS))
        for i in range(args.repeats):  # interleaved, so machine load hits both alike
            step, split = run_codelm(args, ckpt, data, root / f"codelm{i}")
            ours.append(step)
            splits.append(split)
            step, trl_len = run_trl(args, ckpt, root / f"trl{i}")
            theirs.append(step)
    completions = args.group * args.prompts
    o, t = min(ours), min(theirs)  # the least disturbed run of each
    ratio = t / o
    split = splits[ours.index(o)]
    our_len = split.pop("completion_len")
    where = ", ".join(f"{k.removesuffix('_time_s')} {v:.3f} s" for k, v in split.items())
    runs = f"TRL {', '.join(f'{x:.3f}' for x in theirs)}; codelm {', '.join(f'{x:.3f}' for x in ours)} s/step"
    print(f"runs: {runs}; mean completion length: TRL {trl_len:.1f}, codelm {our_len:.1f} tokens")
    print(f"TRL GRPOTrainer: {completions / t:8.1f} samples/s {1 / t:6.2f} updates/s")
    print(f"codelm rl:       {completions / o:8.1f} samples/s {1 / o:6.2f} updates/s ({where} per step)")
    if not args.no_results:
        machine = f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}"
        import trl

        section = (
            f"\n## rl, {date.today()}\n\n"
            f"Machine: {machine}; {args.threads} torch thread(s); TRL {trl.__version__}; load average "
            f"{load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end. Tiny random-init "
            f"Llama, {args.prompts} prompts x G={args.group} completions of up to {args.max_new_tokens} "
            "tokens per step, one update per rollout, no KL, token-level loss, the same Python reward "
            f"(no sandbox); {args.steps} steps per run, median step time without the first {WARMUP} "
            f"and the last, best of {args.repeats} interleaved runs ({runs}; mean completion length "
            f"TRL {trl_len:.1f}, codelm {our_len:.1f} tokens). codelm's step: {where}. "
            "Command: `python bench/rl.py`.\n\n"
            "| | samples/s | updates/s |\n|---|---|---|\n"
            f"| TRL GRPOTrainer (anchor) | {completions / t:.1f} | {1 / t:.2f} |\n"
            f"| codelm rl | {completions / o:.1f} | {1 / o:.2f} |\n\n"
            f"RESULT name=rl ratio={ratio:.2f} target=1.5\n"
        )
        with open(args.results, "a") as f:
            f.write(section)
    print(f"RESULT name=rl ratio={ratio:.2f} target=1.5")


if __name__ == "__main__":
    main()
