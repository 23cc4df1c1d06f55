"""The `rl` stage: GRPO-family policy optimisation with verifiable (executed) rewards.

A rollout, every `rl.epochs` steps: the next P = global_batch / G problems (one seeded global order,
each process sampling its share), G completions of each from codelm's engine with the current
weights (batched, seeded per problem and rollout, so the samples do not depend on the process
count), scored in the sandbox (train/rewards.py) while the next chunk is generated; then the
rollout is gathered on every process and turned into advantages, and each process trains on the
completions it sampled. The advantages and the objective, and the paper behind each option
(GRPO, DAPO, Dr. GRPO), are in train/rl_objective.py.

Every step is one optimizer step of the shared loop (train/loop.py); a rollout that is part-way
through its epochs is saved with the checkpoint, so resume is exact. Logged per step, besides the
loop's fields: reward mean/std, pass rate, completion length, clipped and filtered shares, KL,
entropy, and the time split into generation, execution (overlapped with generation) and update.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

from codelm.errors import CodelmError
from codelm.train.packing import Row, collate
from codelm.train.prefetch import StepData
from codelm.train.rewards import Scorer, prompt_text
from codelm.train.rl_data import Problem, PromptOrder, check_problems, derive_problems, read_problems
from codelm.train.rl_objective import (
    GRPOLoss,
    RLBatch,
    RLSettings,
    Sample,
    completion_logprobs,
    loss_weights,
    per_token,
    rollout_fields,
    rows_of,
)


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


def sample_chunk(
    engine: Any, src: RLSource, s: RLSettings, idx: list[int], stop: int | None
) -> tuple[list[Problem], list[str], list[tuple[list[int], list[int], bool]]]:
    """G completions of each problem in `idx`: the problems and texts to score, and per completion
    (prompt ids, completion ids, truncated). A completion that ended on a stop token gets it back
    (the engine leaves it out of the text and the ids), so the policy learns to stop."""
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
        text = prompt_text(src.problems[i], s.prompt_format)
        if s.prompt_format == "chat":
            requests.append(engine.chat_request([{"role": "user", "content": text}], **params))
        else:
            requests.append(engine.completion_request(text, **params))
    results = engine.generate(requests)
    problems = [src.problems[i] for i in idx for _ in range(s.group)]
    texts = [raw_text(c, src.scorer.spec) for r in results for c in r.completions]
    meta = []
    for i, r in zip(idx, results, strict=True):
        for c in r.completions:
            ids = list(c.token_ids)
            if c.completion_tokens > len(ids) and stop is not None:
                ids.append(stop)
            meta.append((src.prompts[i], ids, c.finish_reason == "length"))
    return problems, texts, meta


def make_rollout(
    run: Any, engine: Any, src: RLSource, s: RLSettings, reference: torch.nn.Module | None
) -> tuple[list[Sample], dict[str, float]]:
    """Sample, score and (for epochs > 1 or KL) log-prob this process's share; gather the rollout.

    `engine` wraps the policy being trained (the same module, so it samples the current weights);
    chunk k is scored in a helper thread while chunk k + 1 is sampled."""
    t0 = time.perf_counter()
    per = s.prompts_per_step // run.world
    chosen = src.order.take(s.prompts_per_step)  # the global list, the same on every process
    mine = chosen[run.acc.process_index * per : (run.acc.process_index + 1) * per]
    stop = stop_token(engine, "chat" if s.prompt_format == "chat" else "completion")
    chunk = max(1, s.generation_batch // s.group)
    gen_time, exec_time, samples, pending = 0.0, 0.0, [], []

    def timed_score(problems: list[Problem], texts: list[str]) -> tuple[list, float]:
        t = time.perf_counter()
        return src.scorer.score(problems, texts), time.perf_counter() - t

    engine.model.eval()
    with ThreadPoolExecutor(max_workers=1) as executor:
        for start in range(0, len(mine), chunk):
            t = time.perf_counter()
            problems, texts, meta = sample_chunk(engine, src, s, mine[start : start + chunk], stop)
            gen_time += time.perf_counter() - t
            pending.append((executor.submit(timed_score, problems, texts), meta))
        for future, meta in pending:
            scored, took = future.result()
            exec_time += took
            for (prompt_ids, ids, truncated), sc in zip(meta, scored, strict=True):
                samples.append(Sample(prompt_ids, ids, sc.reward, sc.passed, truncated))
    pad = run.tokenizer.convert_tokens_to_ids(run.family.tokenizer.pad)
    args = (pad, run.cfg.batch.micro_batch_size, run.cfg.model.packed_attention, run.acc.device)
    if s.epochs > 1:  # the sampling policy's log-probs, for the ratio of the later epochs
        for smp, lp in zip(samples, completion_logprobs(engine.model, samples, *args), strict=True):
            smp.old_logp = lp
    if s.kl:
        for smp, lp in zip(samples, completion_logprobs(reference, samples, *args), strict=True):
            smp.ref_logp = lp
    engine.model.train()
    timing = _gather([(gen_time, exec_time)])
    stats = {
        "generation_time_s": max(t[0] for t in timing),
        "execution_time_s": max(t[1] for t in timing),
    }
    rollout = _gather(samples)
    stats["rollout_time_s"] = time.perf_counter() - t0
    return rollout, stats


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
            rows = collate(rows_of(part), pad)
            old = per_token(rows, [x.old_logp for x in part]) if s.epochs > 1 else None
            ref = per_token(rows, [x.ref_logp for x in part]) if s.kl else None
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
        data = rl.data
        if rl.corpus:  # derived on the main process, read by every one
            data = Path(cfg.run.out_dir) / "rl_problems.jsonl"
            if scorer.pool is None:
                raise CodelmError(
                    "rl.corpus: deriving problems runs doctests: use the pass or fraction reward"
                )
            if _rank() == 0:
                derive_problems(rl.corpus, data, scorer.pool, rl.corpus_problems)
            _broadcast(None)
        problems = read_problems(data)
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
