"""Read documents from record files: JSONL (optionally .gz), Parquet, and hub datasets.

Code datasets name their fields differently (The Stack: `content`, `max_stars_repo_name`,
`max_stars_repo_path`, `lang`), so each reader looks for the first field present from a short
list, or exactly the one you name. Records that cannot become a document are dropped with a
reason (`invalid_json`, `missing_text`, `binary`, `invalid_utf8`, `too_large`), never raised; a
JSON string may escape a lone surrogate (`"\\ud800"`), which is not text, so such a record is
dropped as `invalid_unicode`.
pyarrow and datasets are imported only when a Parquet or hub reader actually reads.
"""

from __future__ import annotations

import gzip
import json
import logging
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from codelm.data.document import DataError, Document
from codelm.data.languages import detect_language
from codelm.data.readers.base import Reader, Unreadable, decode_text

log = logging.getLogger(__name__)

TEXT_KEYS = ("text", "content", "code")
ID_KEYS = ("id", "hexsha", "task_id")
REPO_KEYS = ("repo", "repo_name", "max_stars_repo_name")
PATH_KEYS = ("path", "max_stars_repo_path", "file_path")
LANGUAGE_KEYS = ("language", "lang")


def _valid_unicode(*values: Any) -> bool:
    """False if a string among `values` holds a lone surrogate (cannot be written as UTF-8)."""
    for v in values:
        if isinstance(v, str) and not v.isascii():
            try:
                v.encode("utf-8")
            except UnicodeEncodeError:
                return False
    return True


def _first(record: dict[str, Any], keys: Sequence[str]) -> tuple[str | None, Any]:
    for key in keys:
        if record.get(key) is not None:
            return key, record[key]
    return None, None


