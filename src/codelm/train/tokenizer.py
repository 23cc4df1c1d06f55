"""`codelm tokenizer train`: a byte-level BPE for code, dressed in a family's tokens and chat template.

    codelm tokenizer train --family llama --input src/ data.jsonl --vocab-size 32000 --out tok/

Code-friendly pre-tokenization, as the code models did it:
- digits are split one by one before BPE (StarCoder's and Llama's `Digits(individual_digits=True)`), so
  numbers are not memorised as arbitrary merges;
- runs of 2..31 spaces and 2..9 tabs are whole tokens (CodeGen1 added exactly these 38 tokens to GPT-2's
  BPE, jaxformer `create_custom_gpt2_tokenizer`); here any family can have them, so indentation costs
  one token instead of several;
- the family's special tokens (BOS/EOS/PAD, FIM sentinels, file separator, chat markers) come first, in
  the family's order, so their ids match the real models where known (codelm.models.tokenizer).

Inputs are files, directories (read recursively, in sorted order) and JSONL files with a `text` field
(`.jsonl` or `.jsonl.gz`). The output loads with `AutoTokenizer.from_pretrained(out)` and carries a
`codelm_tokenizer.json` with the corpus lineage.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transformers import PreTrainedTokenizerFast

from codelm.errors import CodelmError
from codelm.jsonl import numbered_records
from codelm.models.registry import Family, get_family
from codelm.models.tokenizer import save_tokenizer, train_tokenizer

TEXT_SUFFIXES = {".py", ".js", ".ts", ".java", ".c", ".h", ".cc", ".cpp", ".hpp", ".go", ".rs", ".rb", ".php"}
TEXT_SUFFIXES |= {".cs", ".kt", ".swift", ".scala", ".sh", ".sql", ".md", ".txt", ".rst", ".json", ".yaml"}
TEXT_SUFFIXES |= {".yml", ".toml", ".html", ".css", ".lua", ".r", ".jl", ".hs", ".ml", ".tex"}


class CorpusStats:
    """What was read, so the lineage is honest about skipped files."""

    def __init__(self) -> None:
        self.files = 0
        self.documents = 0
        self.chars = 0
        self.skipped: dict[str, int] = {}

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1


def _jsonl_texts(path: Path, stats: CorpusStats) -> Iterator[str]:
    for n, record in numbered_records(path):
        if not isinstance(record, dict) or not isinstance(record.get("text"), str):
            raise CodelmError(f"{path}:{n}: a JSONL corpus record needs a string 'text' field")
        yield record["text"]


def _is_text(path: Path) -> bool:
    return path.suffix.lower() in TEXT_SUFFIXES or path.name.endswith((".jsonl", ".jsonl.gz"))


def iter_corpus(
    paths: Sequence[str | Path], *, max_bytes: int | None = None, stats: CorpusStats | None = None
) -> Iterator[str]:
    """Texts of `paths` (files, directories, JSONL), in a fixed order, up to `max_bytes` characters."""
    stats = stats if stats is not None else CorpusStats()
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise CodelmError(f"tokenizer corpus input {path} does not exist")
        if path.is_dir():
            files = [p for p in sorted(path.rglob("*")) if p.is_file() and _is_text(p)]
        else:
            files = [path]
        for file in files:
            if file.name.endswith((".jsonl", ".jsonl.gz")):
                texts: Iterable[str] = _jsonl_texts(file, stats)
            else:
                try:
                    texts = [file.read_text(encoding="utf-8")]
                except UnicodeDecodeError:
                    stats.skip("not UTF-8")
                    continue
            stats.files += 1
            for text in texts:
                stats.documents += 1
                stats.chars += len(text)
                yield text
                if max_bytes is not None and stats.chars >= max_bytes:
                    return


def train_code_tokenizer(
    texts: Iterable[str],
    family: Family | str,
    vocab_size: int,
    *,
    min_frequency: int = 2,
    split_digits: bool = True,
    whitespace_runs: bool = True,
) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE for code on `texts`, with `family`'s special tokens and chat template.

    Code defaults on top of `codelm.models.tokenizer.train_tokenizer`: digits split one by one and
    whitespace-run tokens for every family.
    """
    fam = get_family(family) if isinstance(family, str) else family
    spec = fam.tokenizer
    specials = set([*spec.special_tokens, spec.bos, spec.eos, spec.pad])
    if vocab_size < len(specials) + 256 + 64:
        raise CodelmError(f"vocab size {vocab_size} is too small: 256 bytes + {len(specials)} special tokens")
    return train_tokenizer(
        texts, fam, vocab_size, min_frequency, split_digits=split_digits, whitespace_runs=whitespace_runs
    )


