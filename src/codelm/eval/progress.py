"""Progress bars for ``codelm eval``: one per task and phase (generating, preparing, calibrating,
executing), drawn by rich on stderr so stdout keeps only the results table; or nothing at all."""

from __future__ import annotations

from typing import Any, Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class Display(Protocol):
    """The part of ``rich.progress.Progress`` the runner uses."""

    def add_task(self, description: str, total: float | None = ...) -> Any: ...

    def advance(self, task_id: Any, advance: float = ...) -> None: ...

    def update(self, task_id: Any, **fields: Any) -> None: ...


class Quiet:
    """A display that shows nothing (``--no-progress``)."""

    def add_task(self, description: str, total: float | None = None) -> int:
        return 0

    def advance(self, task_id: Any, advance: float = 1) -> None:
        pass

    def update(self, task_id: Any, **fields: Any) -> None:
        pass

    def __enter__(self) -> Quiet:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def progress_display(enabled: bool) -> Progress | Quiet:
    """A context manager yielding the display."""
    if not enabled:
        return Quiet()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    return Progress(*columns, TimeElapsedColumn(), TimeRemainingColumn(), console=Console(stderr=True))
