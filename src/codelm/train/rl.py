"""The `rl` stage: GRPO-family policy optimisation with verifiable (executed) rewards.

A rollout, every `rl.epochs` steps: the next P = global_batch / G problems (one seeded global order,
each process sampling its share), G completions of each from codelm's engine with the current
weights (batched, seeded per problem and rollout, so the samples do not depend on the process
count), scored in the sandbox (train/rewards.py) while the next chunk is generated; then the
rollout is gathered on every process and turned into advantages, and each process trains on the
completions it sampled. Choices, with where they come from:

* group-relative advantages A = (r - mean(group)) / std(group): GRPO, DeepSeekMath (arXiv
  2402.03300) eq. 3 and section 4.1.2 (std unbiased, +1e-4, as TRL's GRPOTrainer); with
  `scale_rewards: false` A = r - mean (Dr. GRPO, arXiv 2503.20783 section 3.1: the std term biases
  towards too easy and too hard questions);
* clipped surrogate min(ratio A, clip(ratio, 1 - clip_low, 1 + clip_high) A), ratio against the
  policy that sampled: PPO via GRPO eq. 3; `clip_high` > `clip_low` is DAPO's clip-higher (arXiv
  2503.14476 section 3.1, 0.2 / 0.28) against entropy collapse;
* KL to the frozen starting model with the unbiased k3 estimator exp(ref - logp) - (ref - logp) - 1
  (GRPO eq. 4), weight `kl_coef` (GRPO 0.04); DAPO section 2.3 and Dr. GRPO drop it: at 0 no
  reference model is loaded;
* loss normalisation `loss_norm`: `sequence` averages tokens within each completion, then
  completions (GRPO eq. 3); `token` averages over all tokens of the batch (DAPO section 3.3: long
  completions weigh by their length); `constant` divides token sums by max_new_tokens per completion
  (Dr. GRPO section 3.1: no length bias at all);
* `filter_equal_groups`: groups whose rewards are all equal carry no advantage and are left out of
  the loss and its normaliser (DAPO's dynamic sampling, section 3.2; DAPO also over-samples to refill
  the batch, which this does not: the step trains on fewer groups and says how many it dropped);
* overlong: `overlong_buffer` N adds DAPO's soft overlong punishment (section 3.4, eq. 13), a
  penalty growing linearly to `overlong_penalty` over the last N tokens before max_new_tokens;
  `mask_truncated` takes completions cut at max_new_tokens out of the loss (DAPO's overlong
  filtering);
* `epochs` (GRPO's mu, algorithm 1): optimizer steps on the same rollout; the log-probs of the
  sampling policy are kept for the ratio (with one epoch the ratio is 1 and they are not needed).

Every step is one optimizer step of the shared loop (train/loop.py); a rollout that is part-way
through its epochs is saved with the checkpoint, so resume is exact. Logged per step, besides the
loop's fields: reward mean/std, pass rate, completion length, clipped and filtered shares, KL,
entropy, and the time split into generation, execution (overlapped with generation) and update.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch

from codelm.train.objectives import forward_logits, shifted_targets
from codelm.train.packing import IGNORE, Batch, Row, collate
from codelm.train.prefetch import StepData
from codelm.train.rewards import Scorer, prompt_text
from codelm.train.rl_data import Problem, PromptOrder, check_problems, read_problems


@dataclass
class RLBatch:
    """A micro-batch of completions: the rows plus what the clipped objective needs per row."""

    rows: Batch
    advantages: torch.Tensor  # [B]
    token_weight: torch.Tensor  # [B]: each completion token's weight in the loss sum (0: filtered)
    old_logp: torch.Tensor | None  # [B, L] log-probs under the sampling policy (epochs > 1)
    ref_logp: torch.Tensor | None  # [B, L] log-probs under the frozen reference (kl_coef > 0)

    @property
    def tokens(self) -> int:
        return self.rows.tokens

    def to(self, device: torch.device | str) -> RLBatch:
        moved = {f.name: getattr(self, f.name) for f in fields(self)}
        return RLBatch(**{k: (v.to(device) if v is not None else None) for k, v in moved.items()})


class GRPOLoss:
    """The clipped, KL-regularised policy-gradient loss as a weighted token sum (see the docstring)."""

    name = "grpo"

    def __init__(self, clip_low: float, clip_high: float, kl_coef: float, packed_attention: str) -> None:
        self.clip_low, self.clip_high, self.kl_coef, self.mode = (
            clip_low,
            clip_high,
            kl_coef,
            packed_attention,
        )

    def __call__(
        self, model: torch.nn.Module, batch: RLBatch
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        logits = forward_logits(model, batch.rows, self.mode).float()
        targets = shifted_targets(batch.rows.labels)
        mask = targets != IGNORE
        logp_all = torch.log_softmax(logits, dim=-1)
        logp = logp_all.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        old = batch.old_logp if batch.old_logp is not None else logp.detach()
        ratio = torch.exp(logp - old)
        adv = batch.advantages[:, None].to(logp.dtype)
        clipped = torch.clamp(ratio, 1 - self.clip_low, 1 + self.clip_high)
        per_token = -torch.minimum(ratio * adv, clipped * adv)
        weight = batch.token_weight[:, None].to(logp.dtype) * mask
        metrics = {}
        if self.kl_coef:
            delta = batch.ref_logp - logp
            kl = torch.exp(delta) - delta - 1
            per_token = per_token + self.kl_coef * kl
            metrics["kl"] = (kl.detach() * weight).sum()
        was_clipped = ((ratio < 1 - self.clip_low) & (adv < 0)) | ((ratio > 1 + self.clip_high) & (adv > 0))
        entropy = -(logp_all.detach().exp() * logp_all.detach()).sum(-1)
        metrics["clip_fraction"] = (was_clipped.float() * weight).sum()
        metrics["entropy"] = (entropy * weight).sum()
        return (per_token * weight).sum(), metrics


@dataclass
class Sample:
    """One completion of a rollout (plain lists: it is saved with a checkpoint mid-rollout)."""

    prompt_ids: list[int]
    completion_ids: list[int]
    reward: float
    passed: float
    truncated: bool
    old_logp: list[float] | None = None
    ref_logp: list[float] | None = None


def advantages(rewards: np.ndarray, group: int, scale: bool) -> np.ndarray:
    """Group-relative advantages of rewards laid out group after group (GRPO eq. 3 / Dr. GRPO)."""
    r = rewards.reshape(-1, group)
    centred = r - r.mean(axis=1, keepdims=True)
    if scale:
        centred = centred / (r.std(axis=1, ddof=1, keepdims=True) + 1e-4)
    return centred.reshape(-1)


def overlong_penalty(lengths: np.ndarray, max_len: int, buffer: int, penalty: float) -> np.ndarray:
    """DAPO eq. 13: 0 up to max_len - buffer, then falling linearly to -penalty at max_len."""
    if buffer <= 0:
        return np.zeros(len(lengths))
    start = max_len - buffer
    return -penalty * np.clip((lengths - start) / buffer, 0.0, 1.0)


class RLSource:
    """The stage's "source": problems, their order, and the rollout being trained on."""

    rows_per_unit = 1

    def __init__(
        self,
        problems: list[Problem],
        prompts: list[list[int]],
        *,
        seed: int,
        shuffle: bool,
        epochs: int,
        skipped: dict[str, int],
    ) -> None:
        self.problems, self.prompts, self.skipped, self.epochs = problems, prompts, skipped, epochs
        self.order = PromptOrder(len(problems), seed, shuffle)
        self.rollouts = 0  # rollouts made so far: seeds the next one's sampling
        self.passes = 0  # optimizer steps taken on the current rollout
        self.rollout: list[Sample] | None = None
        self.scorer: Scorer | None = None

    def next_units(self, n: int) -> list[Row]:
        raise NotImplementedError("the rl stage makes its rows by sampling (rl_producer)")

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {**self.order.state_dict(), "rollouts": self.rollouts, "passes": self.passes}
        if self.rollout is not None and self.passes < self.epochs:  # resumed mid-rollout
            state["rollout"] = [vars(s) for s in self.rollout]
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.order.load_state_dict(state)
        self.rollouts, self.passes = int(state["rollouts"]), int(state["passes"])
        self.rollout = [Sample(**s) for s in state["rollout"]] if state.get("rollout") else None

    def lineage(self) -> dict[str, Any]:
        return {
            "kind": "rl_problems",
            "problems": len(self.problems),
            "skipped": self.skipped,
            "position": self.order.state_dict(),
        }

    def close(self) -> None:
        if self.scorer is not None:
            self.scorer.close()


