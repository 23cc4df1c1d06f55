"""Tell which family a local HF checkpoint belongs to, from config.json and its special tokens.

model_type narrows it down (codegen, gemma, stablelm, llama); the tokenizer's special tokens decide
between families that share an architecture (Seed-Coder and our own Llama models) and confirm the
formats we would render. When the evidence is not there we say so rather than guess: a wrong family
means silently wrong FIM prompts.
"""

from __future__ import annotations

import json
from pathlib import Path

from codelm.errors import CheckpointError
from codelm.models.registry import Family, get_family


def checkpoint_special_tokens(path: str | Path) -> set[str]:
    """Every added/special token string a checkpoint's tokenizer files declare."""
    path = Path(path)
    found: set[str] = set()
    tj = path / "tokenizer.json"
    if tj.is_file():
        for t in json.loads(tj.read_text(encoding="utf-8")).get("added_tokens", []):
            found.add(t["content"])
    tc = path / "tokenizer_config.json"
    if tc.is_file():
        cfg = json.loads(tc.read_text(encoding="utf-8"))
        for t in (cfg.get("added_tokens_decoder") or {}).values():
            found.add(t["content"])
        for key in ("bos_token", "eos_token", "pad_token", "unk_token"):
            v = cfg.get(key)
            if isinstance(v, dict):
                v = v.get("content")
            if isinstance(v, str):
                found.add(v)
        for v in [*(cfg.get("additional_special_tokens") or []), *(cfg.get("extra_special_tokens") or [])]:
            found.add(v["content"] if isinstance(v, dict) else v)
    at = path / "added_tokens.json"
    if at.is_file():
        found.update(json.loads(at.read_text(encoding="utf-8")))
    return found


def _has_fim(family: Family, tokens: set[str]) -> bool:
    return family.fim is not None and all(s in tokens for s in family.fim.sentinels)


def detect_family(path: str | Path) -> Family:
    """The family of the checkpoint directory `path`, or a CheckpointError saying why not."""
    path = Path(path)
    cfg_file = path / "config.json"
    if not cfg_file.is_file():
        raise CheckpointError(f"cannot detect the model family: {path} has no config.json")
    model_type = json.loads(cfg_file.read_text(encoding="utf-8")).get("model_type")
    tokens = checkpoint_special_tokens(path)
    hint = "; pass --family NAME to choose one"
    if model_type == "codegen":
        return get_family("codegen1")
    if model_type == "gemma":
        fam = get_family("codegemma")
        if _has_fim(fam, tokens):
            return fam
        raise CheckpointError(f"{path} is a Gemma model without CodeGemma's FIM tokens{hint}")
    if model_type == "stablelm":
        fam = get_family("stablecode")
        if _has_fim(fam, tokens):
            return fam
        raise CheckpointError(f"{path} is a StableLM model without Stable Code's FIM tokens{hint}")
    if model_type == "llama":
        seed = get_family("seedcoder")
        if _has_fim(seed, tokens) or seed.tokenizer.bos in tokens:
            return seed
        ours = get_family("llama")
        if _has_fim(ours, tokens) and ours.tokenizer.bos in tokens:
            return ours
        raise CheckpointError(
            f"{path} is a Llama model whose tokens match neither Seed-Coder nor codelm's own format{hint}"
        )
    raise CheckpointError(
        f"cannot detect the model family of {path}: model_type {model_type!r} is not one of "
        f"codegen, gemma, stablelm, llama{hint}"
    )
