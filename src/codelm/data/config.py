"""Shared loading for the per-stage config dataclasses (heuristics, MinHash, decontam, PII).

Each stage has one small frozen dataclass, documented per field and validated in
`__post_init__`; `from_dict` builds one from a parsed YAML mapping through the project's one config
layer (`codelm.config.build`): values coerced to the field types, a misspelt key named with its
closest match.
"""

from __future__ import annotations

from typing import Any, Self

from codelm.config import build


class StageConfig:
    """Mixin for config dataclasses: `from_dict` with the config layer's checks."""

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None, where: str | None = None) -> Self:
        return build(cls, dict(d or {}), where or cls.__name__)
