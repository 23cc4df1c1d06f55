"""The recipe file: one YAML describing a model's whole path, each section the pillar's own config.

    name: seed-coder-8b
    model: {family: seedcoder, size: 8b, seed: 0}         # or init_from: a checkpoint / hub id
    tokenizer: {from: ByteDance-Seed/Seed-Coder-8B-Base}  # or train: {vocab_size: 32000}
    data: {curate: {...CurateConfig...}, pack: {...PackConfig...}, heldout_fraction: 0.02,
           sources: [{name: docs, tokens: 1.2e12, curate: {...CurateConfig...}, enabled: false}]}
    stages:
      - {name: pretrain, kind: pretrain, tokens: 6.0e12, seq_len: 8192, fim_rate: 0.5,
         train: {optim: {lr: 3.0e-4}, batch: {...}, run: {...}}}   # sections of `codelm train`'s YAML
    eval: {tasks: [humaneval, mbpp], n: 1, temperature: 0.0}     # EvalConfig (`codelm eval`)
    eval_chat: {tasks: [docstring-to-function]}                  # optional: the same, in chat mode
    serve: {port: 8000}                                          # ServeConfig (`codelm serve`)
    hardware: {gpu: h100, gpus: 512, mfu: 0.45, zero: 1}
    scales: {tiny: {...overrides applied by --scale tiny...}}
    auto_scales: {native-bf16: wide}   # without --scale: this scale where bf16 is native (see below)

Each section is parsed by the project's one config layer (`codelm.config`) into the type the pillar's
own command uses: `data.curate` is a `CurateConfig` (`codelm data curate`), `data.pack` a
`PackConfig` (`codelm data pack`), `tokenizer.train` a `TokenizerTrainConfig`, each stage's `train`
plus what the runner fills in (starting checkpoint, tokenizer, shards, steps from `tokens`) a
`TrainConfig` (`codelm train`), `eval` an `EvalConfig` and `serve` a `ServeConfig`. Every key is
read or rejected when the recipe loads, with a "did you mean", including each stage's complete
training config (built with placeholder paths). `--scale NAME` deep-merges `scales[NAME]` over the
recipe before validation, so a tiny run keeps the exact stage structure of the real one.
`auto_scales` names a scale `codelm run` applies by itself when no `--scale` is given and the machine
meets the condition: `native-bf16` (training's `run.precision: auto` resolves to bf16: AVX512-BF16 or
AMX CPUs, bf16 GPUs), where the same minutes train about twice the FLOPs, so a recipe sized for the
slower machines can spend them (`--no-auto-scale` keeps the recipe as written). Strings
may use `${stdlib}`, `${site_packages}`, `${benchmarks}` (the run's benchmark directory) and
environment variables; at load time, names not known yet stay as written.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from codelm.config import ConfigError, build, check_keys, expand, read_yaml
from codelm.data.pack import PackConfig
from codelm.eval.config import EvalConfig
from codelm.serve.config import ServeConfig
from codelm.train.config import TrainConfig, config_from_dict
from codelm.train.tokenizer import TokenizerTrainConfig

KINDS = ("pretrain", "sft", "dpo", "rl")
# data the runner derives from the corpus (recipes/derive.py), and the kind of stage each one feeds
DERIVATIONS = {"derive:sft": "sft", "derive:dpo": "dpo", "derive:functions": "pretrain"}


def _check(ok: bool, msg: str) -> None:
    if not ok:
        raise ConfigError(f"bad recipe: {msg}")


@dataclass
class ModelSpec:
    family: str
    size: str = "tiny"  # a real size of the family (its published config) or "tiny"
    init_from: str | None = None  # continue from this checkpoint (Stable Code from Stable LM 3B)
    overrides: dict[str, Any] = field(default_factory=dict)  # config fields, e.g. num_hidden_layers
    seed: int = 0  # seed of the random initial weights


@dataclass
class TokenizerSpec:
    from_: str | None = field(default=None, metadata={"key": "from"})  # a tokenizer dir or hub id
    train: TokenizerTrainConfig | None = None  # train one on the curated corpus instead

    def __post_init__(self) -> None:
        _check(self.from_ is None or self.train is None, "tokenizer: `from` or `train`, not both")
        if self.from_ is None and self.train is None:
            self.train = TokenizerTrainConfig()


# what a curated `data.sources` entry feeds: the corpus (split, tokenizer, shards) or only the
# documents of `derive:functions`
SOURCE_USES = ("corpus", "functions")


@dataclass
class SourceSpec:
    """One part of the training data (`data.sources`): listed with its published size in the
    dry-run plan, and, when it has a `curate` section and is enabled, curated by the run beside
    `data.curate`. `use: corpus` (the default) mixes it into the same split, tokenizer and shards;
    `use: functions` keeps it out of them and adds its documented functions to the documents of a
    `derive:functions` stage (code shaped like the benchmarks' problems, of which the corpus alone
    holds too few; docs/recipes.md, "Function documents from codelm's dependencies")."""

    name: str
    tokens: float | None = None  # its size as published (unique tokens), for the plan's shares
    note: str = ""  # where the size comes from, or which config curates it
    curate: dict[str, Any] | None = None  # a CurateConfig; none: listed in the plan only
    enabled: bool = True  # a switch: `--set data.sources.NAME.enabled=true`
    use: str = "corpus"  # one of SOURCE_USES

    def __post_init__(self) -> None:
        _check(self.tokens is None or self.tokens > 0, f"data.sources {self.name}: tokens must be > 0")
        _check(
            self.use in SOURCE_USES,
            f"data.sources {self.name}: use must be one of {', '.join(SOURCE_USES)}, got {self.use!r}",
        )

    @property
    def curated(self) -> bool:
        return bool(self.curate) and self.enabled


@dataclass
class DataSpec:
    curate: dict[str, Any] = field(default_factory=dict)  # a CurateConfig (output_dir set by the runner)
    pack: PackConfig = field(default_factory=PackConfig)
    heldout_fraction: float = 0.02  # documents held out (by a hash of their id) for perplexity
    sources: list[SourceSpec] = field(default_factory=list)  # the corpus's parts (see SourceSpec)

    def __post_init__(self) -> None:
        _check(0 < self.heldout_fraction < 1, "data.heldout_fraction must be in (0, 1)")
        names = [s.name for s in self.sources]
        _check(len(set(names)) == len(names), f"data.sources names must be unique: {names}")
        _check(all(n and "/" not in n for n in names), f"data.sources names must be plain words: {names}")

    def source_config(self, source: SourceSpec, output_dir: str | Path, variables=None, *, lenient=False):
        """The `CurateConfig` of an extra source, writing into `output_dir`."""
        where = f"recipe data.sources {source.name}"
        return _curate_config(source.curate or {}, output_dir, variables, where, lenient)

    def curate_config(
        self, output_dir: str | Path, variables: dict[str, str] | None = None, *, lenient: bool = False
    ):
        """The `CurateConfig` of this section, writing into `output_dir`."""
        return _curate_config(self.curate, output_dir, variables, "recipe data.curate", lenient)


def _curate_config(
    section: dict[str, Any],
    output_dir: str | Path,
    variables: dict[str, str] | None,
    where: str,
    lenient: bool,
):
    """A recipe's curate section as a `CurateConfig` writing into `output_dir`."""
    from codelm.data.curate_config import CurateConfig

    raw = {**copy.deepcopy(section), "output_dir": str(output_dir)}
    return CurateConfig.from_dict(raw, variables, where, lenient=lenient)


