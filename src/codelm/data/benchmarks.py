"""Load evaluation benchmarks' prompts and reference solutions, for decontaminating training data.

Reads the files as their projects publish them (JSONL, JSON, optionally gzip-compressed) from one
directory; see shared/data/SOURCES.md for where each comes from. Each known file name maps to a
benchmark name and an extractor of the texts a training file must not contain. Prompt and
solution are joined so that n-grams spanning the boundary (HumanEval solutions continue their
prompt) are caught too. The HumanEval infilling files are the HumanEval problems again and are
not read. Unknown files in the directory are ignored.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codelm.data.document import DataError
from codelm.jsonl import iter_records


@dataclass(frozen=True)
class BenchmarkTask:
    """The texts of one benchmark problem that must not appear in training data."""

    benchmark: str
    task_id: str
    texts: tuple[str, ...]


def _prompt_solution(r: dict[str, Any]) -> list[str]:
    return [r["prompt"] + r["canonical_solution"]]


def _mbpp(r: dict[str, Any]) -> list[str]:
    return [r["text"], r["code"]]


def _sanitized_mbpp(r: dict[str, Any]) -> list[str]:
    return [r["prompt"], r["code"]]


def _mbpp_plus(r: dict[str, Any]) -> list[str]:
    return [r["prompt"] + "\n" + r["canonical_solution"]]


def _mtpb(r: dict[str, Any]) -> list[str]:
    # turns are templates ("Assign the string "{A}" to ..."); the placeholders are just tokens
    return ["\n".join(r["prompts"]), r.get("description", "")]


def _multipl_e(r: dict[str, Any]) -> list[str]:
    # evaluation only: its licence forbids training on it (shared/data/LICENSE.multipl-e)
    return [r["prompt"], r["tests"]]


Extractor = Callable[[dict[str, Any]], list[str]]
# (file name without .gz, benchmark name ("{0}" = first regex group), extractor, task id field)
BENCHMARK_FILES: list[tuple[re.Pattern[str], str, Extractor, str]] = [
    (re.compile(r"HumanEval\.jsonl"), "humaneval", _prompt_solution, "task_id"),
    (re.compile(r"humaneval_(\w+)\.jsonl"), "humaneval-x-{0}", _prompt_solution, "task_id"),
    (re.compile(r"mbpp\.jsonl"), "mbpp", _mbpp, "task_id"),
    (re.compile(r"sanitized-mbpp\.json"), "mbpp", _sanitized_mbpp, "task_id"),
    (re.compile(r"MbppPlus\.jsonl"), "mbpp-plus", _mbpp_plus, "task_id"),
    (re.compile(r"humaneval-(\w+)\.jsonl"), "multipl-e-{0}", _multipl_e, "name"),
    (re.compile(r"mtpb\.jsonl"), "mtpb", _mtpb, "id"),
]


def load_benchmark_file(path: str | Path) -> list[BenchmarkTask]:
    """Tasks of one benchmark file, or DataError if its name is not a known benchmark file."""
    path = Path(path)
    name = path.name.removesuffix(".gz")
    for pattern, bench_name, extract, id_field in BENCHMARK_FILES:
        m = pattern.fullmatch(name)
        if m:
            bench = bench_name.format(*m.groups())
            tasks = []
            for r in iter_records(path):
                try:
                    texts = tuple(t for t in extract(r) if t)
                except KeyError as e:
                    raise DataError(f"{path}: task {r.get(id_field)!r} lacks field {e}") from e
                tasks.append(BenchmarkTask(bench, f"{bench}/{r.get(id_field)}", texts))
            return tasks
    raise DataError(f"{path}: not a known benchmark file (known: {[p.pattern for p, *_ in BENCHMARK_FILES]})")


def load_benchmarks(directory: str | Path) -> list[BenchmarkTask]:
    """All tasks of the known benchmark files in `directory` (file order: sorted by name)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(f"benchmark directory not found: {directory}")
    tasks: list[BenchmarkTask] = []
    subdir = directory / "multipl-e"  # MultiPL-E's 18 files keep their own folder
    for path in [*sorted(directory.iterdir()), *(sorted(subdir.iterdir()) if subdir.is_dir() else [])]:
        name = path.name.removesuffix(".gz")
        if path.is_file() and any(p.fullmatch(name) for p, *_ in BENCHMARK_FILES):
            tasks.extend(load_benchmark_file(path))
    if not tasks:
        raise DataError(f"no benchmark files in {directory} (expected e.g. HumanEval.jsonl.gz, mbpp.jsonl)")
    return tasks
