"""Shared loading for the per-stage config dataclasses (heuristics, MinHash, decontam, PII).

Each stage has one small frozen dataclass, documented per field and validated in
`__post_init__`; `from_dict` builds one from a parsed YAML mapping and names the known fields
when it meets a misspelt one, instead of a bare TypeError.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Self

from codelm.data.document import DataError


class StageConfig:
    """Mixin for config dataclasses: `from_dict` with a helpful error for unknown keys."""

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> Self:
        d = dict(d or {})
        known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = set(d) - known
        if unknown:
            raise DataError(f"unknown {cls.__name__} setting(s) {sorted(unknown)}; known: {sorted(known)}")
        return cls(**d)
