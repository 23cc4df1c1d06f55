"""``--release-window START:END``: evaluate only problems published in a date range.

Contamination-free evaluation is the point of LiveCodeBench (Jain et al. 2024, section 2): a model
is scored on problems released after its training cut-off. Both ends are calendar days, inclusive,
either may be left open (``2024-08-01:`` or ``:2024-12-31``). Only tasks whose problems carry a
release date (``Task.released``) are filtered; the runner refuses a window when no selected task has
one. Light to import: the CLI and ``EvalConfig`` parse it before anything heavy is loaded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True)
class ReleaseWindow:
    """Calendar days ``start`` to ``end``, both included; None leaves that side open."""

    start: date | None = None
    end: date | None = None

    @classmethod
    def parse(cls, text: str) -> ReleaseWindow:
        """``START:END`` with days as YYYY-MM-DD, either side empty; ValueError with one line."""
        shape = f"release window wants START:END with days as YYYY-MM-DD (either may be empty), got {text!r}"
        start_text, sep, end_text = text.strip().partition(":")
        if not sep or ":" in end_text or not (start_text.strip() or end_text.strip()):
            raise ValueError(shape)
        days = []
        for part in (start_text.strip(), end_text.strip()):
            if part and not _DAY.match(part):
                raise ValueError(shape)
            try:
                days.append(date.fromisoformat(part) if part else None)
            except ValueError as exc:  # 2024-02-30
                raise ValueError(f"release window: {part!r} is not a calendar day ({exc})") from None
        start, end = days
        if start and end and start > end:
            raise ValueError(f"release window {text!r} starts after it ends")
        return cls(start, end)

    def __contains__(self, day: date) -> bool:
        return (self.start is None or self.start <= day) and (self.end is None or day <= self.end)

    def __str__(self) -> str:
        return f"{self.start or ''}:{self.end or ''}"
