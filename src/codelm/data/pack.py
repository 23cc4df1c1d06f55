"""`codelm data pack`: tokenize curated documents into training shards, optionally FIM-permuted.

The last step from raw code to training data. Documents come from a curation's output
(`OUT/data/*.jsonl.gz` or `*.parquet`) or any JSONL / Parquet files; each is tokenized with an HF
tokenizer, without BOS/EOS (the trainer adds them by the family's rule), special-token text as
plain text except where a formatter recorded a control token (`metadata["special_spans"]`, the
file separators of `pack_repos` and `commit_format`: `codelm.data.specials`), and written in the
packed-shard format of `codelm.train.shards`. Its offsets record every document boundary, so
training packs documents into fixed-length rows without letting them attend to each other.

FIM, with `fim_rate > 0`: each document is permuted here, per document and never across files,
with the target family's sentinels: two character-level cut points split it into prefix / middle /
suffix (Bavarian et al. 2022), joined in PSM order or, for the `fim_spm_rate` share, in SPM order
(Seed-Coder's `<[fim-suffix]>S<[fim-prefix]>P<[fim-middle]>M`; a PSM family gets the FIM paper's
SPM variant). It reuses the trainer's `FimTransform`, so pre-applied and on-the-fly FIM agree token
for token. Each piece is tokenized on its own and joined with sentinel ids, so a document that
merely contains sentinel text cannot forge one. Documents longer than `max_document_tokens` are cut
at line ends into pieces with their own draws, keeping a FIM example inside one training row. The
index records `fim_applied`, and the trainer then refuses to apply FIM a second time. Draws are
seeded by (seed, document position): re-running gives identical shards.

Nothing is written before the inputs, the tokenizer and its FIM sentinels are checked, and shards
are written to a hidden sibling `.OUT.partial` that becomes OUT only once complete: a failed or
interrupted pack leaves no partial shard set at OUT, and `--overwrite` replaces a finished one only
after its successor is complete.

    codelm data pack runs/data/stdlib --tokenizer runs/tok --out runs/shards/stdlib \\
        --family llama --fim-rate 0.5 --fim-spm-rate 0.5
"""

from __future__ import annotations

import argparse
import json
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from codelm.config import add_config_args
from codelm.data.document import DataError, Document
from codelm.data.readers.records import JsonlReader, ParquetReader
from codelm.data.specials import encode
from codelm.data.stats import StepStats

SUFFIXES = (".jsonl", ".jsonl.gz", ".parquet")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")


@dataclass
class PackConfig:
    """How documents become shards: `codelm data pack`'s flags and a recipe's `data.pack` section."""

    fim_rate: float = 0.0  # share of documents FIM-permuted here (0: none; or FIM on the fly in training)
    fim_spm_rate: float | None = None  # share of FIM documents in SPM order (default: the family's order)
    fim_line_rate: float = 0.0  # share of FIM documents whose middle is whole lines (train/fim.py)
    seed: int = 0  # FIM draws are seeded by (seed, document position)
    max_document_tokens: int = 8192  # longer documents are cut at line ends
    tokens_per_shard: int = 1 << 26

    def __post_init__(self) -> None:
        rates = (self.fim_rate, self.fim_spm_rate or 0.0, self.fim_line_rate)
        if not all(0.0 <= r <= 1.0 for r in rates):
            raise DataError("pack: fim_rate, fim_spm_rate and fim_line_rate must be in [0, 1]")
        if self.max_document_tokens < 1 or self.tokens_per_shard < 1:
            raise DataError("pack: max_document_tokens and tokens_per_shard must be >= 1")


