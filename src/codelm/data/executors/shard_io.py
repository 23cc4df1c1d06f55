"""Crash-safe files of a sharded run: documents (JSONL.gz or Parquet), arrays, markers.

Every file an executor writes is first written to a temporary name in the same directory,
flushed and fsynced, then renamed over its final name (`os.replace` is atomic on POSIX), and the
directory is fsynced. So a reader sees either nothing or a complete file, a process killed with
SIGKILL leaves at most a `*.tmp-<pid>` behind (removed when the shard is redone), and two
processes racing on the same shard (an orphaned worker of a killed run and its resumed run) each
write a whole, identical file. Completion markers are written the same way, after the data.

Parquet rows have the columns text, id, repo, path, language and metadata; metadata is a JSON
string because its keys differ from document to document.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np

from codelm.data.document import DataError, Document
from codelm.data.writers import json_line
from codelm.jsonl import iter_records

FORMATS = ("jsonl.gz", "parquet")
PARQUET_BATCH = 1000


def _tmp(path: Path) -> Path:
    return path.with_name(f"{path.name}.tmp-{os.getpid()}")


def fsync_dir(directory: Path) -> None:
    """Make a rename in `directory` durable (POSIX: the directory entry itself must be synced)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def commit(tmp: Path, path: Path) -> None:
    """Atomically move a finished, fsynced temporary file to its final name."""
    os.replace(tmp, path)
    fsync_dir(path.parent)


@contextlib.contextmanager
def atomic_binary(path: Path) -> Iterator[IO[bytes]]:
    """A binary file handle whose content appears at `path` only if the block completes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp(path)
    try:
        with open(tmp, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        commit(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: Path, text: str) -> None:
    with atomic_binary(path) as f:
        f.write(text.encode("utf-8"))


def write_json(path: Path, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text("utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise DataError(f"cannot read {path}: {e}") from e


def save_arrays(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """`np.savez` without pickling (object arrays are refused), atomically."""
    with atomic_binary(path) as f:
        np.savez(f, allow_pickle=False, **arrays)


def load_arrays(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def write_docs(docs: Iterable[Document], path: Path, fmt: str) -> int:
    """Write `docs` to `path` in `fmt` (jsonl.gz or parquet) atomically; returns the count."""
    if fmt not in FORMATS:
        raise DataError(f"output format must be one of {FORMATS}, got {fmt!r}")
    with atomic_binary(path) as raw:
        if fmt == "parquet":
            return _write_parquet(docs, raw)
        n = 0
        # mtime=0: the same documents give byte-identical files, whichever run wrote them
        with gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0) as gz:
            for doc in docs:
                gz.write(json_line(doc.to_dict()))
                n += 1
        return n


def _write_parquet(docs: Iterable[Document], raw: IO[bytes]) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema(
        [
            ("text", pa.string()),
            ("id", pa.string()),
            ("repo", pa.string()),
            ("path", pa.string()),
            ("language", pa.string()),
            ("metadata", pa.string()),
        ]
    )
    n = 0
    with pq.ParquetWriter(raw, schema) as writer:
        batch: list[dict[str, Any]] = []
        for doc in docs:
            row = doc.to_dict()
            row["metadata"] = json.dumps(row["metadata"], ensure_ascii=False, sort_keys=True)
            batch.append(row)
            n += 1
            if len(batch) >= PARQUET_BATCH:
                writer.write_table(pa.Table.from_pylist(batch, schema))
                batch = []
        if batch or n == 0:
            writer.write_table(pa.Table.from_pylist(batch, schema))
    return n


def read_docs(path: Path) -> Iterator[Document]:
    """Documents of a shard file written by `write_docs` (format told by the suffix)."""
    if path.name.endswith(".parquet"):
        import pyarrow.parquet as pq

        for batch in pq.ParquetFile(path).iter_batches(batch_size=PARQUET_BATCH):
            for row in batch.to_pylist():
                row["metadata"] = json.loads(row["metadata"] or "{}")
                yield Document.from_dict(row)
        return
    for record in iter_records(path):  # always .jsonl.gz
        yield Document.from_dict(record)


def remove_stale_tmp(directory: Path) -> None:
    """Remove temporary files a killed run left in `directory`."""
    if directory.is_dir():
        for p in directory.glob("*.tmp-*"):
            p.unlink(missing_ok=True)
