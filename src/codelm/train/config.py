"""Stage configs: one YAML per training stage, parsed into small validated dataclasses.

    stage: pretrain            # pretrain (incl. FIM and long context) | sft | dpo | rl
    model:  {family: llama, size: tiny, tokenizer: tok/}      # or init_from: a checkpoint
    pretrain: {shards: [data/shards], fim_rate: 0.5}          # the section named after the stage
    batch:  {seq_len: 256, micro_batch_size: 4, global_batch_size: 8}
    optim:  {lr: 3.0e-3, warmup_steps: 10, decay: cosine}
    run:    {out_dir: runs/x, max_steps: 100, save_every: 50}

`load_config(path, ["optim.lr=1e-3", ...])` applies `--set` overrides to the raw YAML before the
dataclasses are built, so every value, overridden or not, goes through the same validation. Parsing
is the project's one config layer (`codelm.config`): values are coerced to the field's type ("1e-3"
is a float, "true" a bool, "[a, b]" a list), `${VAR}` is expanded, and unknown keys are errors with
a "did you mean", never silently ignored.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from codelm.config import ConfigError, build, did_you_mean, expand, read_yaml, set_override
from codelm.train.packing import PACKED_ATTENTION
from codelm.train.schedule import DECAYS

STAGES = ("pretrain", "sft", "dpo", "rl")


def _resolved(path: str) -> str:
    return str(Path(path).resolve())


def _check(ok: bool, msg: str) -> None:
    if not ok:
        raise ConfigError(f"bad train config: {msg}")


@dataclass
class ModelConfig:
    family: str | None = None  # model family (codegen1, codegemma, stablecode, seedcoder, llama)
    size: str = "tiny"  # "tiny", or a real size of the family (350M, 2b, 3b, 8b ...) for a new model
    init_from: str | None = None  # continue from this HF checkpoint instead of a random init
    tokenizer: str | None = None  # tokenizer directory (default: init_from's); may have grown
    overrides: dict[str, Any] = field(default_factory=dict)  # model-config fields, e.g. num_hidden_layers
    rope_theta: float | None = None  # new RoPE base (long-context stage); not for CodeGen (fixed 10000)
    max_position_embeddings: int | None = None  # new context length (long-context stage)
    attn_implementation: str | None = None  # sdpa, eager, flash_attention_2 (default: transformers')
    packed_attention: str = "positions"  # how packed documents are kept apart: positions | block_mask
    gradient_checkpointing: bool = False

    def __post_init__(self) -> None:
        _check(self.family is not None or self.init_from is not None, "model needs family or init_from")
        _check(
            self.packed_attention in PACKED_ATTENTION, f"model.packed_attention: one of {PACKED_ATTENTION}"
        )
        _check(self.rope_theta is None or self.rope_theta > 0, "model.rope_theta must be positive")


@dataclass
class ReplayFields:
    """Replay (train/replay.py): this share of a stage's rows comes from pretraining shards, so a stage
    on narrow data (SFT pairs, the tiny recipe's function documents) does not unlearn what pretraining
    taught (perplexity, FIM); FIM applies to the replayed rows as configured."""

    replay_shards: list[str] = field(default_factory=list)
    replay_fraction: float = 0.0
    replay_fim_rate: float = 0.0
    replay_fim_spm_rate: float | None = None
    replay_fim_line_rate: float = 0.0

    def _check_replay(self, section: str) -> None:
        _check(0.0 <= self.replay_fraction < 1.0, f"{section}.replay_fraction: 0 (off) to below 1")
        _check(
            self.replay_fraction == 0.0 or bool(self.replay_shards),
            f"{section}.replay_fraction needs {section}.replay_shards (pretraining shard directories)",
        )
        _check(0.0 <= self.replay_fim_rate <= 1.0, f"{section}.replay_fim_rate: 0 to 1")
        _check(
            self.replay_fim_spm_rate is None or 0.0 <= self.replay_fim_spm_rate <= 1.0,
            f"{section}.replay_fim_spm_rate: 0 to 1",
        )
        _check(0.0 <= self.replay_fim_line_rate <= 1.0, f"{section}.replay_fim_line_rate: 0 to 1")


@dataclass
class PretrainConfig(ReplayFields):
    shards: list[str] = field(default_factory=list)  # shard directories (train/shards.py), read in order
    fim_rate: float = 0.0  # share of documents FIM-permuted on the fly (0.5 Seed-Coder, 0.9 CodeGemma)
    fim_spm_rate: float | None = None  # share of FIM documents in SPM order (default: the family's order)
    fim_line_rate: float = 0.0  # share of FIM documents whose middle is whole lines (train/fim.py)
    shuffle: bool = True  # a seeded document order per epoch
    row_shuffle: int = 0  # rows read ahead and handed out shuffled, so a batch mixes documents (0: off)
    heldout_shards: list[str] = field(default_factory=list)  # never trained on: held-out loss (no FIM)

    def __post_init__(self) -> None:
        _check(bool(self.shards), "pretrain.shards: at least one shard directory")
        overlap = sorted(set(map(_resolved, self.shards)) & set(map(_resolved, self.heldout_shards)))
        _check(not overlap, f"pretrain.heldout_shards are also training shards: {', '.join(overlap)}")
        _check(self.row_shuffle == 0 or self.row_shuffle >= 2, "pretrain.row_shuffle: 0 (off) or >= 2 rows")
        _check(0.0 <= self.fim_rate <= 1.0, "pretrain.fim_rate must be in [0, 1]")
        _check(
            self.fim_spm_rate is None or 0.0 <= self.fim_spm_rate <= 1.0, "pretrain.fim_spm_rate in [0, 1]"
        )
        _check(0.0 <= self.fim_line_rate <= 1.0, "pretrain.fim_line_rate must be in [0, 1]")
        self._check_replay("pretrain")


@dataclass
class SFTConfig(ReplayFields):
    data: str = ""  # JSONL of {"messages": [...]} (or {"prompt", "completion"} for base formats)
    packing: bool = True  # several conversations per row, attention kept apart
    shuffle: bool = True
    heldout: str | None = None  # JSONL of the same format, never trained on: held-out loss

    def __post_init__(self) -> None:
        _check(bool(self.data), "sft.data: a JSONL file")
        _check(not self.heldout or _resolved(self.heldout) != _resolved(self.data), "sft.heldout is sft.data")
        self._check_replay("sft")


@dataclass
class DPOConfig:
    data: str = ""  # JSONL of {"prompt", "chosen", "rejected"}
    beta: float = 0.1  # strength of the KL anchor to the reference (Rafailov et al. 2023)
    reference: str = "model"  # "model": frozen copy in memory; "precomputed": log-probs computed once
    reference_model: str | None = None  # reference checkpoint (default: the starting weights)
    shuffle: bool = True
    heldout: str | None = None  # JSONL of the same format: held-out loss, reward accuracy and margin
    # weight of the chosen replies' mean token NLL added to the DPO loss (RPO, Pang et al. 2024,
    # "Iterative Reasoning Preference Optimization"; TRL's rpo_alpha): DPO alone can lower both replies
    nll_weight: float = 0.0

    def __post_init__(self) -> None:
        _check(bool(self.data), "dpo.data: a JSONL file")
        _check(self.nll_weight >= 0, "dpo.nll_weight must be >= 0")
        _check(not self.heldout or _resolved(self.heldout) != _resolved(self.data), "dpo.heldout is dpo.data")
        _check(self.beta > 0, "dpo.beta must be positive")
        _check(self.reference in ("model", "precomputed"), "dpo.reference: model or precomputed")


@dataclass
class RLConfig:
    """GRPO-family RL with verifiable rewards (train/rl_objective.py cites the paper behind each option).

    The batch section counts completions: `batch.global_batch_size` = prompts per step x group_size.
    """

    data: str = ""  # JSONL of problems with tests (train/rl_data.py: asserts, stdio or doctest style)
    corpus: str = ""  # or code (JSONL of {"text"}, a .py file, a directory): doctest problems from it
    corpus_problems: int = 500  # at most this many derived problems
    group_size: int = 8  # G completions per prompt (GRPO: 64, DAPO: 16)
    max_new_tokens: int = 256  # max completion length
    temperature: float = 1.0
    top_p: float = 1.0
    prompt_format: str = "completion"  # completion (the prompt as is) | chat (one user turn)
    reward: str = "pass"  # pass (all tests) | fraction (of tests passed) | module:function
    format_reward: float = 0.0  # weight of the reasoning-template reward (<think>...</think> answer)
    clip_low: float = 0.2  # ratio clipped to [1 - clip_low, 1 + clip_high] (PPO / GRPO: 0.2)
    clip_high: float = 0.2  # DAPO's clip-higher: 0.28
    kl_coef: float = 0.0  # KL penalty against the frozen start (GRPO: 0.04); 0 loads no reference
    loss_norm: str = "token"  # token (DAPO) | sequence (GRPO) | constant (Dr. GRPO)
    scale_rewards: bool = True  # divide advantages by the group's std (GRPO); false: Dr. GRPO
    filter_equal_groups: bool = False  # drop groups whose rewards are all equal (DAPO dynamic sampling)
    overlong_buffer: int = 0  # DAPO soft overlong punishment over the last N tokens (0: off)
    overlong_penalty: float = 1.0  # the punishment at max_new_tokens
    mask_truncated: bool = False  # no loss on completions cut at max_new_tokens (DAPO overlong filter)
    epochs: int = 1  # optimizer steps on each batch of samples (GRPO's mu)
    generation_batch: int = 64  # completions decoded together by the engine
    workers: int = 2  # sandbox workers scoring completions
    timeout: float = 5.0  # seconds per test program
    allow_code_execution: bool = False  # the rewards run model-written code in the sandbox: opt in
    shuffle: bool = True

    def __post_init__(self) -> None:
        _check(bool(self.data) != bool(self.corpus), "rl: data (problems) or corpus (code), exactly one")
        _check(self.corpus_problems > 0, "rl.corpus_problems > 0")
        _check(self.group_size >= 2, "rl.group_size >= 2 (advantages are relative to the group)")
        _check(self.max_new_tokens > 0 and self.temperature > 0, "rl.max_new_tokens and temperature > 0")
        _check(0 < self.top_p <= 1, "rl.top_p in (0, 1]")
        _check(self.prompt_format in ("completion", "chat"), "rl.prompt_format: completion or chat")
        _check(
            self.reward in ("pass", "fraction") or ":" in self.reward,
            f"rl.reward: pass, fraction or module:function, got {self.reward!r}",
        )
        _check(0 <= self.clip_low < 1 and self.clip_high >= 0, "rl.clip_low in [0, 1), rl.clip_high >= 0")
        _check(self.kl_coef >= 0 and self.format_reward >= 0, "rl.kl_coef and rl.format_reward >= 0")
        _check(
            self.loss_norm in ("token", "sequence", "constant"), "rl.loss_norm: token, sequence or constant"
        )
        _check(0 <= self.overlong_buffer < self.max_new_tokens, "rl.overlong_buffer in [0, max_new_tokens)")
        _check(self.epochs >= 1 and self.workers >= 1 and self.timeout > 0, "rl.epochs, workers, timeout > 0")
        _check(self.generation_batch >= 1, "rl.generation_batch >= 1")


@dataclass
class BatchConfig:
    seq_len: int = 2048  # tokens per row
    micro_batch_size: int = 1  # rows (DPO: pairs) per forward pass per process
    global_batch_size: int = 8  # rows (pairs) per optimizer step, or tokens when unit is "tokens"
    unit: str = "sequences"  # sequences | tokens

    def __post_init__(self) -> None:
        _check(
            self.seq_len > 1 and self.micro_batch_size > 0 and self.global_batch_size > 0, "batch sizes > 0"
        )
        _check(self.unit in ("sequences", "tokens"), "batch.unit: sequences or tokens")
        _check(
            self.unit == "sequences" or self.global_batch_size % self.seq_len == 0,
            "batch.global_batch_size in tokens must be a multiple of seq_len",
        )

    @property
    def global_sequences(self) -> int:
        return self.global_batch_size if self.unit == "sequences" else self.global_batch_size // self.seq_len

    def accumulation(self, world: int) -> int:
        """Micro-batches per process per step; the global batch must split evenly."""
        per = self.micro_batch_size * world
        if self.global_sequences % per:
            raise ConfigError(
                f"bad train config: global batch of {self.global_sequences} does not split into micro-batches"
                f" of {self.micro_batch_size} on {world} process(es)"
            )
        return self.global_sequences // per


OPTIMIZERS = ("adamw", "muon")  # train/optim.py


@dataclass
class OptimConfig:
    name: str = "adamw"  # adamw | muon (Muon for the hidden matrices, AdamW for the rest: train/optim.py)
    lr: float = 3e-4  # peak learning rate
    min_lr_ratio: float = 0.1  # decay floor, as a fraction of lr
    warmup_steps: int = 0
    decay: str = "cosine"  # cosine | linear | constant
    weight_decay: float = 0.1  # on matrices only, never on norms and biases
    betas: list[float] = field(default_factory=lambda: [0.9, 0.95])
    eps: float = 1e-8
    grad_clip: float = 1.0  # max global gradient norm (0 = off)
    fused: bool = True  # fused AdamW kernel (torch >= 2.8 on CPU and CUDA; what HF Trainer defaults to)
    muon_momentum: float = 0.95  # Muon's Nesterov momentum (optim.name: muon)

    def __post_init__(self) -> None:
        _check(self.name in OPTIMIZERS, f"optim.name: one of {OPTIMIZERS}")
        _check(0 <= self.muon_momentum < 1, "optim.muon_momentum in [0, 1)")
        _check(self.lr > 0 and 0 <= self.min_lr_ratio <= 1, "optim.lr > 0 and optim.min_lr_ratio in [0, 1]")
        _check(self.decay in DECAYS, f"optim.decay: one of {DECAYS}")
        _check(
            len(self.betas) == 2 and self.warmup_steps >= 0 and self.grad_clip >= 0, "optim.betas/warmup/clip"
        )


@dataclass
class RunConfig:
    out_dir: str = "runs/train"
    max_steps: int = 100
    seed: int = 0
    precision: str = "fp32"  # fp32 | bf16 (autocast, fp32 master weights) | auto (bf16 where fast)
    compile: bool = False  # torch.compile forward + loss (the first step pays the compilation)
    save_every: int = 0  # checkpoint every N steps (0: only at the end)
    keep_checkpoints: int = 2  # newest checkpoints kept
    log_every: int = 1
    deterministic: bool = True  # torch.use_deterministic_algorithms
    threads: int | None = None  # CPU threads for torch
    device: str | None = None  # cpu to force the CPU; default: whatever accelerate finds
    peak_tflops: float | None = None  # MFU peak per device (default: GPU table, else measured here)
    eval_every: int = 0  # held-out loss every N steps (0: only before the first and after the last)
    eval_rows: int = 64  # held-out rows (DPO: pairs) scored, the first ones of the held-out data
    tensorboard: bool = True  # also log to TensorBoard when it is installed
    plot: bool = True  # write loss.png at the end (needs matplotlib)

    def __post_init__(self) -> None:
        _check(self.max_steps > 0 and self.save_every >= 0 and self.log_every > 0, "run step counts")
        _check(self.precision in ("fp32", "bf16", "auto"), "run.precision: fp32, bf16 or auto")
        _check(self.keep_checkpoints >= 1, "run.keep_checkpoints >= 1")
        _check(self.eval_every >= 0 and self.eval_rows > 0, "run.eval_every >= 0 and run.eval_rows > 0")


SECTIONS = {"model": ModelConfig, "batch": BatchConfig, "optim": OptimConfig, "run": RunConfig}
STAGE_SECTIONS = {"pretrain": PretrainConfig, "sft": SFTConfig, "dpo": DPOConfig, "rl": RLConfig}


@dataclass
class TrainConfig:
    stage: str
    model: ModelConfig
    data: PretrainConfig | SFTConfig | DPOConfig | RLConfig  # the section named after the stage
    batch: BatchConfig = field(default_factory=BatchConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def __post_init__(self) -> None:
        _check(self.stage in STAGES, f"stage: one of {STAGES}")
        _check(isinstance(self.data, STAGE_SECTIONS[self.stage]), f"the {self.stage} section")
        if self.stage == "dpo":
            _check(self.model.init_from is not None, "DPO starts from a trained checkpoint (model.init_from)")
        if self.stage == "rl":
            _check(self.model.init_from is not None, "RL starts from a trained checkpoint (model.init_from)")
            group = self.data.group_size
            _check(
                self.batch.unit == "sequences" and self.batch.global_batch_size % group == 0,
                f"rl: batch.global_batch_size counts completions, a multiple of rl.group_size ({group})",
            )

    def to_dict(self) -> dict[str, Any]:
        """The resolved config, as YAML would hold it (stage section under its own name)."""
        out = {
            "stage": self.stage,
            "model": dataclasses.asdict(self.model),
            self.stage: dataclasses.asdict(self.data),
        }
        out.update({k: dataclasses.asdict(getattr(self, k)) for k in ("batch", "optim", "run")})
        return out


def _unknown(what: str, name: str, choices: list[str]) -> ConfigError:
    hint = did_you_mean(name, choices)
    return ConfigError(f"bad train config: unknown {what} {name!r}{hint} (choices: {', '.join(choices)})")


def config_from_dict(raw: dict[str, Any], where: str = "train config") -> TrainConfig:
    """A `TrainConfig` from a raw mapping (a stage YAML, or a recipe stage the runner completed)."""
    raw = dict(raw)
    stage = raw.pop("stage", None)
    if stage not in STAGES:
        raise _unknown("stage", str(stage), list(STAGES))
    for key in raw:
        if key not in SECTIONS and key != stage:
            raise _unknown("section", key, [*SECTIONS, stage])
    parts = {name: build(cls, raw.get(name), f"{where}: {name}") for name, cls in SECTIONS.items()}
    data = build(STAGE_SECTIONS[stage], raw.get(stage), f"{where}: {stage}")
    return TrainConfig(stage=stage, data=data, **parts)


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> TrainConfig:
    """Parse a stage YAML (or nothing, with `path=None`) and apply `--set` overrides."""
    raw: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"train config {p} does not exist")
        raw = read_yaml(p, "train config")
    for o in overrides or []:
        set_override(raw, o)
    return config_from_dict(expand(raw))
