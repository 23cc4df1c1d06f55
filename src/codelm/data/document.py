"""The `Document` record every data step reads and yields.

One source file (or one record of a JSONL/Parquet/hub dataset) is one `Document`. The fields that
steps and the later packing stage rely on are first-class (repository and path are needed to
group files by repository; language picks the syntax checker); anything else a reader or a step
wants to carry rides along in `metadata` and round-trips through JSON unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from codelm.errors import CodelmError

_FIELDS = ("text", "id", "repo", "path", "language")


class DataError(CodelmError):
    """Bad input to a data step (a missing file, an unknown option); the message says which."""


@dataclass(slots=True)
class Document:
    """One unit of training text.

    `id` is unique within a corpus and stable across runs (readers use `repo/path` or the source
    record's id), which is what makes "keep the copy with the smallest id" deterministic in dedup.
    """

    text: str
    id: str
    repo: str | None = None
    path: str | None = None
    language: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; `from_dict(to_dict())` gives an equal document."""
        return {
            "text": self.text,
            "id": self.id,
            "repo": self.repo,
            "path": self.path,
            "language": self.language,
            "metadata": self.metadata,
        }

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> Document:
        """Inverse of `to_dict`; keys other than the known fields are folded into metadata."""
        if not isinstance(record.get("text"), str):
            raise DataError(f"record has no string 'text' field (keys: {sorted(record)})")
        if record.get("id") is None:
            raise DataError(f"record has no 'id' field (keys: {sorted(record)})")
        metadata = dict(record.get("metadata") or {})
        metadata.update({k: v for k, v in record.items() if k not in _FIELDS and k != "metadata"})
        return cls(
            text=record["text"],
            id=str(record["id"]),
            repo=record.get("repo"),
            path=record.get("path"),
            language=record.get("language"),
            metadata=metadata,
        )
