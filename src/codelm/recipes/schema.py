"""The recipe file: one YAML describing a model's whole path, validated into small dataclasses.

    name: seed-coder-8b
    model: {family: seedcoder, size: 8b}                 # or init_from: a checkpoint / hub id
    tokenizer: {from: ByteDance-Seed/Seed-Coder-8B-Base} # or train: {vocab_size: 32000}
    data: {curate: configs/data/....yaml, pack: {fim_rate: 0.5}}
    stages:
      - {name: pretrain, kind: pretrain, tokens: 6.0e12, seq_len: 8192, lr: 3.0e-4, fim_rate: 0.5}
      - {name: sft, kind: sft, data: ..., epochs: 3, ...}
    eval: {tasks: [humaneval, mbpp], n: 1, temperature: 0.0}
    serve: {port: 8000}
    hardware: {gpu: h100, gpus: 512, mfu: 0.45, zero: 1}
    scales: {tiny: {...overrides applied by --scale tiny...}}

Planning fields (`tokens`, `hardware`) feed `codelm run --dry-run`; `train` holds the stage's
`codelm train` sections verbatim (batch, optim, run, ...), so the runner hands them on unchanged.
`--scale NAME` deep-merges `scales[NAME]` over the recipe before validation, so a tiny run keeps
the exact stage structure of the real one.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from codelm.errors import CodelmError

KINDS = ("pretrain", "sft", "dpo")


def _check(ok: bool, msg: str) -> None:
    if not ok:
        raise CodelmError(f"bad recipe: {msg}")


def _only(raw: dict[str, Any], allowed: set[str], where: str) -> None:
    import difflib

    for key in raw:
        if key not in allowed:
            close = difflib.get_close_matches(key, sorted(allowed), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise CodelmError(f"bad recipe: unknown key {key!r} in {where}{hint}")


@dataclass
class ModelSpec:
    family: str
    size: str = "tiny"  # a real size of the family (its published config) or "tiny"
    init_from: str | None = None  # continue from this checkpoint (Stable Code from Stable LM 3B)
    overrides: dict[str, Any] = field(default_factory=dict)  # config fields, e.g. num_hidden_layers


@dataclass
class StageSpec:
    name: str
    kind: str  # pretrain (also FIM and long context) | sft | dpo
    tokens: float | None = None  # training tokens, for planning
    seq_len: int = 2048
    data: str | None = None  # SFT/DPO JSONL, or a derivation name (see recipes/derive.py)
    epochs: float | None = None  # SFT/DPO passes over their data
    fim_rate: float = 0.0
    fim_spm_rate: float | None = None
    rope_theta: float | None = None  # long context: a new RoPE base
    warmup_fraction: float | None = None  # warmup as a share of the stage's steps (SFT: 10%)
    train: dict[str, Any] = field(default_factory=dict)  # extra `codelm train` sections, verbatim

    def __post_init__(self) -> None:
        for key in ("tokens", "rope_theta", "epochs"):  # YAML 1.1 reads 6.0e12 (no exponent sign) as text
            value = getattr(self, key)
            if isinstance(value, str):
                try:
                    setattr(self, key, float(value))
                except ValueError:
                    raise CodelmError(f"bad recipe: stage {self.name}: {key} must be a number") from None
        _check(self.kind in KINDS, f"stage {self.name}: kind must be one of {KINDS}")
        _check(self.tokens is None or self.tokens > 0, f"stage {self.name}: tokens must be positive")
        _check(self.seq_len > 1, f"stage {self.name}: seq_len must be > 1")
        _check(0 <= self.fim_rate <= 1, f"stage {self.name}: fim_rate in [0, 1]")


@dataclass
class HardwareSpec:
    gpu: str = "h100"  # a key of codelm.train.metrics.PEAK_TFLOPS
    gpus: int = 8
    mfu: float = 0.45  # assumed model FLOPs utilization for the plan
    zero: int = 1  # ZeRO stage (0-3) or FSDP full sharding (3) for the memory estimate
    tensor_parallel: int = 1

    def __post_init__(self) -> None:
        _check(self.gpus >= 1 and 0 < self.mfu <= 1, "hardware: gpus >= 1 and mfu in (0, 1]")
        _check(self.zero in (0, 1, 2, 3), "hardware.zero must be 0, 1, 2 or 3")
        _check(self.gpus % self.tensor_parallel == 0, "hardware: gpus must divide by tensor_parallel")


@dataclass
class Recipe:
    name: str
    model: ModelSpec
    stages: list[StageSpec]
    description: str = ""
    tokenizer: dict[str, Any] = field(default_factory=dict)  # {from: dir/id} or {train: {...}}
    data: dict[str, Any] = field(default_factory=dict)  # {curate: yaml/mapping, pack: {...}}
    eval: dict[str, Any] = field(default_factory=dict)
    serve: dict[str, Any] = field(default_factory=dict)
    hardware: HardwareSpec = field(default_factory=HardwareSpec)
    sources: list[str] = field(default_factory=list)  # where each number comes from

    def __post_init__(self) -> None:
        _check(bool(self.stages), "at least one stage")
        names = [s.name for s in self.stages]
        _check(len(set(names)) == len(names), f"stage names must be unique: {names}")

    def stage(self, name: str) -> StageSpec:
        for s in self.stages:
            if s.name == name:
                return s
        raise CodelmError(
            f"recipe {self.name} has no stage {name!r} (stages: {[s.name for s in self.stages]})"
        )


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if k == "stages" and isinstance(v, dict):  # scale overrides stages by name
            by_name = {s["name"]: s for s in out["stages"]}
            for name, patch in v.items():
                _check(name in by_name, f"scale overrides unknown stage {name!r}")
                by_name[name].update(_merge(by_name[name], patch))
        elif isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def parse_recipe(raw: dict[str, Any], scale: str | None = None) -> Recipe:
    """Validate a recipe mapping; `scale` applies `scales[scale]` first."""
    raw = dict(raw)
    scales = raw.pop("scales", {}) or {}
    if scale:
        _check(scale in scales, f"no scale {scale!r} (scales: {sorted(scales) or 'none'})")
        raw = _merge(raw, scales[scale])
    top = {
        "name",
        "description",
        "model",
        "tokenizer",
        "data",
        "stages",
        "eval",
        "serve",
        "hardware",
        "sources",
    }
    _only(raw, top, "the recipe")
    model = raw.get("model") or {}
    _only(model, {"family", "size", "init_from", "overrides"}, "model")
    stage_keys = set(StageSpec.__dataclass_fields__)
    stages = []
    for s in raw.get("stages") or []:
        _only(s, stage_keys, f"stage {s.get('name', '?')}")
        stages.append(StageSpec(**s))
    hw = raw.get("hardware") or {}
    _only(hw, set(HardwareSpec.__dataclass_fields__), "hardware")
    _check("family" in model, "model.family is required")
    return Recipe(
        name=raw.get("name") or "recipe",
        description=raw.get("description", ""),
        model=ModelSpec(**model),
        stages=stages,
        tokenizer=raw.get("tokenizer") or {},
        data=raw.get("data") or {},
        eval=raw.get("eval") or {},
        serve=raw.get("serve") or {},
        hardware=HardwareSpec(**hw),
        sources=list(raw.get("sources") or []),
    )


def load_recipe(path: str | Path, scale: str | None = None) -> Recipe:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise CodelmError(f"cannot read recipe {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise CodelmError(f"recipe {path} is not valid YAML: {exc}") from exc
    _check(isinstance(raw, dict), f"{path} must hold a mapping")
    return parse_recipe(raw, scale)
