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

Step and reader names come from `codelm.data.registry`. Parsing is the project's one config layer
(`codelm.config`): strings may use `${stdlib}` (the running Python's standard library directory),
`${site_packages}` and `${NAME}` (a variable the caller passes, else environment variable NAME;
unset is an error). Overrides from the command line are `key=value` with dotted keys; a list entry
is named by its index or, in `readers` and `steps`, by its name: `executor.workers=4`,
`steps.near_dedup.threshold=0.85`, `readers.0.root=src/`. Values are parsed as YAML.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from codelm.config import build, check_keys, expand, read_yaml, set_override
from codelm.data.config import StageConfig
from codelm.data.document import DataError
from codelm.data.executors import EXECUTORS
from codelm.data.executors.shard_io import FORMATS
from codelm.data.pipeline import PipelineStep
from codelm.data.registry import build_reader, build_step, check_settings

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
class _Flat:
    """The scalar top-level keys, typed (coerced by the config layer before CurateConfig checks)."""

    output_format: str = "jsonl.gz"
    write_excluded: bool = False
    keep_intermediate: bool = False
    report: bool = True


_FLAT = ("output_format", "write_excluded", "keep_intermediate", "report")


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
    def from_dict(
        cls,
        raw: dict[str, Any],
        variables: Mapping[str, str] | None = None,
        where: str = "curation config",
        *,
        lenient: bool = False,
    ) -> CurateConfig:
        """Validate a raw mapping: every key known, every reader and step buildable now."""
        if not isinstance(raw, dict):
            raise DataError(f"a curation config is a mapping, got {type(raw).__name__}")
        check_keys(raw, list(TOP_KEYS), where)
        if "output_dir" not in raw:
            raise DataError("a curation config needs `output_dir:`")
        raw = expand(raw, variables, lenient=lenient)
        flat = {k: v for k, v in raw.items() if k in _FLAT}
        config = cls(
            output_dir=str(raw["output_dir"]),
            readers=[parse_entry(e, "readers") for e in raw.get("readers") or []],
            steps=[parse_entry(e, "steps") for e in raw.get("steps") or []],
            executor=build(ExecutorConfig, raw.get("executor"), f"{where}: executor"),
            **{k: v for k, v in build(_Flat, flat, where).__dict__.items() if k in flat},
        )
        config.check()
        return config

    def check(self) -> None:
        """Unknown readers, steps and settings fail here, before any work starts."""
        for name, settings in self.readers:
            check_settings(name, settings, "reader")
        for name, settings in self.steps:
            check_settings(name, settings, "step")

    def build(self) -> list[PipelineStep]:
        """Fresh reader and step objects, in order."""
        return [build_reader(n, s) for n, s in self.readers] + [build_step(n, s) for n, s in self.steps]

    def to_raw(self) -> dict[str, Any]:
        """The config as its YAML would hold it (what `--print-config` prints)."""
        from codelm.config import to_dict

        return {
            "output_dir": self.output_dir,
            "output_format": self.output_format,
            "write_excluded": self.write_excluded,
            "keep_intermediate": self.keep_intermediate,
            "report": self.report,
            "executor": to_dict(self.executor),
            "readers": [{name: settings} for name, settings in self.readers],
            "steps": [{name: settings} for name, settings in self.steps],
        }

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


def load_config(
    path: str | Path, overrides: list[str] | None = None, variables: Mapping[str, str] | None = None
) -> CurateConfig:
    """Parse a curation YAML, apply `key=value` overrides, validate."""
    raw = read_yaml(path, "curation config")
    for assignment in overrides or []:
        set_override(raw, assignment)
    return CurateConfig.from_dict(raw, variables, str(path))
