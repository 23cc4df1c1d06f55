"""Per-step document accounting that survives sharding.

Every step answers the same questions: how many documents came in, how many went out, and why
each of the others was dropped. The counts obey a conservation law that `StepStats.check`
verifies: ``docs_in + created == kept + sum(dropped.values())``. `created` is only non-zero for a
plain generator step that yields more than it reads (a splitter); built-in steps never create.
Modifying steps (PII redaction) keep every document and count what they changed in `modified`;
informational tallies ("passed unchecked: no grammar for lisp") go to `counters`.

An executor runs the same list of steps once per shard, then merges the shards' `PipelineStats`
and writes them as JSON; merging is plain addition, so the law still holds after it.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from codelm.data.document import DataError


@dataclass
class StepStats:
    """Counts for one step of one run (or of many merged runs)."""

    docs_in: int = 0
    kept: int = 0
    created: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    modified: Counter[str] = field(default_factory=Counter)
    counters: Counter[str] = field(default_factory=Counter)
    #: "source: reason" -> drops, for documents tagged with their reader (curations with several)
    dropped_by_source: Counter[str] = field(default_factory=Counter)

    @property
    def n_dropped(self) -> int:
        return sum(self.dropped.values())

    def check(self, name: str = "step") -> None:
        """Raise `DataError` if the conservation law does not hold."""
        if self.docs_in + self.created != self.kept + self.n_dropped:
            raise DataError(
                f"{name}: conservation law broken: in={self.docs_in} + created={self.created} "
                f"!= kept={self.kept} + dropped={self.n_dropped} ({dict(self.dropped)})"
            )

    def merge(self, other: StepStats) -> StepStats:
        """In-place sum of `other` into self; returns self."""
        self.docs_in += other.docs_in
        self.kept += other.kept
        self.created += other.created
        self.dropped.update(other.dropped)
        self.modified.update(other.modified)
        self.counters.update(other.counters)
        self.dropped_by_source.update(other.dropped_by_source)
        return self

    def to_dict(self) -> dict[str, Any]:
        by_source = dict(sorted(self.dropped_by_source.items()))
        return {
            "docs_in": self.docs_in,
            "kept": self.kept,
            "created": self.created,
            "dropped": dict(sorted(self.dropped.items())),
            "modified": dict(sorted(self.modified.items())),
            "counters": dict(sorted(self.counters.items())),
            **({"dropped_by_source": by_source} if by_source else {}),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StepStats:
        return cls(
            docs_in=int(d.get("docs_in", 0)),
            kept=int(d.get("kept", 0)),
            created=int(d.get("created", 0)),
            dropped=Counter(d.get("dropped", {})),
            modified=Counter(d.get("modified", {})),
            counters=Counter(d.get("counters", {})),
            dropped_by_source=Counter(d.get("dropped_by_source", {})),
        )


@dataclass
class PipelineStats:
    """The ordered stats of a pipeline's steps, keyed by step name (unique within a pipeline)."""

    steps: dict[str, StepStats] = field(default_factory=dict)

    def __getitem__(self, name: str) -> StepStats:
        try:
            return self.steps[name]
        except KeyError:
            raise KeyError(f"no step named {name!r}; steps are {list(self.steps)}") from None

    def check(self) -> None:
        """Check the conservation law at every step."""
        for name, stats in self.steps.items():
            stats.check(name)

    def merge(self, other: PipelineStats) -> PipelineStats:
        """In-place sum of another shard's stats (same step names, same order); returns self."""
        if self.steps and list(other.steps) != list(self.steps):
            raise DataError(
                f"cannot merge stats of different pipelines: {list(self.steps)} vs {list(other.steps)}"
            )
        for name, stats in other.steps.items():
            self.steps.setdefault(name, StepStats()).merge(stats)
        return self

    def to_dict(self) -> dict[str, Any]:
        return {"steps": [{"name": name, **stats.to_dict()} for name, stats in self.steps.items()]}

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PipelineStats:
        return cls({s["name"]: StepStats.from_dict(s) for s in d["steps"]})

    @classmethod
    def from_json(cls, text: str) -> PipelineStats:
        return cls.from_dict(json.loads(text))

    def summary(self) -> str:
        """One line per step: `name: in -> kept (dropped: reason=n, ...)`."""
        lines = []
        for name, s in self.steps.items():
            line = f"{name}: {s.docs_in} -> {s.kept}"
            if s.dropped:
                line += " (dropped: " + ", ".join(f"{r}={n}" for r, n in s.dropped.most_common()) + ")"
            if s.modified:
                line += " (modified: " + ", ".join(f"{r}={n}" for r, n in s.modified.most_common()) + ")"
            lines.append(line)
        return "\n".join(lines)
