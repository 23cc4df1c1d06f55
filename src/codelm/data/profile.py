"""What a stream of documents looks like: counts per language, size and quality distributions.

An executor profiles the input (the readers' output) and the final output of every shard as the
documents stream past, and the run report plots the merged profiles. Everything is a count in
fixed bins, so shard profiles merge by addition and need no second pass over the data.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from codelm.data.document import Document
from codelm.data.pipeline import SOURCE_KEY

#: document sizes in bytes, binned by powers of two: bin k holds sizes in [2^k, 2^(k+1))
SIZE_BINS = 32
#: quality scores (metadata["quality"], 0-10), binned in steps of 0.5
QUALITY_BINS = 21


@dataclass
class Profile:
    """Mergeable counts describing a set of documents."""

    docs: int = 0
    bytes: int = 0
    languages: Counter[str] = field(default_factory=Counter)
    language_bytes: Counter[str] = field(default_factory=Counter)
    size_hist: list[int] = field(default_factory=lambda: [0] * SIZE_BINS)
    quality_hist: list[int] = field(default_factory=lambda: [0] * QUALITY_BINS)
    sources: Counter[str] = field(default_factory=Counter)  # documents per reader (several readers)
    source_bytes: Counter[str] = field(default_factory=Counter)

    def add(self, doc: Document) -> None:
        size = len(doc.text.encode("utf-8", "surrogatepass"))
        lang = doc.language or "unknown"
        self.docs += 1
        self.bytes += size
        self.languages[lang] += 1
        self.language_bytes[lang] += size
        source = doc.metadata.get(SOURCE_KEY)
        if isinstance(source, str):
            self.sources[source] += 1
            self.source_bytes[source] += size
        self.size_hist[min(max(size, 1).bit_length() - 1, SIZE_BINS - 1)] += 1
        score = doc.metadata.get("quality")
        if isinstance(score, (int, float)):
            self.quality_hist[min(max(int(round(score * 2)), 0), QUALITY_BINS - 1)] += 1

    def watch(self, docs: Iterable[Document]) -> Iterator[Document]:
        """Pass documents through, profiling each."""
        for doc in docs:
            self.add(doc)
            yield doc

    def merge(self, other: Profile) -> Profile:
        self.docs += other.docs
        self.bytes += other.bytes
        self.languages.update(other.languages)
        self.language_bytes.update(other.language_bytes)
        self.sources.update(other.sources)
        self.source_bytes.update(other.source_bytes)
        self.size_hist = [a + b for a, b in zip(self.size_hist, other.size_hist, strict=True)]
        self.quality_hist = [a + b for a, b in zip(self.quality_hist, other.quality_hist, strict=True)]
        return self

    def to_dict(self) -> dict[str, Any]:
        return {
            "docs": self.docs,
            "bytes": self.bytes,
            "languages": dict(self.languages.most_common()),
            "language_bytes": dict(self.language_bytes.most_common()),
            "size_hist": self.size_hist,
            "quality_hist": self.quality_hist,
            **({"sources": dict(sorted(self.sources.items()))} if self.sources else {}),
            **({"source_bytes": dict(sorted(self.source_bytes.items()))} if self.source_bytes else {}),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> Profile:
        d = d or {}
        p = cls(
            docs=int(d.get("docs", 0)),
            bytes=int(d.get("bytes", 0)),
            languages=Counter(d.get("languages", {})),
            language_bytes=Counter(d.get("language_bytes", {})),
            sources=Counter(d.get("sources", {})),
            source_bytes=Counter(d.get("source_bytes", {})),
        )
        if "size_hist" in d:
            p.size_hist = list(d["size_hist"])
        if "quality_hist" in d:
            p.quality_hist = list(d["quality_hist"])
        return p
