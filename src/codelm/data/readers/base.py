"""What every reader shares: decoding raw bytes safely and counting what could not be read.

A corpus always holds files that are not text: images, compiled objects, Latin-1 sources,
multi-megabyte minified bundles. A reader never crashes on them; it drops each with a reason
(`binary`, `invalid_utf8`, `too_large`, `unreadable`, ...) that the stats count, and an
exclusion writer can record (with empty text) for inspection.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from codelm.data.document import DataError, Document
from codelm.data.pipeline import SOURCE_KEY, PipelineStep
from codelm.data.writers import JsonlWriter

#: The Stack keeps files up to 1 MB; larger ones are nearly always data or generated code.
DEFAULT_MAX_BYTES = 1_000_000
#: Git's own test for binary content: a NUL byte in the first 8000 bytes.
BINARY_SNIFF_BYTES = 8000


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A source item a reader could not turn into a document, and why."""

    doc: Document  # id/repo/path/metadata of the item, empty text
    reason: str


def decode_text(raw: bytes, max_bytes: int = DEFAULT_MAX_BYTES) -> str | tuple[str, str]:
    """Decode file bytes as UTF-8 text, or return `(reason, detail)` for why not.

    A leading byte-order mark is removed: it is an encoding artefact, not content.
    """
    if len(raw) > max_bytes:
        return "too_large", f"{len(raw)} bytes > {max_bytes}"
    if b"\x00" in raw[:BINARY_SNIFF_BYTES]:
        return "binary", "NUL byte in the first 8000 bytes"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        return "invalid_utf8", str(e)
    return text.removeprefix("\ufeff")


def check_shard(shard: tuple[int, int]) -> tuple[int, int]:
    rank, world = shard
    if world < 1 or not 0 <= rank < world:
        raise DataError(f"shard must be (rank, world_size) with 0 <= rank < world_size, got {shard}")
    return rank, world


class Reader(PipelineStep):
    """Base reader: a step that passes upstream documents through, then yields its own.

    Subclasses implement `read()`, yielding a `Document` or an `Unreadable` per source item;
    `docs_in` counts both, so `in = kept + dropped` holds for readers too. `shard=(rank, world)`
    selects every world-th source unit (file, repository, record) so an executor can split work.
    """

    def __init__(
        self,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        shard: tuple[int, int] = (0, 1),
        name: str | None = None,
        exclusion_writer: JsonlWriter | None = None,
    ) -> None:
        super().__init__(name=name, exclusion_writer=exclusion_writer)
        if max_bytes <= 0:
            raise DataError(f"max_bytes must be positive, got {max_bytes}")
        self.max_bytes = max_bytes
        self.rank, self.world_size = check_shard(shard)
        self.source: str | None = None  # set by run_pipeline when it has several readers

    def _tag(self, doc: Document) -> Document:
        if self.source is not None:
            doc.metadata[SOURCE_KEY] = self.source
        return doc

    def read(self) -> Iterable[Document | Unreadable]:
        raise NotImplementedError(f"{type(self).__name__} must implement read()")

    def run(self, docs: Iterator[Document]) -> Iterator[Document]:
        for doc in docs:
            yield self.keep(doc)
        for item in self.read():
            self.stats.docs_in += 1
            if isinstance(item, Unreadable):
                self.drop(self._tag(item.doc), item.reason)
            else:
                yield self.keep(self._tag(item))