@dataclass
class StageSpec:
    name: str
    kind: str  # pretrain (also FIM and long context) | sft | dpo | rl
    tokens: float | None = None  # training tokens, for planning and the step count (rl: sampled ones)
    seq_len: int = 2048
    # SFT/DPO/RL JSONL, or a derivation (DERIVATIONS; derive:functions: pretraining on its own shards)
    data: str | None = None
    # SFT/DPO/RL passes over their data (RL: over the problems; SFT: replayed rows come on top)
    epochs: float | None = None
    fim_rate: float = 0.0
    fim_spm_rate: float | None = None
    fim_line_rate: float = 0.0  # share of FIM examples whose middle is whole lines (train/fim.py)
    rope_theta: float | None = None  # long context: a new RoPE base
    warmup_fraction: float | None = None  # warmup as a share of the stage's steps (SFT: 10%)
    # DPO: up to this many self-play infilling problems, whose wrong infills by the model the stage
    # starts from become pairs beside `data` (recipes/derive.py, SPIN); needs derive:functions
    self_play: int = 0
    train: dict[str, Any] = field(default_factory=dict)  # `codelm train` sections (checked at load)

    def __post_init__(self) -> None:
        _check(self.kind in KINDS, f"stage {self.name}: kind must be one of {KINDS}")
        _check(self.tokens is None or self.tokens > 0, f"stage {self.name}: tokens must be positive")
        _check(self.seq_len > 1, f"stage {self.name}: seq_len must be > 1")
        _check(0 <= self.fim_rate <= 1, f"stage {self.name}: fim_rate in [0, 1]")
        _check(0 <= self.fim_line_rate <= 1, f"stage {self.name}: fim_line_rate in [0, 1]")
        _check(self.self_play >= 0, f"stage {self.name}: self_play must be >= 0")
        _check(not self.self_play or self.kind == "dpo", f"stage {self.name}: self_play is for dpo stages")


