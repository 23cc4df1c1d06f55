"""The names a curation YAML may use for readers and steps, mapped to their classes.

An explicit map from name to `"module:Class"`, imported only when a config uses the name (so
naming `near_dedup` does not import torch, and a config using only readers stays light). An
unknown name gets a "did you mean" error; a name containing `:` is taken as `module:Class` of a
step of your own. `build_step(name, settings)` splits the settings between the class's
`config_class` (a `StageConfig` dataclass such as `HeuristicsConfig`, when the class has one) and
its constructor, or calls its `from_settings` classmethod when it defines one (steps whose
construction is more than passing values, such as decontamination loading benchmark files).
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import inspect
from typing import Any

from codelm.config import check_keys
from codelm.data.document import DataError
from codelm.data.pipeline import PipelineStep

READERS: dict[str, str] = {
    "directory": "codelm.data.readers.tree:DirectoryReader",
    "packages": "codelm.data.readers.packages:PackageReader",
    "jsonl": "codelm.data.readers.records:JsonlReader",
    "parquet": "codelm.data.readers.records:ParquetReader",
    "hub": "codelm.data.readers.records:HubReader",
    "git_commits": "codelm.data.readers.commits:GitCommitReader",
    "html": "codelm.data.readers.docs:HtmlReader",
    "markup": "codelm.data.readers.docs:MarkupReader",
}

STEPS: dict[str, str] = {
    "language_filter": "codelm.data.steps.language:LanguageFilter",
    "heuristic_filter": "codelm.data.steps.heuristics:HeuristicFilter",
    "syntax_filter": "codelm.data.steps.syntax:SyntaxFilter",
    "exact_dedup": "codelm.data.steps.exact_dedup:ExactDedup",
    "near_dedup": "codelm.data.steps.near_dedup:NearDedup",
    "decontaminate": "codelm.data.steps.decontam:Decontaminate",
    "pii_redactor": "codelm.data.steps.pii:PiiRedactor",
    "quality_scorer": "codelm.data.steps.quality:QualityScorer",
    "quality_filter": "codelm.data.steps.quality:QualityFilter",
    "pack_repos": "codelm.data.steps.pack_repos:PackRepos",
    "commit_filter": "codelm.data.steps.commit_filter:CommitFilter",
    "commit_format": "codelm.data.steps.commit_format:CommitFormat",
    "code_related_filter": "codelm.data.steps.code_related:CodeRelatedFilter",
    "function_documents": "codelm.data.steps.functions:FunctionDocuments",
}


def did_you_mean(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def import_attr(spec: str) -> Any:
    """Import `module:attr`, with a clear error naming what is missing."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise DataError(f"expected 'module:Class', got {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise DataError(f"cannot import {module_name} for {spec!r}: {e}") from e
    try:
        return getattr(module, attr)
    except AttributeError:
        raise DataError(f"{module_name} has no {attr!r} (from {spec!r})") from None


def resolve(name: str, table: dict[str, str], kind: str) -> type:
    """The class registered as `name` in `table` (or a `module:Class` spec)."""
    if ":" in name:
        cls = import_attr(name)
    elif name in table:
        cls = import_attr(table[name])
    else:
        raise DataError(f"unknown {kind} {name!r}{did_you_mean(name, list(table))}; known: {sorted(table)}")
    if not (inspect.isclass(cls) and issubclass(cls, PipelineStep)):
        raise DataError(f"{name!r} is {cls!r}, not a pipeline step class")
    return cls


def _parameters(cls: type) -> set[str]:
    """Keyword names `cls(...)` accepts, following `**kwargs` up the base classes' constructors."""
    names: set[str] = set()
    for klass in cls.__mro__:
        if "__init__" not in vars(klass) or klass is object:
            continue
        params = list(inspect.signature(klass.__init__).parameters.values())[1:]
        names |= {p.name for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            break
    return names


def _split(cls: type, settings: dict[str, Any] | None, label: str) -> dict[str, Any]:
    """Keyword arguments for `cls`: keys checked, the config dataclass's fields built into `config`."""
    settings = dict(settings or {})
    config_cls = getattr(cls, "config_class", None)
    config_fields = {f.name for f in dataclasses.fields(config_cls)} if config_cls is not None else set()
    known = sorted((_parameters(cls) - {"config", "exclusion_writer", "shard"}) | config_fields)
    unknown = sorted(set(settings) - set(known))
    if unknown:
        raise DataError(
            f"{label}: unknown setting(s) {unknown}{did_you_mean(unknown[0], known)}; known: {known}"
        )
    if config_cls is not None:
        settings["config"] = config_cls.from_dict(
            {k: settings.pop(k) for k in list(settings) if k in config_fields}, label
        )
    return settings


def build(cls: type, settings: dict[str, Any] | None, label: str) -> PipelineStep:
    """Instantiate `cls` from a YAML mapping (see the module docstring)."""
    if hasattr(cls, "from_settings"):
        return cls.from_settings(dict(settings or {}))
    kwargs = _split(cls, settings, label)
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise DataError(f"{label}: {e}") from e


def check_settings(name: str, settings: dict[str, Any] | None, kind: str) -> None:
    """Validate a reader's or step's name and setting keys without building it (no I/O)."""
    cls = resolve(name, READERS if kind == "reader" else STEPS, kind)
    if hasattr(cls, "setting_keys"):
        check_keys(settings or {}, cls.setting_keys(), f"{kind} {name}")
    elif not hasattr(cls, "from_settings"):
        _split(cls, settings, f"{kind} {name}")


def build_reader(name: str, settings: dict[str, Any] | None) -> PipelineStep:
    from codelm.data.readers import Reader

    cls = resolve(name, READERS, "reader")
    if not issubclass(cls, Reader):
        raise DataError(f"reader {name!r} is {cls.__name__}, which is not a Reader")
    return build(cls, settings, f"reader {name}")


def build_step(name: str, settings: dict[str, Any] | None) -> PipelineStep:
    return build(resolve(name, STEPS, "step"), settings, f"step {name}")