def _gather(items: list[Any]) -> list[Any]:
    """Every process's list, concatenated in process order (the list itself on one process)."""
    if not torch.distributed.is_available() or not torch.distributed.is_initialized():
        return items
    out: list[Any] = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(out, items)
    return [x for part in out for x in part]


def _broadcast(obj: Any) -> Any:
    """The main process's `obj` on every process."""
    if not torch.distributed.is_available() or not torch.distributed.is_initialized():
        return obj
    box = [obj]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


def sample_seed(seed: int, rollout: int, problem: int) -> int:
    """The sampling seed of one problem in one rollout (its G samples use seed + j)."""
    return int(np.random.SeedSequence([seed, rollout, problem]).generate_state(1)[0])


def _rows(samples: list[Sample]) -> list[Row]:
    rows = []
    for s in samples:
        ids = np.asarray(s.prompt_ids + s.completion_ids, dtype=np.int64)
        labels = ids.copy()
        labels[: len(s.prompt_ids)] = IGNORE
        rows.append(Row(ids, labels, np.zeros(len(ids), dtype=np.int64)))
    return rows


def _per_token(rows: Batch, values: list[list[float]]) -> torch.Tensor:
    """Per-completion-token values placed where the objective's targets are."""
    mask = shifted_targets(rows.labels) != IGNORE
    out = torch.zeros(mask.shape, dtype=torch.float32)
    out[mask] = torch.tensor([v for vs in values for v in vs], dtype=torch.float32)
    return out