@dataclass
class HardwareSpec:
    gpu: str = "h100"  # a GPU of codelm.train.gpus (peak TFLOP/s and memory known)
    gpus: int = 8
    mfu: float = 0.45  # assumed model FLOPs utilization for the plan
    zero: int = 1  # ZeRO stage (0-3) or FSDP full sharding (3) for the memory estimate
    tensor_parallel: int = 1

    def __post_init__(self) -> None:
        from codelm.train.gpus import MEMORY_GIB, PEAK_TFLOPS

        known = sorted(set(PEAK_TFLOPS) & set(MEMORY_GIB))
        _check(self.gpu in known, f"hardware.gpu {self.gpu!r} is not known here (known: {', '.join(known)})")
        _check(self.gpus >= 1 and 0 < self.mfu <= 1, "hardware: gpus >= 1 and mfu in (0, 1]")
        _check(self.zero in (0, 1, 2, 3), "hardware.zero must be 0, 1, 2 or 3")
        _check(self.gpus % self.tensor_parallel == 0, "hardware: gpus must divide by tensor_parallel")


@dataclass
class StagePaths:
    """What the runner fills into a stage's training config (placeholders when validating)."""

    init_from: str  # the previous stage's final checkpoint, or the initial weights
    tokenizer: str
    shards: str
    out_dir: str
    data: str | None = None  # SFT/DPO JSONL, resolved
    records: int = 1  # records in `data` (SFT/DPO step count)
    context: int = 0  # the starting checkpoint's context length (long-context stages grow it)
    heldout_shards: str | None = None  # the held-out split's shards: pretraining's held-out loss
    heldout: str | None = None  # SFT/DPO: a held-out JSONL of the stage's format (held-out loss)
    corpus_shards: str | None = None  # the run's pretraining shards, what `replay_fraction` replays