def input_files(paths: Sequence[str | Path]) -> list[Path]:
    """JSONL / Parquet files named or found below directories (a curation's OUT means OUT/data)."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            root = p / "data" if (p / "stats.json").is_file() and (p / "data").is_dir() else p
            files += sorted(f for f in root.rglob("*") if f.is_file() and f.name.endswith(SUFFIXES))
        elif p.is_file() and p.name.endswith(SUFFIXES):
            files.append(p)
        else:
            raise DataError(f"{p} is neither a directory nor a .jsonl/.jsonl.gz/.parquet file")
    if not files:
        raise DataError(f"no .jsonl/.jsonl.gz/.parquet files in {', '.join(map(str, paths))}")
    return files


def read_documents(files: Sequence[Path], stats: list[StepStats]) -> Iterator[Document]:
    """Documents of every file in order; unreadable records are dropped and counted, not raised."""
    jsonl = [f for f in files if not f.name.endswith(".parquet")]
    parquet = [f for f in files if f.name.endswith(".parquet")]
    # curated documents were size-checked already; a packed repository is legitimately large
    big = {"max_bytes": 1 << 31}
    readers = ([JsonlReader(jsonl, **big)] if jsonl else []) + (
        [ParquetReader(parquet, **big)] if parquet else []
    )
    for reader in readers:
        stats.append(reader.stats)
        for doc in reader(iter(())):
            _unnest(doc)
            yield doc


def _unnest(doc: Document) -> None:
    """A curation output nests a document's metadata (Parquet: as a JSON string): bring it up,
    so the formatter's `special_spans` are found. Another file's own `metadata` field is left."""
    inner = doc.metadata.get("metadata")
    if isinstance(inner, str):
        try:
            inner = json.loads(inner or "{}")
        except ValueError:
            return  # a plain string field of someone else's records, not a curation's metadata
    if isinstance(inner, dict):
        del doc.metadata["metadata"]
        doc.metadata = {**inner, **doc.metadata}


def _family(name: str | None, tokenizer_dir: Path):
    from codelm.models import get_family
    from codelm.models.detect import detect_family

    if name:
        return get_family(name)
    if (tokenizer_dir / "config.json").is_file():
        return detect_family(tokenizer_dir)
    return None


def pack(
    inputs: Sequence[str | Path],
    tokenizer_dir: str | Path,
    out: str | Path,
    *,
    family: str | None = None,
    fim_rate: float = 0.0,
    fim_spm_rate: float | None = None,
    fim_line_rate: float = 0.0,
    seed: int = 0,
    max_document_tokens: int = 8192,
    tokens_per_shard: int = 1 << 26,
    overwrite: bool = False,
) -> Path:
    """Tokenize (and FIM-permute) the documents of `inputs` into shards in `out`."""
    from codelm.train.fim import FimTransform
    from codelm.train.shards import ShardWriter, tokenizer_info

    out, tokenizer_dir = Path(out), Path(tokenizer_dir)
    _check_out(out, overwrite)
    files = input_files(inputs)
    fam = _family(family, tokenizer_dir)
    if fim_rate > 0 and fam is None:
        raise DataError("FIM needs the target family's sentinels: pass --family")
    tok = load_tokenizer(str(tokenizer_dir))
    # validates the sentinels before anything is written
    fim = (
        FimTransform(fam, tok, fim_rate, fim_spm_rate, fim_line_rate, max_tokens=max_document_tokens)
        if fim_rate
        else None
    )
    settings = {
        "fim_rate": fim_rate,
        "fim_spm_rate": fim.spm_rate if fim else None,
        "fim_line_rate": fim_line_rate if fim else 0.0,
        "seed": seed,
        "max_document_tokens": max_document_tokens,
    }
    lineage: dict[str, Any] = {"inputs": [str(f) for f in files], "tokenizer": str(tokenizer_dir), **settings}
    for p in map(Path, inputs):
        if (p / "stats.json").is_file():  # a curation's funnel travels with the data it made
            lineage.setdefault("curation", {})[str(p)] = json.loads((p / "stats.json").read_text())
    reader_stats: list[StepStats] = []
    counts = {"documents": 0, "pieces": 0, "fim_pieces": 0, "empty": 0}
    partial = out.with_name(f".{out.name}.partial")
    if partial.exists():  # left by a run that was killed
        shutil.rmtree(partial)
    writer = ShardWriter(
        partial,
        vocab_size=len(tok),
        tokens_per_shard=tokens_per_shard,
        fim_applied=fim is not None,
        tokenizer=tokenizer_info(tok, fam.name if fam else None),
        lineage=lineage,
    )
    try:
        with writer:
            for position, doc in enumerate(read_documents(files, reader_stats)):
                counts["documents"] += 1
                # a document that spells "<fim_middle>" gets text, not the sentinel; only the
                # control tokens a formatter recorded in special_spans become ids
                ids = np.asarray(encode(tok, doc), dtype=np.int64)
                if len(ids) == 0:
                    counts["empty"] += 1
                    continue
                if fim is None:
                    writer.add(ids)
                    counts["pieces"] += 1
                    continue
                rng = np.random.default_rng([seed, position])
                for piece in fim(ids, rng):
                    writer.add(piece.ids)
                    counts["pieces"] += 1
                    counts["fim_pieces"] += piece.ids[:1] in ([fim.pre], [fim.suf])
            writer.lineage["pack"] = {**counts, "dropped": _dropped(reader_stats)}
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)  # best effort: the original error is what matters
        raise
    _publish(partial, out)
    return out


def _is_shard_dir(path: Path) -> bool:
    """Only packed shards (finished or not) live here, so replacing the directory loses nothing else."""
    return all(p.name.startswith(("shard-", "index.json")) for p in path.iterdir())


def _check_out(out: Path, overwrite: bool) -> None:
    """Refuse an OUT that would be clobbered, before any work is done."""
    if out.exists() and not out.is_dir():
        raise DataError(f"--out {out} is a file, not a directory")
    if not out.is_dir() or not any(out.iterdir()):
        return
    if not _is_shard_dir(out):
        raise DataError(f"{out} holds other files than packed shards; choose another --out")
    if not overwrite:
        what = "packed shards" if (out / "index.json").exists() else "an unfinished pack"
        raise DataError(f"{out} already holds {what}; pass --overwrite to replace them")


def _publish(partial: Path, out: Path) -> None:
    """Move the finished shards to OUT; an old OUT is removed only after that succeeded."""
    old = out.with_name(f".{out.name}.replaced")
    if old.exists():
        shutil.rmtree(old)
    if out.exists():
        out.rename(old)
    partial.rename(out)
    if old.exists():
        shutil.rmtree(old)


def load_tokenizer(source: str) -> Any:
    """The HF tokenizer in directory `source` (or hub id), or a one-line DataError saying why not."""
    from transformers import AutoTokenizer

    path = Path(source).expanduser()
    is_hub_id = source.count("/") == 1 and not source.startswith((".", "/", "~")) and not path.exists()
    if not is_hub_id:
        if not path.is_dir():
            raise DataError(f"--tokenizer {source}: no such directory")
        if not any(
            (path / f).is_file() for f in ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")
        ):
            raise DataError(f"--tokenizer {source}: no tokenizer files (tokenizer.json) in that directory")
    try:
        return AutoTokenizer.from_pretrained(str(path) if not is_hub_id else source)
    except (OSError, ValueError) as exc:  # transformers reports unreadable or unreachable tokenizers so
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"--tokenizer {source}: cannot load it: {first}") from exc


def _dropped(stats: list[StepStats]) -> dict[str, int]:
    out: dict[str, int] = {}
    for s in stats:
        for reason, n in s.dropped.items():
            out[reason] = out.get(reason, 0) + n
    return out


def add_pack_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "inputs", nargs="+", help="curation output dirs, or .jsonl/.jsonl.gz/.parquet files or dirs"
    )
    p.add_argument("--tokenizer", required=True, help="tokenizer or checkpoint directory (or hub id)")
    p.add_argument("--out", required=True, help="shard directory to write")
    p.add_argument("--family", help="target family for FIM sentinels (default: detected from --tokenizer)")
    p.add_argument("--fim-rate", type=float, help="share of documents FIM-permuted (default 0 = none)")
    p.add_argument(
        "--fim-spm-rate", type=float, help="share of FIM documents in SPM order (default: family's)"
    )
    p.add_argument(
        "--fim-line-rate", type=float, help="share of FIM documents whose middle is whole lines (default 0)"
    )
    p.add_argument("--seed", type=int, help="FIM draws are seeded by (seed, document position); default 0")
    p.add_argument("--max-document-tokens", type=int, help="longer documents are cut at lines (default 8192)")
    p.add_argument("--tokens-per-shard", type=int, help=f"default {1 << 26}")
    p.add_argument("--overwrite", action="store_true", help="replace finished shards in --out")
    add_config_args(p, "pack (PackConfig)")


def pack_from_args(args: argparse.Namespace) -> Path | None:
    import dataclasses

    from codelm.config import config_from_args, dump
    from codelm.train.shards import read_index

    names = ("fim_rate", "fim_spm_rate", "fim_line_rate", "seed", "max_document_tokens")
    flags = {k: getattr(args, k) for k in names}
    flags["tokens_per_shard"] = args.tokens_per_shard
    config = config_from_args(PackConfig, args, flags, "pack config")
    if args.print_config:
        print(dump(config), end="")
        return None
    out = pack(
        args.inputs,
        args.tokenizer,
        args.out,
        family=args.family,
        overwrite=args.overwrite,
        **dataclasses.asdict(config),
    )
    index = read_index(out)
    info = index["lineage"]["pack"]
    print(
        f"{info['documents']} documents -> {info['pieces']} pieces ({info['fim_pieces']} FIM), "
        f"{index['stats']['tokens']} tokens in {len(index['shards'])} shard(s); "
        f"dropped: {info['dropped'] or 'none'}"
    )
    return out