def completion_logprobs(
    model: torch.nn.Module, samples: list[Sample], pad_id: int, micro: int, mode: str, device
) -> list[list[float]]:
    """Log-prob of every completion token under `model`, in micro-batches, without gradients."""
    out: list[list[float]] = []
    for i in range(0, len(samples), micro):
        chunk = samples[i : i + micro]
        batch = collate(_rows(chunk), pad_id).to(device)
        with torch.no_grad():
            logits = forward_logits(model, batch, mode).float()
            targets = shifted_targets(batch.labels)
            logp = torch.log_softmax(logits, -1).gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        mask = targets != IGNORE
        out.extend(logp[r][mask[r]].cpu().tolist() for r in range(len(chunk)))
    return out


@dataclass
class RLSettings:
    """What the producer needs from the config, as plain values."""

    group: int
    prompts_per_step: int
    max_new_tokens: int
    temperature: float
    top_p: float
    prompt_format: str
    epochs: int
    kl: bool
    loss_norm: str
    scale_rewards: bool
    filter_equal_groups: bool
    overlong_buffer: int
    overlong_penalty: float
    mask_truncated: bool
    generation_batch: int
    seed: int


def raw_text(completion: Any, spec: Any) -> str:
    """The sampled text whole: an engine that split off the thinking has it put back in the template,
    since the format reward judges the template and the code is taken from the answer part only."""
    from codelm.models.reasoning import format_reasoning

    return format_reasoning(completion.reasoning, completion.text, spec)


