"""The one JSONL reader and writer: records one per line, for every pillar's files.

`iter_records`, `read_records` and `numbered_records` (with line numbers) read a ``.jsonl`` or
``.jsonl.gz`` file, or a ``.json`` (``.json.gz``) file holding a list of records, as some benchmarks
ship; blank lines are skipped. What a user hands in can be broken, so every failure is a
`CodelmError` naming the file (and the line), which the CLI prints as one line instead of a
traceback: a file that cannot be opened, a line that is not JSON, bytes that are not UTF-8, a gzip
file cut short. Two places keep their own rules on top of `json.loads` because one bad record must
not stop them: the data pillar's readers skip and count it (`data/readers/records.py`), and the
evaluation store drops a partial last line to resume (`eval/store.py`). `write_records` writes
what they read.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from codelm.errors import CodelmError


def numbered_records(path: str | Path) -> Iterator[tuple[int, Any]]:
    """(line number, record) of ``path`` in file order, for messages that point at a line (in a
    ``.json`` list: the record's place, from 1). See the module docstring."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            if path.name.removesuffix(".gz").endswith(".json"):
                yield from enumerate(_json_list(f.read(), path), start=1)
                return
            for number, line in enumerate(f, start=1):
                if line and not line.isspace():  # strip() would copy every (MB-long) document line
                    try:
                        record = json.loads(line)
                    except json.JSONDecodeError as exc:
                        raise CodelmError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
                    yield number, record
    except OSError as exc:  # missing, a directory, unreadable, a gzip header that is not one
        raise CodelmError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise CodelmError(f"cannot read {path}: not UTF-8 text") from None
    except (EOFError, zlib.error) as exc:  # a gzip stream cut short or corrupt
        raise CodelmError(f"cannot read {path}: damaged gzip data ({exc})") from None


def iter_records(path: str | Path) -> Iterator[Any]:
    """The records of ``path`` in file order (see the module docstring)."""
    for _, record in numbered_records(path):
        yield record


def read_records(path: str | Path) -> list[Any]:
    """All records of ``path`` (see the module docstring)."""
    return list(iter_records(path))


def write_records(records: Iterable[Any], path: str | Path) -> int:
    """Write ``records`` to ``path`` as JSONL (UTF-8, one per line; parent folders made), and return
    how many."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with path.open("w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
            n += 1
    return n


def _json_list(text: str, path: Path) -> list[Any]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CodelmError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(data, list):
        raise CodelmError(f"{path}: expected a JSON list of records")
    return data
