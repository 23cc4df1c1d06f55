"""Tiny offline checkpoints of every family: the fixtures for tests and demos.

No model hub is reachable here, so we build complete HF checkpoint directories ourselves: the
family's real architecture class with a tiny config and random weights, and a byte-level BPE trained
in seconds on the Python standard library's sources, carrying the family's special tokens, FIM
sentinels and chat template. `AutoModelForCausalLM` / `AutoTokenizer.from_pretrained(dir)` load it.

    codelm models make-tiny seedcoder /tmp/tiny-seedcoder
"""

from __future__ import annotations

import sysconfig
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig, AutoModelForCausalLM, GenerationConfig

from codelm.models.registry import Family, get_family
from codelm.models.tokenizer import save_tokenizer, train_tokenizer


def stdlib_sources(max_bytes: int = 2_000_000) -> Iterator[str]:
    """Python files of the installed standard library, in a fixed order, up to `max_bytes`."""
    root = Path(sysconfig.get_paths()["stdlib"])
    total = 0
    for path in sorted(root.glob("*.py")):
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue  # a few stdlib test files are deliberately not UTF-8; they are not needed
        yield text
        total += len(text)
        if total >= max_bytes:
            return


def tiny_config(family: Family, vocab_size: int, ids: dict[str, int]):
    """The family's smallest real config with the tiny overrides and our vocabulary."""
    smallest = min(family.sizes.values(), key=lambda s: s.published_params, default=None)
    raw = dict(smallest.config_dict()) if smallest else {"model_type": family.model_type}
    raw.pop("architectures", None)
    model_type = raw.pop("model_type")
    raw.update(family.tiny)
    raw.update(
        vocab_size=vocab_size, bos_token_id=ids["bos"], eos_token_id=ids["eos"], pad_token_id=ids["pad"]
    )
    raw["attention_dropout"] = 0.0
    raw.pop("torch_dtype", None)
    config = AutoConfig.for_model(model_type, **raw)
    config.architectures = [family.architecture]
    return config


def make_tiny(
    family: str | Family,
    out_dir: str | Path,
    *,
    vocab_size: int = 2048,
    seed: int = 0,
    corpus_bytes: int = 2_000_000,
) -> Path:
    """Write a complete tiny checkpoint of `family` to `out_dir` and return its path."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    fam = get_family(family) if isinstance(family, str) else family
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = train_tokenizer(stdlib_sources(corpus_bytes), fam, vocab_size=vocab_size)
    ids = {k: tokenizer.convert_tokens_to_ids(getattr(fam.tokenizer, k)) for k in ("bos", "eos", "pad")}
    padded_vocab = -(-len(tokenizer) // 64) * 64  # real checkpoints pad embeddings too (CodeGen: 51200)
    config = tiny_config(fam, padded_vocab, ids)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    model.eval()
    stop_ids = [tokenizer.convert_tokens_to_ids(t) for t in fam.stop_tokens]
    model.generation_config = GenerationConfig(
        bos_token_id=ids["bos"], eos_token_id=list(dict.fromkeys(stop_ids)), pad_token_id=ids["pad"]
    )
    model.save_pretrained(str(out))
    max_len = getattr(config, "max_position_embeddings", None) or config.n_positions
    save_tokenizer(tokenizer, fam, out, max_len)
    return out


def script_tokens(model: torch.nn.Module, ids: Sequence[int]) -> torch.utils.hooks.RemovableHandle:
    """Make `model` choose `ids` in order, then the last one forever: a scripted tiny model.

    Random tiny weights cannot be made to write '中文 🙂' or a `<filename>` token, but tests of
    detokenization, logprobs and special-token handling need exact tokens. Each forward call (the
    prefill, then one per decoding step, for a single sequence) still runs the real model; a hook
    on its output head then puts all the mass on the next scripted id. Remove the returned handle
    to restore the model."""
    script, calls = list(ids), [0]

    def hook(module: torch.nn.Module, args: Any, logits: torch.Tensor) -> torch.Tensor:
        token = script[min(calls[0], len(script) - 1)]
        calls[0] += 1
        forced = torch.full_like(logits, -100.0)
        forced[..., token] = 0.0
        return forced

    return model.get_output_embeddings().register_forward_hook(hook)