def stop_token(engine: Any, kind: str) -> int | None:
    """The token a finished sample is trained to end with: the turn end in chat (the last stop token
    the family lists for the kind), else EOS. Completions do not carry the stop token they hit."""
    from codelm.engine import rules

    names = rules.stop_tokens(engine.family, kind)
    ids = engine.stop_ids(kind, engine.params(kind))
    for name in reversed(names):
        tid = engine.tokenizer.convert_tokens_to_ids(name)
        if tid in ids:
            return int(tid)
    return None


def make_rollout(
    run: Any, engine: Any, src: RLSource, s: RLSettings, reference: torch.nn.Module | None
) -> tuple[list[Sample], dict[str, float]]:
    """Sample, score and (for epochs > 1 or KL) log-prob this process's share; gather the rollout.

    `engine` wraps the policy being trained (the same module, so it samples the current weights)."""
    t0 = time.perf_counter()
    acc, world, rank = run.acc, run.world, run.acc.process_index
    chosen = src.order.take(s.prompts_per_step)  # the global list, the same on every process
    per = s.prompts_per_step // world
    mine = chosen[rank * per : (rank + 1) * per]
    model = engine.model
    kind = "chat" if s.prompt_format == "chat" else "completion"
    eos = stop_token(engine, kind)
    chunk = max(1, s.generation_batch // s.group)
    gen_time, exec_time = 0.0, 0.0
    samples: list[Sample] = []
    pending: list[tuple[Future, list, list]] = []
    model.eval()
    with ThreadPoolExecutor(max_workers=1) as executor:  # scores chunk k while chunk k+1 samples

        def timed_score(problems: list[Problem], texts: list[str]) -> tuple[list, float]:
            t = time.perf_counter()
            return src.scorer.score(problems, texts), time.perf_counter() - t

        for start in range(0, len(mine), chunk):
            idx = mine[start : start + chunk]
            t = time.perf_counter()
            requests = []
            for i in idx:
                params = dict(
                    max_new_tokens=s.max_new_tokens,
                    temperature=s.temperature,
                    top_p=s.top_p,
                    n=s.group,
                    seed=sample_seed(s.seed, src.rollouts, i),
                    top_k=0,
                    repetition_penalty=1.0,
                )
                p = prompt_text(src.problems[i], s.prompt_format)
                if kind == "chat":
                    requests.append(engine.chat_request([{"role": "user", "content": p}], **params))
                else:
                    requests.append(engine.completion_request(p, **params))
            results = engine.generate(requests)
            gen_time += time.perf_counter() - t
            problems = [src.problems[i] for i in idx for _ in range(s.group)]
            texts = [raw_text(c, src.scorer.spec) for r in results for c in r.completions]
            meta = []
            for i, r in zip(idx, results, strict=True):
                for c in r.completions:
                    ids = list(c.token_ids)
                    if (
                        c.completion_tokens > len(ids) and eos is not None
                    ):  # ended on a stop token: learn to stop it
                        ids.append(eos)
                    meta.append((src.prompts[i], ids, c.finish_reason == "length"))
            pending.append((executor.submit(timed_score, problems, texts), meta, idx))
        for future, meta, _ in pending:
            scored, took = future.result()
            exec_time += took
            for (prompt_ids, ids, truncated), sc in zip(meta, scored, strict=True):
                samples.append(Sample(prompt_ids, ids, sc.reward, sc.passed, truncated))
    pad = run.tokenizer.convert_tokens_to_ids(run.family.tokenizer.pad)
    micro, mode = run.cfg.batch.micro_batch_size, run.cfg.model.packed_attention
    if s.epochs > 1:
        for smp, lp in zip(
            samples, completion_logprobs(model, samples, pad, micro, mode, acc.device), strict=True
        ):
            smp.old_logp = lp
    if s.kl:
        for smp, lp in zip(
            samples, completion_logprobs(reference, samples, pad, micro, mode, acc.device), strict=True
        ):
            smp.ref_logp = lp
    model.train()
    timing = _gather([(gen_time, exec_time)])
    rollout = _gather(samples)
    stats = {
        "generation_time_s": max(t[0] for t in timing),
        "execution_time_s": max(t[1] for t in timing),
        "rollout_time_s": time.perf_counter() - t0,
    }
    return rollout, stats


def rollout_fields(rollout: list[Sample], s: RLSettings) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
    """Advantages, per-completion loss weights (0: left out) and the rollout's logged statistics."""
    rewards = np.array([x.reward for x in rollout], dtype=np.float64)
    lengths = np.array([len(x.completion_ids) for x in rollout], dtype=np.float64)
    rewards = rewards + overlong_penalty(lengths, s.max_new_tokens, s.overlong_buffer, s.overlong_penalty)
    adv = advantages(rewards, s.group, s.scale_rewards)
    keep = np.ones(len(rollout))
    groups = rewards.reshape(-1, s.group)
    equal = (groups.max(axis=1) - groups.min(axis=1)) == 0
    if s.filter_equal_groups:
        keep *= np.repeat(~equal, s.group)
    truncated = np.array([x.truncated for x in rollout])
    if s.mask_truncated:
        keep *= ~truncated
    passed = np.array([x.passed for x in rollout])
    stats = {
        "reward_mean": float(rewards.mean()),
        "reward_std": float(rewards.std()),
        "pass_rate": float(passed.mean()) if not np.isnan(passed).any() else None,
        "completion_len": float(lengths.mean()),
        "truncated": float(truncated.mean()),
        "equal_groups": float(equal.mean()),
        "trained_share": float(keep.mean()),
    }
    return adv, keep, {k: v for k, v in stats.items() if v is not None}


def loss_weights(keep: np.ndarray, lengths: np.ndarray, norm: str, max_len: int) -> tuple[np.ndarray, float]:
    """Each completion's per-token weight and the loss's normaliser (the loop divides the weighted
    token sum by it): token = DAPO, sequence = GRPO, constant = Dr. GRPO (see the module docstring)."""
    if norm == "token":
        return keep, float((keep * lengths).sum())
    if norm == "sequence":
        return keep / np.maximum(lengths, 1), float(keep.sum())
    return keep / max_len, float(keep.sum())


def rl_producer(run: Any) -> Callable[[], StepData]:
    """The rl stage's step data, made in the training thread: a rollout needs the current weights."""
    src: RLSource = run.stage.source
    s: RLSettings = run.stage.settings
    reference = run.stage.reference
    pad = run.tokenizer.convert_tokens_to_ids(run.family.tokenizer.pad)
    micro = run.cfg.batch.micro_batch_size
    per = s.prompts_per_step * s.group // run.world
    lo = run.acc.process_index * per
    from codelm.engine.engine import Engine
    from codelm.engine.loader import Loaded

    policy = run.acc.unwrap_model(run.model)  # the module being trained, outside its DDP wrapper
    engine = Engine(Loaded(policy, run.tokenizer, run.family, run.cfg.run.out_dir), s.generation_batch)

    def produce() -> StepData:
        timing = {"generation_time_s": 0.0, "execution_time_s": 0.0, "rollout_time_s": 0.0}
        if src.rollout is None or src.passes >= s.epochs:
            src.rollout, timing = make_rollout(run, engine, src, s, reference)
            src.rollouts, src.passes = src.rollouts + 1, 0
        src.passes += 1
        rollout = src.rollout
        adv, keep, stats = rollout_fields(rollout, s)
        lengths = np.array([len(x.completion_ids) for x in rollout], dtype=np.float64)
        token_weight, units = loss_weights(keep, lengths, s.loss_norm, s.max_new_tokens)
        batches = []
        for i in range(lo, lo + per, micro):
            part = rollout[i : i + micro]
            rows = collate(_rows(part), pad)
            old = _per_token(rows, [x.old_logp for x in part]) if s.epochs > 1 else None
            ref = _per_token(rows, [x.ref_logp for x in part]) if s.kl else None
            batches.append(
                RLBatch(
                    rows,
                    torch.tensor(adv[i : i + micro], dtype=torch.float32),
                    torch.tensor(token_weight[i : i + micro], dtype=torch.float32),
                    old,
                    ref,
                )
            )
        tokens = int(sum(len(x.prompt_ids) + len(x.completion_ids) for x in rollout))
        fields_ = {**stats, **timing, "rollout_pass": src.passes}
        return StepData(batches, units or 1.0, tokens, src.state_dict(), fields_)

    return produce


def build_rl_stage(
    cfg: Any, tokenizer: Any, family: Any, model: torch.nn.Module, device: torch.device
) -> Any:
    """Problems (checked in the sandbox once, cached for resume), scorer, objective and reference."""
    import copy

    from codelm.engine.engine import Engine
    from codelm.engine.loader import Loaded
    from codelm.models.reasoning import reasoning_spec
    from codelm.train.stages import Stage

    rl = cfg.data
    world = _world()
    prompts_per_step = cfg.batch.global_batch_size // rl.group_size
    if prompts_per_step % world:
        from codelm.errors import CodelmError

        raise CodelmError(
            f"rl: {prompts_per_step} prompts per step do not split over {world} processes "
            "(batch.global_batch_size / rl.group_size must be a multiple of the process count)"
        )
    scorer = Scorer(
        rl.reward,
        rl.format_reward,
        rl.prompt_format,
        workers=rl.workers,
        timeout=rl.timeout,
        allow_code_execution=rl.allow_code_execution,
        spec=reasoning_spec(family),
    )
    try:
        problems = read_problems(rl.data)
        engine = Engine(Loaded(model, tokenizer, family, cfg.run.out_dir))
        prompts = [
            engine.encode(_render(engine, prompt_text(p, rl.prompt_format), rl.prompt_format))
            for p in problems
        ]
        verdicts = _broadcast(scorer.check_references(problems) if _rank() == 0 else None)
        room = cfg.batch.seq_len - rl.max_new_tokens
        keep, skipped = check_problems(
            problems, [len(x) for x in prompts], room, verdicts, needs_tests=scorer.pool is not None
        )
        if skipped and _rank() == 0:
            print(
                f"codelm: rl.data: skipped {sum(skipped.values())} of {len(problems)} problems: {skipped}",
                file=sys.stderr,
            )
        source = RLSource(
            [problems[i] for i in keep],
            [prompts[i] for i in keep],
            seed=cfg.run.seed,
            shuffle=rl.shuffle,
            epochs=rl.epochs,
            skipped=skipped,
        )
    except BaseException:
        scorer.close()
        raise
    source.scorer = scorer
    reference = None
    if rl.kl_coef > 0:
        reference = copy.deepcopy(model).requires_grad_(False).eval().to(device)  # the start, frozen
    settings = RLSettings(
        group=rl.group_size,
        prompts_per_step=prompts_per_step,
        max_new_tokens=rl.max_new_tokens,
        temperature=rl.temperature,
        top_p=rl.top_p,
        prompt_format=rl.prompt_format,
        epochs=rl.epochs,
        kl=rl.kl_coef > 0,
        loss_norm=rl.loss_norm,
        scale_rewards=rl.scale_rewards,
        filter_equal_groups=rl.filter_equal_groups,
        overlong_buffer=rl.overlong_buffer,
        overlong_penalty=rl.overlong_penalty,
        mask_truncated=rl.mask_truncated,
        generation_batch=rl.generation_batch,
        seed=cfg.run.seed,
    )
    objective = GRPOLoss(rl.clip_low, rl.clip_high, rl.kl_coef, cfg.model.packed_attention)
    return Stage(
        source, objective, producer=rl_producer, close=source.close, settings=settings, reference=reference
    )


def _render(engine: Any, text: str, prompt_format: str) -> str:
    if prompt_format == "chat":
        return engine.chat_request([{"role": "user", "content": text}]).prompt
    return text


def _rank() -> int:
    dist = torch.distributed
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def _world() -> int:
    from accelerate import PartialState

    return PartialState().num_processes
