"""The on-disk format of tokenized training data ("packed shards"), with its writer and reader.

Training reads documents through numpy memmaps, so a corpus far larger than memory costs nothing to
open and any document is one slice away. `codelm data pack` writes exactly this format; the trainer
packs documents into fixed-length sequences at read time (train/packing.py), which lets the long-context
stage re-read the same shards at a longer sequence length and lets FIM be applied per document.

Layout of a shard directory (format "codelm.shards", version 1):

    index.json             written last, atomically: its presence means the directory is complete
    shard-00000.tokens     token ids of every document of the shard, concatenated, raw little-endian
                           `dtype` (uint16 when the vocabulary fits, else uint32); no BOS/EOS added
    shard-00000.offsets    int64 little-endian document boundaries: D+1 cumulative offsets into
                           .tokens, first 0 (document i is tokens[offsets[i]:offsets[i+1]])
    shard-00001.tokens ...

index.json:

    {"format": "codelm.shards", "version": 1, "dtype": "uint16",
     "tokenizer": {"family": "llama", "vocab_size": 2048, "fingerprint": "sha256 of the sorted vocab"},
     "fim_applied": false,        # true when the writer already applied FIM (the trainer then will not)
     "shards": [{"name": "shard-00000", "documents": 812, "tokens": 1048576}, ...],
     "stats": {"documents": D, "tokens": T, "max_document_tokens": M, "mean_document_tokens": x},
     "lineage": {...}}            # free-form: sources, pipeline steps, dates; copied into checkpoints

Documents are stored without BOS/EOS: the trainer adds them by the family's rule (BOS when the family
prepends one, EOS always), after FIM, so the same shards serve plain and FIM training.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from codelm.errors import CodelmError

FORMAT = "codelm.shards"
VERSION = 1


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """A stable hash of the vocabulary (token -> id): equal for a tokenizer and its saved copy."""
    items = sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1])
    return hashlib.sha256(json.dumps(items, ensure_ascii=False).encode()).hexdigest()


def tokenizer_info(tokenizer: Any, family: str | None = None) -> dict[str, Any]:
    return {"family": family, "vocab_size": len(tokenizer), "fingerprint": tokenizer_fingerprint(tokenizer)}


class ShardWriter:
    """Append documents (lists of token ids); `close()` writes the index. Use as a context manager."""

    def __init__(
        self,
        out_dir: str | Path,
        *,
        vocab_size: int,
        tokens_per_shard: int = 1 << 26,
        tokenizer: dict[str, Any] | None = None,
        fim_applied: bool = False,
        lineage: dict[str, Any] | None = None,
    ) -> None:
        self.out = Path(out_dir)
        if (self.out / "index.json").exists():
            raise CodelmError(f"{self.out} already holds shards (index.json); choose another directory")
        self.out.mkdir(parents=True, exist_ok=True)
        self.dtype = np.dtype("<u2") if vocab_size <= 1 << 16 else np.dtype("<u4")
        self.vocab_size = vocab_size
        self.tokens_per_shard = tokens_per_shard
        self.meta = {"tokenizer": tokenizer or {"vocab_size": vocab_size}, "fim_applied": fim_applied}
        self.lineage = lineage or {}
        self.shards: list[dict[str, Any]] = []
        self._file = None
        self._offsets: list[int] = []
        self._max_doc = 0

    def _open(self) -> None:
        name = f"shard-{len(self.shards):05d}"
        self.shards.append({"name": name, "documents": 0, "tokens": 0})
        self._file = open(self.out / f"{name}.tokens", "wb")  # noqa: SIM115 (closed in _seal)
        self._offsets = [0]

    def _seal(self) -> None:
        if self._file is None:
            return
        self._file.close()
        self._file = None
        name = self.shards[-1]["name"]
        np.asarray(self._offsets, dtype="<i8").tofile(self.out / f"{name}.offsets")

    def add(self, ids: Sequence[int] | np.ndarray) -> None:
        """Append one document."""
        arr = np.asarray(ids)
        if arr.ndim != 1:
            raise CodelmError("a document must be a flat sequence of token ids")
        if arr.size and (arr.min() < 0 or arr.max() >= self.vocab_size):
            raise CodelmError(f"token id out of range [0, {self.vocab_size}) in a document")
        if self._file is None:
            self._open()
        self._file.write(arr.astype(self.dtype).tobytes())
        shard = self.shards[-1]
        shard["documents"] += 1
        shard["tokens"] += int(arr.size)
        self._offsets.append(shard["tokens"])
        self._max_doc = max(self._max_doc, int(arr.size))
        if shard["tokens"] >= self.tokens_per_shard:
            self._seal()

    def close(self) -> Path:
        """Seal the last shard and write index.json (atomically); returns the directory."""
        self._seal()
        docs = sum(s["documents"] for s in self.shards)
        tokens = sum(s["tokens"] for s in self.shards)
        index = {
            "format": FORMAT,
            "version": VERSION,
            "dtype": self.dtype.name,
            **self.meta,
            "shards": self.shards,
            "stats": {
                "documents": docs,
                "tokens": tokens,
                "max_document_tokens": self._max_doc,
                "mean_document_tokens": tokens / docs if docs else 0.0,
            },
            "lineage": self.lineage,
        }
        tmp = self.out / "index.json.tmp"
        tmp.write_text(json.dumps(index, indent=2, ensure_ascii=False) + "\n")
        os.replace(tmp, self.out / "index.json")
        return self.out

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        elif self._file is not None:  # leave no index: the directory is visibly incomplete
            self._file.close()


def write_shards(
    documents: Iterable[Sequence[int]], out_dir: str | Path, *, vocab_size: int, **kwargs: Any
) -> Path:
    """Write tokenized `documents` as shards (see `ShardWriter` for the options)."""
    with ShardWriter(out_dir, vocab_size=vocab_size, **kwargs) as w:
        for doc in documents:
            w.add(doc)
    return Path(out_dir)


class ShardReader:
    """Random access to the documents of one or more shard directories, through memmaps."""

    def __init__(self, dirs: str | Path | Sequence[str | Path]) -> None:
        dirs = [dirs] if isinstance(dirs, str | Path) else list(dirs)
        if not dirs:
            raise CodelmError("no shard directories given")
        self.indexes: list[dict[str, Any]] = []
        self._tokens: list[np.ndarray] = []
        self._offsets: list[np.ndarray] = []
        for d in map(Path, dirs):
            index = read_index(d)
            self.indexes.append(index)
            for shard in index["shards"]:
                offsets = np.fromfile(d / f"{shard['name']}.offsets", dtype="<i8")
                if len(offsets) != shard["documents"] + 1 or offsets[-1] != shard["tokens"]:
                    raise CodelmError(f"{d}/{shard['name']}.offsets does not match index.json")
                tokens = np.memmap(d / f"{shard['name']}.tokens", dtype=np.dtype(index["dtype"]), mode="r")
                if len(tokens) != shard["tokens"]:
                    raise CodelmError(f"{d}/{shard['name']}.tokens does not match index.json")
                self._tokens.append(tokens)
                self._offsets.append(offsets)
        counts = [len(o) - 1 for o in self._offsets]
        self._starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self.fim_applied = {bool(i.get("fim_applied")) for i in self.indexes}
        if len(self.fim_applied) > 1:
            raise CodelmError("shard directories mix FIM-applied and plain documents")

    def __len__(self) -> int:
        return int(self._starts[-1])

    @property
    def num_tokens(self) -> int:
        return int(sum(len(t) for t in self._tokens))

    def document(self, i: int) -> np.ndarray:
        """Token ids of document `i` (global index across all shards), as int64."""
        if not 0 <= i < len(self):
            raise IndexError(f"document {i} out of range (0..{len(self) - 1})")
        s = int(np.searchsorted(self._starts, i, side="right")) - 1
        j = i - int(self._starts[s])
        lo, hi = self._offsets[s][j], self._offsets[s][j + 1]
        return np.asarray(self._tokens[s][lo:hi], dtype=np.int64)

    def check_tokenizer(self, tokenizer: Any) -> None:
        """Refuse shards written with a different vocabulary than the training tokenizer's."""
        mine = tokenizer_fingerprint(tokenizer)
        for index in self.indexes:
            theirs = (index.get("tokenizer") or {}).get("fingerprint")
            if theirs and theirs != mine:
                raise CodelmError(
                    "the shards were tokenized with a different tokenizer than the model's "
                    f"(fingerprint {theirs[:12]} vs {mine[:12]}); re-pack them with the model's tokenizer"
                )


