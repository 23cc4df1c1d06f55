"""JSONL output for documents: the kept stream, or the dropped ones for inspection.

`JsonlWriter` is both a pass-through step (write every document, yield it on) and the
`exclusion_writer` a step hands its dropped documents to, with `drop_reason` and `dropped_by`
set in their metadata. A path ending in `.gz` is gzip-compressed. The file is opened on the first
write, so a filter that drops nothing leaves no empty file behind; writing after `close()` appends.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

from codelm.data.document import Document


class JsonlWriter:
    """Write documents as one JSON object per line (`Document.to_dict`)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.name = f"write:{self.path.name}"
        self.written = 0
        self._file: IO[str] | None = None
        self._opened_before = False

    def _open(self) -> IO[str]:
        mode = "at" if self._opened_before else "wt"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.suffix == ".gz":
            f: IO[str] = gzip.open(self.path, mode, encoding="utf-8")
        else:
            f = open(self.path, mode, encoding="utf-8")  # noqa: SIM115 - closed in close()
        self._opened_before = True
        return f

    def write(self, doc: Document) -> None:
        if self._file is None:
            self._file = self._open()
        self._file.write(json.dumps(doc.to_dict(), ensure_ascii=False) + "\n")
        self.written += 1

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

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
