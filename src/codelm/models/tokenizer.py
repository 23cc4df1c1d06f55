"""Byte-level BPE tokenizers that carry a family's special tokens, FIM sentinels and chat template.

Used to build the tiny offline checkpoints and, later, by `codelm tokenizer train`. Special tokens
are placed first, in the family's order, so the small ids match the real models where that is
known (Gemma's <pad>=0, <eos>=1, <bos>=2; Seed-Coder's bos=0, eos=2; Stable Code's <|endoftext|>=0).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

from codelm.models.registry import Family

CODEGEN_RUNS = {"spaces": [31, 2], "tabs": [9, 2]}  # CodeGen1's runs (jaxformer sample.py)


def whitespace_run_tokens(family: Family, runs: dict[str, list[int]] | None = None) -> list[str]:
    """Whitespace-run tokens, CodeGen1's by default: 31..2 spaces then 9..2 tabs (jaxformer sample.py)."""
    runs = runs if runs is not None else (family.tokenizer.whitespace_runs or {})
    out: list[str] = []
    for char, key in ((" ", "spaces"), ("\t", "tabs")):
        if key in runs:
            hi, lo = runs[key]
            out.extend(char * n for n in range(hi, lo - 1, -1))
    return out


def code_pre_tokenizer(split_digits: bool = False) -> pre_tokenizers.PreTokenizer:
    """GPT-2's byte-level regex split, optionally after splitting digits one by one (StarCoder)."""
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    if not split_digits:
        return byte_level
    return pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), byte_level])


def train_tokenizer(
    texts: Iterable[str],
    family: Family,
    vocab_size: int = 4096,
    min_frequency: int = 2,
    *,
    split_digits: bool = False,
    whitespace_runs: bool | None = None,
) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE on `texts` and dress it in `family`'s tokens and chat template.

    `whitespace_runs`: None adds the family's own run tokens (CodeGen1 has 38), True adds
    CodeGen1's runs to any family, False none.
    """
    spec = family.tokenizer
    specials = list(dict.fromkeys([*spec.special_tokens, spec.bos, spec.eos, spec.pad]))
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = code_pre_tokenizer(split_digits)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    runs = {True: spec.whitespace_runs or CODEGEN_RUNS, False: {}}.get(whitespace_runs)
    ws = whitespace_run_tokens(family, runs)
    if ws:
        tok.add_tokens([AddedToken(t, normalized=False, special=False) for t in ws])
    if spec.add_bos:
        bos_id = tok.token_to_id(spec.bos)
        tok.post_processor = processors.TemplateProcessing(
            single=f"{spec.bos} $A", pair=f"{spec.bos} $A {spec.bos} $B", special_tokens=[(spec.bos, bos_id)]
        )
    named = {spec.bos, spec.eos, spec.pad, spec.unk}
    hf = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=spec.bos,
        eos_token=spec.eos,
        pad_token=spec.pad,
        unk_token=spec.unk,
        additional_special_tokens=[t for t in specials if t not in named],
        clean_up_tokenization_spaces=False,
    )
    if family.chat is not None:
        hf.chat_template = family.chat.template
    return hf


def save_tokenizer(
    tokenizer: PreTrainedTokenizerFast, family: Family, out_dir: str | Path, max_len: int
) -> None:
    """Save so that `AutoTokenizer.from_pretrained(out_dir)` loads it offline."""
    tokenizer.model_max_length = max_len
    tokenizer.save_pretrained(str(out_dir))
    cls = family.tokenizer.tokenizer_class
    if cls != "PreTrainedTokenizerFast":  # e.g. CodeGenTokenizer, as the real CodeGen1 repos declare
        path = Path(out_dir) / "tokenizer_config.json"
        cfg = json.loads(path.read_text())
        cfg["tokenizer_class"] = cls
        path.write_text(json.dumps(cfg, indent=2, ensure_ascii=False) + "\n")
