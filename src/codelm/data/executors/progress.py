"""A rich progress display for sharded runs: one bar per phase, in shards, with documents written.

Workers cannot draw on the driver's terminal, so they report "n documents written" through a hook
(a queue for local processes) and the driver advances the bars. Disabled, it prints nothing, which
is what tests and non-interactive logs want.
"""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)


class Board:
    """Progress bars of one run (a no-op when `enabled` is False)."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._progress: Progress | None = None
        self._docs: dict[TaskID, int] = {}

    def __enter__(self) -> Board:
        if self.enabled:
            self._progress = Progress(
                SpinnerColumn(),
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("shards  {task.fields[docs]:,} docs"),
                TimeElapsedColumn(),
                console=Console(stderr=True),
            )
            self._progress.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._progress is not None:
            self._progress.stop()

    def phase(self, label: str, total: int, done: int = 0) -> TaskID | None:
        if self._progress is None:
            return None
        task = self._progress.add_task(label, total=total, completed=done, docs=0)
        self._docs[task] = 0
        return task

    def docs(self, task: TaskID | None, n: int) -> None:
        if self._progress is not None and task is not None:
            self._docs[task] += n
            self._progress.update(task, docs=self._docs[task])

    def shard_done(self, task: TaskID | None) -> None:
        if self._progress is not None and task is not None:
            self._progress.advance(task)

    def log(self, message: str) -> None:
        if self._progress is not None:
            self._progress.console.log(message)