@dataclass
class Recipe:
    name: str
    model: ModelSpec
    stages: list[StageSpec]
    description: str = ""
    tokenizer: TokenizerSpec = field(default_factory=TokenizerSpec)
    data: DataSpec = field(default_factory=DataSpec)
    eval: EvalConfig = field(default_factory=EvalConfig)
    eval_chat: EvalConfig | None = None  # a second evaluation in chat mode (instruction tasks)
    serve: ServeConfig = field(default_factory=ServeConfig)
    hardware: HardwareSpec = field(default_factory=HardwareSpec)
    sources: list[str] = field(default_factory=list)  # where each number comes from

    def __post_init__(self) -> None:
        _check(bool(self.stages), "at least one stage")
        names = [s.name for s in self.stages]
        _check(len(set(names)) == len(names), f"stage names must be unique: {names}")
        if self.eval_chat is not None:
            self.eval_chat.mode = "chat"  # the section exists to evaluate in chat mode
        reserved = {"before", "after"} & set(names)
        _check(not reserved, f"stage names {sorted(reserved)} are reserved for the evaluations")

    def stage(self, name: str) -> StageSpec:
        for s in self.stages:
            if s.name == name:
                return s
        raise ConfigError(
            f"recipe {self.name} has no stage {name!r} (stages: {[s.name for s in self.stages]})"
        )

    def train_config(self, stage: StageSpec, paths: StagePaths) -> TrainConfig:
        """The stage's complete `codelm train` config: its `train` sections plus the runner's paths."""
        return config_from_dict(stage_raw(stage, paths), f"recipe stage {stage.name}")

    def validate(self) -> None:
        """Build every section the runner will build, with placeholder paths: any unknown or bad key
        fails at load time, not an hour into the run."""
        if self.data.curate:
            self.data.curate_config("<run>/data", lenient=True)
        for source in self.data.sources:
            if source.curated:
                self.data.source_config(source, f"<run>/data-{source.name}", lenient=True)
            if source.curated and source.use == "functions":
                _check(
                    any(s.data == "derive:functions" for s in self.stages),
                    f"data.sources {source.name} has use: functions but no stage trains on derive:functions",
                )
        for i, stage in enumerate(self.stages):
            data = stage.data
            if stage.self_play:
                _check(
                    any(s.data == "derive:functions" for s in self.stages),
                    f"stage {stage.name}: self_play infills the function documents, which need a "
                    "stage on derive:functions",
                )
            if data and data.startswith("derive:"):
                _check(data in DERIVATIONS, f"stage {stage.name}: unknown derivation {data}")
                _check(
                    DERIVATIONS[data] == stage.kind,
                    f"stage {stage.name}: {data} is data for a {DERIVATIONS[data]} stage, not {stage.kind}",
                )
            prev = "<init>" if i == 0 else f"<stage {self.stages[i - 1].name}>"
            placeholder = StagePaths(
                prev,
                "<tokenizer>",
                "<run>/shards",
                "<run>/stages",
                data or "<data>",
                heldout_shards="<run>/shards-heldout",
                corpus_shards="<run>/shards",
            )
            self.train_config(stage, placeholder)


