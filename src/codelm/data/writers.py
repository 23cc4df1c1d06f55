"""JSONL output for documents: the kept stream, or the dropped ones for inspection.

`JsonlWriter` is both a pass-through step (write every document, yield it on) and the
`exclusion_writer` a step hands its dropped documents to, with `drop_reason` and `dropped_by`
set in their metadata. A path ending in `.gz` is gzip-compressed with no name and a zero mtime
in its header, so the same documents always give the same bytes (reruns compare equal). The file
is opened on the first write, so a filter that drops nothing leaves no empty file behind; writing
after `close()` appends.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from codelm.data.document import Document


def json_line(obj: Any) -> bytes:
    """`obj` as one UTF-8 JSON line; never raises on lone surrogates.

    Text is written as is (`ensure_ascii=False`, compact for CJK and emoji). A string holding a
    lone surrogate (a JSON record's `"\\ud800"`, a surrogate-escaped file name) cannot be UTF-8,
    so such a line falls back to ASCII escapes, which `json.loads` reads back to the same string.
    """
    try:
        return (json.dumps(obj, ensure_ascii=False) + "\n").encode("utf-8")
    except UnicodeEncodeError:
        return (json.dumps(obj, ensure_ascii=True) + "\n").encode("ascii")


class JsonlWriter:
    """Write documents as one JSON object per line (`Document.to_dict`)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.name = f"write:{self.path.name}"
        self.written = 0
        self._file: IO[bytes] | None = None
        self._raw: IO[bytes] | None = None
        self._opened_before = False

    def _open(self) -> IO[bytes]:
        mode = "ab" if self._opened_before else "wb"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        f: IO[bytes] = open(self.path, mode)  # noqa: SIM115 - closed in close()
        self._opened_before = True
        if self.path.suffix != ".gz":
            return f
        # filename="" and mtime=0: the header would otherwise carry the (temporary) name and the time
        self._raw = f
        return gzip.GzipFile(filename="", fileobj=f, mode=mode, mtime=0)  # type: ignore[return-value]

    def write(self, doc: Document) -> None:
        if self._file is None:
            self._file = self._open()
        self._file.write(json_line(doc.to_dict()))
        self.written += 1

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._raw is not None:
            self._raw.close()
            self._raw = None

    def __enter__(self) -> JsonlWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __call__(self, docs: Iterable[Document]) -> Iterator[Document]:
        """As a step: write each document and pass it on (a plain generator, counted by the pipeline)."""
        try:
            for doc in docs:
                self.write(doc)
                yield doc
        finally:
            self.close()