def default_max_len(family: Family) -> int:
    """The context length of the family's smallest real size (2048 when it has none)."""
    smallest = min(family.sizes.values(), key=lambda s: s.published_params, default=None)
    if smallest is None:
        return 2048
    cfg = smallest.config_dict()
    return int(cfg.get("max_position_embeddings") or cfg.get("n_positions") or 2048)


@dataclass
class TokenizerTrainConfig:
    """How to train a tokenizer: `codelm tokenizer train`'s flags and a recipe's `tokenizer.train`."""

    vocab_size: int = 32000  # BPE vocabulary size including special tokens
    min_frequency: int = 2  # minimum pair count for a merge
    max_bytes: int | None = None  # stop reading the corpus after this many characters
    max_len: int | None = None  # model_max_length (default: the family's context)
    split_digits: bool = True  # one token per digit (StarCoder, Llama)
    whitespace_runs: bool = True  # space/tab runs as whole tokens (CodeGen1's 38 extra tokens)

    def __post_init__(self) -> None:
        if self.vocab_size < 256 or self.min_frequency < 1:
            raise CodelmError("tokenizer: vocab_size >= 256 (the byte alphabet) and min_frequency >= 1")

    def expected_size(self, family: Family) -> int:
        """Tokens the trained tokenizer will have (BPE's vocab_size plus the whitespace-run tokens,
        added on top): what the dry-run plans the embedding for."""
        from codelm.models.tokenizer import CODEGEN_RUNS, whitespace_run_tokens

        runs = (family.tokenizer.whitespace_runs or CODEGEN_RUNS) if self.whitespace_runs else {}
        return self.vocab_size + len(whitespace_run_tokens(family, runs))


def train_and_save(
    texts: Iterable[str],
    family: Family,
    config: TokenizerTrainConfig,
    out: str | Path,
    lineage: Callable[[], dict[str, Any]],
) -> PreTrainedTokenizerFast:
    """Train on `texts` (streamed), save to `out` with `codelm_tokenizer.json`: the config and what
    `lineage()` says about the corpus once it has been read."""
    tok = train_code_tokenizer(
        texts,
        family,
        config.vocab_size,
        min_frequency=config.min_frequency,
        split_digits=config.split_digits,
        whitespace_runs=config.whitespace_runs,
    )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    save_tokenizer(tok, family, out, config.max_len or default_max_len(family))
    record = {"family": family.name, "vocab_size": len(tok), "requested_vocab_size": config.vocab_size}
    record |= {"split_digits": config.split_digits, "whitespace_runs": config.whitespace_runs, **lineage()}
    (out / "codelm_tokenizer.json").write_text(json.dumps(record, indent=2) + "\n")
    return tok


def tokenizer_train_from_args(args: Any) -> Path:
    """Run `codelm tokenizer train`; prints and returns the output directory."""
    fam = get_family(args.family)
    config = TokenizerTrainConfig(
        vocab_size=args.vocab_size,
        min_frequency=args.min_frequency,
        max_bytes=args.max_bytes,
        max_len=args.max_len,
        split_digits=not args.no_split_digits,
        whitespace_runs=not args.no_whitespace_runs,
    )
    stats = CorpusStats()
    texts = iter_corpus(args.input, max_bytes=config.max_bytes, stats=stats)

    def lineage() -> dict[str, Any]:
        if stats.documents == 0:
            raise CodelmError(f"no text found in {' '.join(map(str, args.input))}")
        corpus = {"inputs": [str(p) for p in args.input], "files": stats.files, "documents": stats.documents}
        return corpus | {"chars": stats.chars, "skipped": stats.skipped}

    out = Path(args.out)
    tok = train_and_save(texts, fam, config, out, lineage)
    skipped = f", skipped {stats.skipped}" if stats.skipped else ""
    print(f"trained a {len(tok)}-token {fam.name} tokenizer on {stats.documents} documents{skipped} -> {out}")
    return out