class RecordReader(Reader):
    """Shared record -> Document conversion; subclasses yield `(fallback_id, record)` pairs.

    `*_key` names the field to read; None tries the usual names (`TEXT_KEYS`, ...). Other
    keyword arguments are `Reader`'s (max_bytes, shard, name, exclusion_writer).
    """

    def __init__(
        self,
        *,
        text_key: str | None = None,
        id_key: str | None = None,
        repo_key: str | None = None,
        path_key: str | None = None,
        language_key: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.text_keys = (text_key,) if text_key else TEXT_KEYS
        self.id_keys = (id_key,) if id_key else ID_KEYS
        self.repo_keys = (repo_key,) if repo_key else REPO_KEYS
        self.path_keys = (path_key,) if path_key else PATH_KEYS
        self.language_keys = (language_key,) if language_key else LANGUAGE_KEYS

    def records(self) -> Iterable[tuple[str, dict[str, Any] | Unreadable]]:
        raise NotImplementedError

    def read(self) -> Iterator[Document | Unreadable]:
        for fallback_id, record in self.records():
            yield record if isinstance(record, Unreadable) else self.to_document(record, fallback_id)

    def to_document(self, record: dict[str, Any], fallback_id: str) -> Document | Unreadable:
        used = set()
        fields: dict[str, Any] = {}
        for name, keys in (
            ("id", self.id_keys),
            ("repo", self.repo_keys),
            ("path", self.path_keys),
            ("language", self.language_keys),
            ("text", self.text_keys),
        ):
            key, fields[name] = _first(record, keys)
            used.add(key)
        metadata = {k: v for k, v in record.items() if k not in used}
        doc = Document(
            text="",
            id=str(fields["id"] if fields["id"] is not None else fallback_id),
            repo=fields["repo"],
            path=fields["path"],
            metadata=metadata,
        )
        text = fields["text"]
        if isinstance(text, bytes):
            text = decode_text(text, self.max_bytes)
            if isinstance(text, tuple):
                doc.metadata["error"] = text[1]
                return Unreadable(doc, text[0])
        elif not isinstance(text, str):
            return Unreadable(doc, "missing_text")
        elif len(text) > self.max_bytes // 4 and len(text.encode("utf-8")) > self.max_bytes:
            return Unreadable(doc, "too_large")
        elif "\x00" in text[:8000]:
            return Unreadable(doc, "binary")
        if not _valid_unicode(text, doc.id, doc.repo, doc.path):
            return Unreadable(doc, "invalid_unicode")
        doc.text = text
        doc.language = fields["language"] or detect_language(doc.path, text)
        if isinstance(doc.language, str):
            doc.language = doc.language.lower()
        return doc


def _open_binary(path: Path) -> IO[bytes]:
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")  # noqa: SIM115


def _as_paths(paths: str | Path | Sequence[str | Path]) -> list[Path]:
    items = [paths] if isinstance(paths, (str, Path)) else list(paths)
    out = [Path(p) for p in items]
    missing = [str(p) for p in out if not p.is_file()]
    if missing:
        raise DataError(f"no such file(s): {', '.join(missing)}")
    return out


class JsonlReader(RecordReader):
    """One document per JSON line of each file (`.jsonl` or `.jsonl.gz`); sharded by file."""

    def __init__(self, paths: str | Path | Sequence[str | Path], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.paths = _as_paths(paths)

    def records(self) -> Iterator[tuple[str, dict[str, Any] | Unreadable]]:
        for i, path in enumerate(self.paths):
            if i % self.world_size != self.rank:
                continue
            try:
                yield from self._file_records(path)
            except (OSError, EOFError) as e:  # truncated or corrupt .gz: keep the run going
                log.warning("%s: cannot read further: %s", path, e)
                yield path.name, Unreadable(Document("", path.name, metadata={"error": str(e)}), "unreadable")

    def _file_records(self, path: Path) -> Iterator[tuple[str, dict[str, Any] | Unreadable]]:
        with _open_binary(path) as f:
            for lineno, raw in enumerate(f, 1):
                where = f"{path.name}:{lineno}"
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as e:
                    yield where, Unreadable(Document("", where, metadata={"error": str(e)}), "invalid_utf8")
                    continue
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as e:
                    log.warning("%s: invalid JSON: %s", where, e)
                    yield where, Unreadable(Document("", where, metadata={"error": str(e)}), "invalid_json")
                    continue
                if not isinstance(record, dict):
                    yield where, Unreadable(Document("", where), "invalid_json")
                    continue
                yield where, record


class ParquetReader(RecordReader):
    """One document per row of each Parquet file, read in batches; sharded by file."""

    def __init__(
        self, paths: str | Path | Sequence[str | Path], *, batch_size: int = 1024, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.paths = _as_paths(paths)
        self.batch_size = batch_size

    def records(self) -> Iterator[tuple[str, dict[str, Any] | Unreadable]]:
        try:
            import pyarrow.parquet as pq
        except ImportError as e:
            raise DataError("reading Parquet needs pyarrow: pip install 'codelm[data]'") from e
        for i, path in enumerate(self.paths):
            if i % self.world_size != self.rank:
                continue
            row = 0
            for batch in pq.ParquetFile(path).iter_batches(batch_size=self.batch_size):
                for record in batch.to_pylist():
                    yield f"{path.name}:{row}", record
                    row += 1


class HubReader(RecordReader):
    """Stream a dataset from the Hugging Face hub (needs network and `datasets`); sharded by row."""

    def __init__(
        self,
        dataset: str,
        *,
        config: str | None = None,
        split: str = "train",
        streaming: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.dataset, self.config, self.split, self.streaming = dataset, config, split, streaming

    def records(self) -> Iterator[tuple[str, dict[str, Any] | Unreadable]]:
        try:
            import datasets
        except ImportError as e:
            raise DataError("reading a hub dataset needs `datasets`: pip install datasets") from e
        ds = datasets.load_dataset(self.dataset, self.config, split=self.split, streaming=self.streaming)
        for row, record in enumerate(ds):
            if row % self.world_size == self.rank:
                yield f"{self.dataset}:{row}", record
