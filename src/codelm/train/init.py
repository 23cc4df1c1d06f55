"""Model init: any family's architecture at any size, or continue from a checkpoint.

New models take the family's real config (`codelm.models.sizes`) or its tiny one, with the vocabulary
of the training tokenizer (padded to a multiple of 64, as real checkpoints pad theirs: CodeGen's 51200).
Continuing from a checkpoint is how Stable Code 3B began (from Stable LM 3B) and how every later stage
starts; when the tokenizer grew (new special tokens), the embeddings are resized with the mean of the
old rows (transformers' `mean_resizing`), so new tokens start as an average token, not noise. The
long-context stage may change `rope_theta` and the context length here: both are config fields, so the
rotary tables are rebuilt from them when the model is built. CodeGen's rotary base is fixed at 10000 in
its modeling code, so it refuses a new theta instead of silently ignoring it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, GenerationConfig, PretrainedConfig

from codelm.errors import CodelmError
from codelm.models.detect import detect_family
from codelm.models.registry import Family, get_family
from codelm.models.sizes import size_config
from codelm.models.tiny import tiny_config
from codelm.models.vocab import token_id
from codelm.train.config import ModelConfig


def resolve_family(cfg: ModelConfig) -> Family:
    if cfg.family:
        return get_family(cfg.family)
    return detect_family(cfg.init_from)


def load_tokenizer(cfg: ModelConfig) -> Any:
    source = cfg.tokenizer or cfg.init_from
    if source is None:
        raise CodelmError("a new model needs model.tokenizer (train one with `codelm tokenizer train`)")
    if not Path(source, "tokenizer_config.json").is_file() and not Path(source, "tokenizer.json").is_file():
        raise CodelmError(f"no tokenizer in {source}")
    return AutoTokenizer.from_pretrained(source)


def special_ids(tokenizer: Any, family: Family) -> dict[str, int]:
    spec = family.tokenizer
    # by spelling: CodeGen1's <|endoftext|> is bos, eos, pad and unk at once, and is present
    ids = {k: token_id(tokenizer, getattr(spec, k)) for k in ("bos", "eos", "pad")}
    missing = [getattr(spec, k) for k, v in ids.items() if v is None]
    if missing:
        raise CodelmError(f"the tokenizer lacks {family.name}'s special tokens {missing}")
    return ids


def context_length(config: PretrainedConfig) -> int:
    return int(getattr(config, "max_position_embeddings", None) or config.n_positions)


def _adjust(config: PretrainedConfig, cfg: ModelConfig, family: Family) -> None:
    for key, value in cfg.overrides.items():
        if not hasattr(config, key):
            raise CodelmError(f"model.overrides: {type(config).__name__} has no field {key!r}")
        setattr(config, key, value)
    if cfg.max_position_embeddings:
        config.max_position_embeddings = cfg.max_position_embeddings
        if config.model_type == "codegen":
            config.n_ctx = cfg.max_position_embeddings
    if cfg.rope_theta is not None:
        rope = getattr(config, "rope_parameters", None)
        if not isinstance(rope, dict) or "rope_theta" not in rope:
            raise CodelmError(f"{family.name} ({config.model_type}) has no configurable rope_theta")
        config.rope_parameters = {**rope, "rope_theta": float(cfg.rope_theta)}


def _kwargs(cfg: ModelConfig) -> dict[str, Any]:
    return {"attn_implementation": cfg.attn_implementation} if cfg.attn_implementation else {}


def padded_vocab(n: int, multiple: int = 64) -> int:
    return -(-n // multiple) * multiple


def new_model_config(
    cfg: ModelConfig, family: Family, tokenizer_size: int, ids: dict[str, int] | None = None
) -> PretrainedConfig:
    """The config of a new (randomly initialised) model for a tokenizer of `tokenizer_size` tokens:
    what `build_model` builds and what `codelm run --dry-run` plans, so both count the same."""
    ids = ids or {"bos": 0, "eos": 1, "pad": 2}
    vocab = padded_vocab(tokenizer_size)
    if cfg.size == "tiny":
        config = tiny_config(family, vocab, ids)
    else:
        config = size_config(family, cfg.size)
        config.vocab_size = vocab
    _adjust(config, cfg, family)
    return config


def build_model(cfg: ModelConfig, tokenizer: Any, family: Family, seq_len: int) -> torch.nn.Module:
    """The model to train, in fp32 (mixed precision autocasts on top), ready for `seq_len` rows."""
    ids = special_ids(tokenizer, family)
    if cfg.init_from:
        config = AutoConfig.from_pretrained(cfg.init_from)
        _adjust(config, cfg, family)
        model = AutoModelForCausalLM.from_pretrained(
            cfg.init_from, config=config, dtype=torch.float32, **_kwargs(cfg)
        )
        rows = model.get_input_embeddings().weight.shape[0]
        if len(tokenizer) > rows:  # the tokenizer grew: new rows start at the mean embedding
            model.resize_token_embeddings(padded_vocab(len(tokenizer)), mean_resizing=True)
    else:
        config = new_model_config(cfg, family, len(tokenizer), ids)
        if config.vocab_size < len(tokenizer):
            raise CodelmError(
                f"vocab_size {config.vocab_size} is smaller than the tokenizer ({len(tokenizer)})"
            )
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32, **_kwargs(cfg))
    model.config.bos_token_id, model.config.eos_token_id, model.config.pad_token_id = (
        ids["bos"],
        ids["eos"],
        ids["pad"],
    )
    model.config.use_cache = True  # for whoever loads the output; training passes use_cache=False itself
    if seq_len > context_length(model.config):
        raise CodelmError(
            f"batch.seq_len {seq_len} exceeds the model's context of {context_length(model.config)}; "
            "raise model.max_position_embeddings (and model.rope_theta) for a long-context stage"
        )
    if cfg.gradient_checkpointing:  # transformers 5.23 renamed it; older 5.x only has the old name
        old = model.gradient_checkpointing_enable
        getattr(model, "activation_checkpointing_enable", old)()
    model.generation_config = generation_config(cfg, tokenizer, family, ids)
    return model


def generation_config(
    cfg: ModelConfig, tokenizer: Any, family: Family, ids: dict[str, int]
) -> GenerationConfig:
    """Stop on every family stop token, as `make_tiny` and the real checkpoints do."""
    names = [*family.stop_tokens, *(family.chat.stop_tokens if family.chat else ())]
    # absent tokens are skipped by spelling; "!= unk_token_id" dropped EOS where unk == eos (GPT-2)
    stops = [s for s in dict.fromkeys(token_id(tokenizer, t) for t in names) if s is not None]
    return GenerationConfig(bos_token_id=ids["bos"], eos_token_id=stops, pad_token_id=ids["pad"])