def stage_raw(stage: StageSpec, paths: StagePaths) -> dict[str, Any]:
    """The raw `codelm train` mapping of one stage (planning fields turned into steps)."""
    train = copy.deepcopy(stage.train)
    batch = {"seq_len": stage.seq_len, **(train.pop("batch", None) or {})}
    batch.setdefault("micro_batch_size", 8)
    batch.setdefault("global_batch_size", 16)
    seqs = int(float(batch["global_batch_size"])) // (stage.seq_len if batch.get("unit") == "tokens" else 1)
    seqs = max(1, seqs)
    model = {"init_from": paths.init_from, "tokenizer": paths.tokenizer, **(train.pop("model", None) or {})}
    if stage.rope_theta:  # long context: a new RoPE base, and room for the longer rows
        model["rope_theta"] = stage.rope_theta
        model["max_position_embeddings"] = max(stage.seq_len, paths.context)
    run = {"out_dir": paths.out_dir, **(train.pop("run", None) or {})}
    if stage.kind == "pretrain":
        section: dict[str, Any] = {
            "shards": [paths.shards],
            "fim_rate": stage.fim_rate,
            "fim_spm_rate": stage.fim_spm_rate,
            "fim_line_rate": stage.fim_line_rate,
        }
        if paths.heldout_shards:
            section["heldout_shards"] = [paths.heldout_shards]
        steps = math.ceil(stage.tokens / (seqs * stage.seq_len)) if stage.tokens else None
    elif stage.kind == "rl":  # a step takes global_batch / group_size problems
        section = {"data": paths.data} if stage.data else {}  # else train.rl names a corpus
        group = int((train.get("rl") or {}).get("group_size", 8))
        steps = math.ceil((stage.epochs or 1) * paths.records / max(1, seqs // group))
    else:
        section = {"data": paths.data or ""}
        if paths.heldout:
            section["heldout"] = paths.heldout
        rows = paths.records * (2 if stage.kind == "dpo" else 1)
        steps = (stage.epochs or 1) * (rows if stage.kind == "sft" else paths.records) / seqs
        if stage.kind == "sft":  # epochs count passes over the SFT data: replayed rows come on top
            steps /= 1 - float((train.get("sft") or {}).get("replay_fraction") or 0)
        steps = math.ceil(steps)
    run.setdefault("max_steps", max(1, steps or 1))
    optim = train.pop("optim", None) or {}
    if stage.warmup_fraction is not None:
        optim.setdefault("warmup_steps", int(stage.warmup_fraction * run["max_steps"]))
    section.update(train.pop(stage.kind, None) or {})
    if section.get("replay_fraction") and not section.get("replay_shards"):
        section["replay_shards"] = [paths.corpus_shards or paths.shards]  # the run's own pretraining shards
    raw = {
        "stage": stage.kind,
        "model": model,
        stage.kind: section,
        "batch": batch,
        "optim": optim,
        "run": run,
    }
    raw.update(train)  # anything else is rejected by the train config, naming the key
    return raw


NAMED_LISTS = {"stages": "stage", "sources": "data source"}  # lists whose items a scale patches by name


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in over.items():
        named = isinstance(out.get(k), list) and all(isinstance(item, dict) for item in out[k])
        if k in NAMED_LISTS and isinstance(v, dict) and named:
            by_name = {s["name"]: s for s in out[k]}  # a scale overrides stages and sources by name
            for name, patch in v.items():
                _check(name in by_name, f"scale overrides unknown {NAMED_LISTS[k]} {name!r}")
                by_name[name].update(_merge(by_name[name], patch))
        elif isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


TOP_KEYS = [
    "name",
    "description",
    "model",
    "tokenizer",
    "data",
    "stages",
    "eval",
    "eval_chat",
    "serve",
    "hardware",
    "sources",
    "scales",
    "auto_scales",
]
AUTO_SCALE_CONDITIONS = ("native-bf16",)


def trains_in_bf16() -> bool:
    """Whether training here runs in bf16 under `run.precision: auto` (imports torch). Not
    `codelm.engine.cpu.native_bf16`, which asks whether bf16 decode pays on this CPU."""
    from codelm.train.loop import resolve_precision

    return resolve_precision("auto") == "bf16"


def check_auto_scales(raw: dict[str, Any]) -> dict[str, str]:
    """A recipe's `auto_scales` (condition -> scale name), every condition known and every scale defined."""
    auto = raw.get("auto_scales") or {}
    _check(isinstance(auto, dict), "auto_scales: a mapping of condition -> scale name")
    scales = raw.get("scales") or {}
    for condition, name in auto.items():
        _check(
            condition in AUTO_SCALE_CONDITIONS,
            f"auto_scales: unknown condition {condition!r} (known: {', '.join(AUTO_SCALE_CONDITIONS)})",
        )
        _check(
            isinstance(name, str) and name in scales,
            f"auto_scales: no scale {name!r} (scales: {sorted(scales) or 'none'})",
        )
    return auto


def auto_scale(raw: dict[str, Any], condition_met: Any = None) -> str | None:
    """The scale a recipe's `auto_scales` picks on this machine, or None. `condition_met(name)` decides
    each condition (default: measured here: `native-bf16` is `trains_in_bf16()`)."""
    met = condition_met or (lambda condition: trains_in_bf16())
    return next((name for condition, name in check_auto_scales(raw).items() if met(condition)), None)


def parse_recipe(raw: dict[str, Any], scale: str | None = None, overrides: list[str] | None = None) -> Recipe:
    """Validate a recipe mapping; `scale` applies `scales[scale]` first, then `--set` overrides."""
    from codelm.config import set_override

    _check(isinstance(raw, dict), "a recipe is a YAML mapping")
    check_keys(raw, TOP_KEYS, "the recipe")
    raw = dict(raw)
    check_auto_scales(raw)  # checked even where none applies (`codelm run` picks one: auto_scale)
    raw.pop("auto_scales", None)
    scales = raw.pop("scales", None) or {}
    if scale:
        _check(scale in scales, f"no scale {scale!r} (scales: {sorted(scales) or 'none'})")
        raw = _merge(raw, scales[scale])
    for assignment in overrides or []:
        set_override(raw, assignment)
    raw = expand(raw, lenient=True)  # names known only at run time stay as written
    _check(isinstance(raw.get("model"), dict) and "family" in raw["model"], "model.family is required")
    raw.setdefault("name", "recipe")
    recipe = build(Recipe, raw, "recipe")
    recipe.validate()
    return recipe


def load_recipe(path: str | Path, scale: str | None = None, overrides: list[str] | None = None) -> Recipe:
    return parse_recipe(read_yaml(path, "recipe"), scale, overrides)
