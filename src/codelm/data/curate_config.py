"""The curation YAML: readers, steps with their settings, executor and output, in one file.

    output_dir: runs/data/stdlib
    output_format: jsonl.gz            # or parquet
    write_excluded: true               # dropped documents with reasons under OUT/excluded/
    executor: {kind: local, workers: 2, shards: 8}
    readers:
      - directory: {root: "${stdlib}", layout: multi}
    steps:
      - language_filter: {languages: [python]}
      - heuristic_filter                 # a bare name: default settings
      - near_dedup: {threshold: 0.8}

Step and reader names come from `codelm.data.registry`. Strings may use `${stdlib}` (the running
Python's standard library directory) and `${NAME}` (environment variable NAME; unset is an
error). Overrides from the command line are `key=value` with dotted keys; a list entry is named
by its index or, in `readers` and `steps`, by its name: `executor.workers=4`,
`steps.near_dedup.threshold=0.85`, `readers.0.root=src/`. Values are parsed as YAML.
"""

from __future__ import annotations

import os
import re
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from codelm.data.config import StageConfig
from codelm.data.document import DataError
from codelm.data.executors import EXECUTORS
from codelm.data.executors.shard_io import FORMATS
from codelm.data.pipeline import PipelineStep
from codelm.data.registry import build_reader, build_step

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
TOP_KEYS = (
    "output_dir",
    "output_format",
    "write_excluded",
    "keep_intermediate",
    "report",
    "executor",
    "readers",
    "steps",
)


@dataclass(frozen=True)
class ExecutorConfig(StageConfig):
    """Where and how wide the run goes."""

    kind: str = "local"  #: local (processes on this machine) or ray
    workers: int = 2  #: parallel processes (local) or CPUs of a new local Ray cluster
    shards: int = 8  #: input split; fixed for a run, independent of workers (outputs do not change)
    address: str | None = None  #: ray only: an existing cluster ("auto" or ray://host:port)

    def __post_init__(self) -> None:
        if self.kind not in EXECUTORS:
            raise DataError(f"executor.kind must be one of {EXECUTORS}, got {self.kind!r}")
        if self.workers < 1 or self.shards < 1:
            raise DataError(f"executor.workers and executor.shards must be >= 1: {self}")


@dataclass(frozen=True)
class CurateConfig:
    """A parsed curation YAML (see the module docstring)."""

    output_dir: str
    readers: list[tuple[str, dict[str, Any]]]
    steps: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)
    output_format: str = "jsonl.gz"  #: final output: jsonl.gz or parquet
    write_excluded: bool = False  #: write dropped documents with their reasons under OUT/excluded/
    keep_intermediate: bool = False  #: keep stage outputs and dedup signatures after success
    report: bool = True  #: write report.md / report.html with plots

    def __post_init__(self) -> None:
        if self.output_format not in FORMATS:
            raise DataError(f"output_format must be one of {FORMATS}, got {self.output_format!r}")
        if not self.readers:
            raise DataError("a curation config needs at least one reader under `readers:`")

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> CurateConfig:
        if not isinstance(raw, dict):
            raise DataError(f"a curation config is a mapping, got {type(raw).__name__}")
        unknown = set(raw) - set(TOP_KEYS)
        if unknown:
            raise DataError(f"unknown curation setting(s) {sorted(unknown)}; known: {list(TOP_KEYS)}")
        if "output_dir" not in raw:
            raise DataError("a curation config needs `output_dir:`")
        raw = expand(raw)
        return cls(
            output_dir=str(raw["output_dir"]),
            readers=[parse_entry(e, "readers") for e in raw.get("readers") or []],
            steps=[parse_entry(e, "steps") for e in raw.get("steps") or []],
            executor=ExecutorConfig.from_dict(raw.get("executor")),
            **{
                k: raw[k]
                for k in ("output_format", "write_excluded", "keep_intermediate", "report")
                if k in raw
            },
        )

    def build(self) -> list[PipelineStep]:
        """Fresh reader and step objects, in order."""
        return [build_reader(n, s) for n, s in self.readers] + [build_step(n, s) for n, s in self.steps]

    def identity(self) -> dict[str, Any]:
        """What determines the output (not the executor's width): fingerprinted for resume."""
        return {
            "readers": self.readers,
            "steps": self.steps,
            "output_format": self.output_format,
            "write_excluded": self.write_excluded,
        }


def parse_entry(entry: Any, section: str) -> tuple[str, dict[str, Any]]:
    """`name` or `{name: settings}` -> (name, settings)."""
    if isinstance(entry, str):
        return entry, {}
    if isinstance(entry, dict) and len(entry) == 1:
        [(name, settings)] = entry.items()
        if settings is None:
            settings = {}
        if not isinstance(settings, dict):
            raise DataError(f"{section}: settings of {name!r} must be a mapping, got {settings!r}")
        return str(name), dict(settings)
    raise DataError(f"{section}: each entry is `name` or `name: {{settings}}`, got {entry!r}")


def expand(value: Any) -> Any:
    """Replace `${stdlib}`, `${site_packages}` and `${ENV_VAR}` in every string of a parsed YAML value."""
    if isinstance(value, dict):
        return {k: expand(v) for k, v in value.items()}
    if isinstance(value, list):
        return [expand(v) for v in value]
    if not isinstance(value, str):
        return value

    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        if name == "stdlib":
            return sysconfig.get_paths()["stdlib"]
        if name == "site_packages":  # the running environment's pure-Python packages
            return sysconfig.get_paths()["purelib"]
        if name not in os.environ:
            raise DataError(f"config uses ${{{name}}} but the environment variable {name} is not set")
        return os.environ[name]

    return _VAR.sub(sub, value)


def set_override(raw: dict[str, Any], assignment: str) -> None:
    """Apply one `dotted.key=value` override to a raw config mapping, in place."""
    key, sep, text = assignment.partition("=")
    if not sep or not key:
        raise DataError(f"--set expects key=value, got {assignment!r}")
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise DataError(f"--set {key}: value {text!r} is not valid YAML: {e}") from e
    node: Any = raw
    parts = key.split(".")
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(node, list):
            node, part = _list_slot(node, part, parts[i - 1] if i else key)
        if not isinstance(node, dict):
            raise DataError(f"--set {key}: {'.'.join(parts[:i])} is not a mapping")
        if last:
            node[part] = value
        else:
            if node.get(part) is None:
                node[part] = {}
            node = node[part]


def _list_slot(items: list[Any], part: str, section: str) -> tuple[dict[str, Any], str]:
    """A list entry as (mapping, key) so that the next part sets inside its settings."""
    if part.isdigit() and int(part) < len(items):
        idx = int(part)
    else:
        names = [parse_entry(e, section)[0] for e in items]
        if names.count(part) != 1:
            what = "no" if part not in names else "more than one"
            raise DataError(f"--set: {section} has {what} entry {part!r} (entries: {names}); use its index")
        idx = names.index(part)
    name, settings = parse_entry(items[idx], section)
    items[idx] = {name: settings}
    return items[idx], name


def load_config(path: str | Path, overrides: list[str] | None = None) -> CurateConfig:
    """Parse a curation YAML, apply `key=value` overrides, validate."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text("utf-8"))
    except OSError as e:
        raise DataError(f"cannot read config {path}: {e}") from e
    except yaml.YAMLError as e:
        raise DataError(f"{path}: invalid YAML: {e}") from e
    if not isinstance(raw, dict):
        raise DataError(f"{path}: a curation config is a mapping at the top level")
    for assignment in overrides or []:
        set_override(raw, assignment)
    return CurateConfig.from_dict(raw)
