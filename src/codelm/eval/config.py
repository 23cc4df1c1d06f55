"""`EvalConfig`: what `codelm eval` runs, as one dataclass: its flags, `--config FILE` and a recipe's
`eval:` section all become this, and `options()` turns it into the runner's `EvalOptions`.

    tasks: [humaneval, fim-exact-match]
    n: 1
    temperature: 0.0
    limit: 200             # per task; `task_limits` overrides it for named tasks
    task_limits: {humaneval: null}
    task_max_new_tokens: {humaneval: 384}   # over max_new_tokens (default: each task's own)
    limit_spread: true     # the limited problems spread evenly over the file, not the first N
    release_window: "2024-08-01:"  # tasks with release dates (livecodebench): problems since then

Light to import (no torch): the CLI builds it before anything heavy is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from codelm.config import ConfigError

from .generation import BATCH_SIZE


@dataclass
class EvalConfig:
    tasks: list[str] = field(default_factory=list)  # task names or groups (`codelm eval --list-tasks`)
    mode: str = "base"  # base (completion / infill prompts) or chat (instruct models)
    n: int = 1  # samples per problem
    temperature: float | None = None  # default: 0 (greedy) when n is 1, else 0.2
    top_p: float = 0.95
    top_k: int | None = None
    repetition_penalty: float | None = None
    max_new_tokens: int | None = None  # default: per task
    task_max_new_tokens: dict[str, int] = field(default_factory=dict)  # per task, over max_new_tokens
    seed: int | None = None
    k: list[int] = field(default_factory=lambda: [1, 10, 100])  # pass@k values (those <= n reported)
    batch_size: int = BATCH_SIZE  # prompts per backend call (the engine keeps its rows busy across them)
    limit: int | None = None  # problems per task (default: all)
    task_limits: dict[str, int | None] = field(default_factory=dict)  # per-task limit, over `limit`
    limit_spread: bool = False  # limited problems spread evenly over the file instead of the first N
    data_dir: str | None = None  # benchmark files (default: the copies codelm ships, else the hub)
    data: dict[str, str] = field(default_factory=dict)  # task -> file or hub id
    # START:END, days as YYYY-MM-DD, both included, either open: only problems released then
    # (tasks with release dates: livecodebench)
    release_window: str | None = None
    unigram_corpus: str | None = None  # perplexity's unigram baseline: shard dir or JSONL of texts
    reference_model: str | None = None  # preference: DPO's reference checkpoint (adds reward_margin)
    dpo_beta: float = 0.1  # preference: beta of DPO's implicit reward
    workers: int = 2  # sandbox workers
    generate_only: bool = False  # write samples, execute nothing
    timeout_factor: float = 10.0  # timeout = max(floor, factor x the canonical solution's runtime)
    timeout_floor: float | None = None  # seconds (default: per task)
    require_all: bool = False  # samples file: every selected problem needs samples (else: scored as covered)

    def __post_init__(self) -> None:
        if self.mode not in ("base", "chat"):
            raise ConfigError(f"eval.mode: base or chat, got {self.mode!r}")
        if self.n < 1 or self.batch_size < 1 or self.workers < 1:
            raise ConfigError("eval: n, batch_size and workers must be >= 1")
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"eval.limit must be >= 1, got {self.limit}")
        if not self.k or min(self.k) < 1:
            raise ConfigError(f"eval.k values must be >= 1, got {self.k}")
        if self.temperature is not None and self.temperature < 0:
            raise ConfigError("eval.temperature must be >= 0")
        if self.release_window is not None:
            from .window import ReleaseWindow

            try:
                ReleaseWindow.parse(self.release_window)
            except ValueError as exc:
                raise ConfigError(f"eval.release_window: {exc}") from None
        if self.tasks:
            from codelm.eval.tasks import task_names

            task_names(self.tasks)  # unknown names fail now, with a "did you mean"

    def options(self, output: str | Path, *, allow_code_execution: bool, resume: bool = False, **extra: Any):
        """The runner's `EvalOptions` for this config (imports the runner: call it when running)."""
        from codelm.errors import CodelmError

        from .generation import GenSettings, Sampling
        from .runner import EvalOptions
        from .window import ReleaseWindow

        if not self.tasks:
            raise CodelmError("give --tasks (e.g. --tasks humaneval,mbpp; --list-tasks shows them)")
        temperature = self.temperature if self.temperature is not None else (0.0 if self.n == 1 else 0.2)
        try:
            sampling = Sampling(temperature, self.top_p, self.top_k, self.repetition_penalty, seed=self.seed)
            settings = GenSettings(
                self.mode,
                self.n,
                sampling,
                self.max_new_tokens,
                batch_size=self.batch_size,
                task_max_new_tokens=dict(self.task_max_new_tokens),
            )
            return EvalOptions(
                tasks=tuple(self.tasks),
                output=Path(output),
                settings=settings,
                ks=tuple(self.k),
                limit=self.limit,
                data_dir=Path(self.data_dir) if self.data_dir else None,
                data=dict(self.data),
                release_window=ReleaseWindow.parse(self.release_window) if self.release_window else None,
                workers=self.workers,
                execute=not self.generate_only,
                allow_code_execution=allow_code_execution,
                resume=resume,
                timeout_factor=self.timeout_factor,
                timeout_floor=self.timeout_floor,
                task_limits=dict(self.task_limits),
                spread=self.limit_spread,
                unigram_corpus=Path(self.unigram_corpus) if self.unigram_corpus else None,
                require_all=self.require_all,
                reference_model=Path(self.reference_model) if self.reference_model else None,
                dpo_beta=self.dpo_beta,
                **extra,
            )
        except ValueError as exc:
            raise CodelmError(str(exc)) from exc