def read_index(path: str | Path) -> dict[str, Any]:
    """index.json of a shard directory, checked for format and version."""
    file = Path(path) / "index.json"
    if not file.is_file():
        raise CodelmError(f"{path} is not a complete shard directory (no index.json)")
    index = json.loads(file.read_text())
    if index.get("format") != FORMAT or index.get("version") != VERSION:
        raise CodelmError(f"{file}: not a {FORMAT} v{VERSION} index")
    return index


def pack_texts(
    texts: Iterable[str], tokenizer: Any, out_dir: str | Path, *, family: str | None = None, **kwargs: Any
) -> Path:
    """Tokenize `texts` (no BOS/EOS) and write them as shards; the minimal `codelm data pack`."""
    docs = (
        tokenizer(t, add_special_tokens=False, split_special_tokens=True, verbose=False)["input_ids"]
        for t in texts
    )
    info = tokenizer_info(tokenizer, family)
    return write_shards(docs, out_dir, vocab_size=len(tokenizer), tokenizer=info, **kwargs)


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m codelm.train.shards --tokenizer DIR --input PATHS... --out DIR`: text files to shards."""
    import argparse

    from transformers import AutoTokenizer

    from codelm.train.tokenizer import iter_corpus

    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("--tokenizer", required=True, help="tokenizer (or checkpoint) directory")
    p.add_argument("--input", nargs="+", required=True, help="files, directories, .jsonl(.gz) with 'text'")
    p.add_argument("--out", required=True)
    p.add_argument("--max-bytes", type=int, help="stop after this many characters")
    p.add_argument("--family", help="recorded in index.json")
    args = p.parse_args(argv)
    tok = AutoTokenizer.from_pretrained(args.tokenizer)
    lineage = {"inputs": args.input, "tokenizer": args.tokenizer, "max_bytes": args.max_bytes}
    texts = iter_corpus(args.input, max_bytes=args.max_bytes)
    out = pack_texts(texts, tok, args.out, family=args.family, lineage=lineage)
    index = read_index(out)
    print(f"{index['stats']['documents']} documents, {index['stats']['tokens']} tokens -> {out}")


if __name__ == "__main__":
    main()
