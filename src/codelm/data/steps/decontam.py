"""Drop training files that share word n-grams with evaluation benchmarks.

Seed-Coder and DeepSeek-Coder remove any file with a 10-gram (word) overlap with HumanEval,
MBPP and the like. Words are identifier/number tokens, lower-cased, so formatting and
punctuation do not hide a copy. Two refinements keep the benchmark n-grams that are evidence:

* import lines are removed from benchmark texts, and an n-gram found in at least
  `boilerplate_tasks` tasks of one benchmark is ignored: HumanEval-X C++ prompts carry lines
  like `#include<stdio.h> #include<vector> #include<math.h> using namespace std;` (exactly 10
  words) that would otherwise flag a good share of all C++ files ever written;
* an n-gram of mostly one-letter words (`0 1 2 3 4 5 6 7 8 9`) or of few distinct words
  (`self a b self a a self b b`) says nothing. Measured on the CPython 3.11 standard library:
  43 files "contaminated" without this rule, 2 with it, while 14 of the 3,063 task records of
  shared/data (tiny MBPP solutions, mostly) are left without an n-gram to match.

The drop reason names the benchmark with the most matching n-grams: `contaminated:<benchmark>`.
"""

from __future__ import annotations

import dataclasses
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from codelm.data.benchmarks import BenchmarkTask
from codelm.data.config import StageConfig
from codelm.data.document import DataError, Document
from codelm.data.minhash import ShingleHasher, batches
from codelm.data.pipeline import PipelineStep
from codelm.data.writers import JsonlWriter

# The same tokens as ShingleHasher's byte rule: ASCII identifier characters and any non-ASCII.
_TOKEN = re.compile(r"[A-Za-z0-9_\u0080-\U0010ffff]+")
# Import lines of C/C++, Java, Go (including `import ( ... )` blocks), JS, Rust, Python
_IMPORTS = re.compile(
    r"^[ \t]*(?:#include\b.*|using namespace\b.*|import\s*\([^)]*\)|import\b.*|from\s+\S+\s+import\b.*"
    r"|package\s+\w+;?|use\s+[\w:{}, *]+;|(?:const|let|var)\s+\w+\s*=\s*require\(.*)$",
    re.MULTILINE,
)


def strip_imports(text: str) -> str:
    """Blank out import/include lines: shared by all code, they say nothing about the task."""
    return _IMPORTS.sub("", text)


@dataclass(frozen=True)
class DecontamConfig(StageConfig):
    """How overlap with benchmarks is measured."""

    ngram: int = 10  #: words per n-gram (Seed-Coder: 10)
    min_matches: int = 1  #: distinct benchmark n-grams a document must contain to be dropped
    boilerplate_tasks: int = 10  #: n-grams in at least this many tasks of a benchmark are ignored
    lowercase: bool = True  #: match case-insensitively
    #: n-grams shorter than this (summed word lengths) are uninformative ("0 1 2 3 4 5 6 7 8 9")
    min_ngram_chars: int = 30
    #: n-grams with fewer distinct words are uninformative ("self a b self a a self b b")
    min_distinct_words: int = 5

    def __post_init__(self) -> None:
        if self.ngram < 1 or self.min_matches < 1 or self.boilerplate_tasks < 2:
            raise DataError(
                f"DecontamConfig needs ngram >= 1, min_matches >= 1, boilerplate_tasks >= 2: {self}"
            )


class NgramIndex:
    """Sorted n-gram hashes of benchmark texts, each tagged with its benchmark."""

    def __init__(self, tasks: Sequence[BenchmarkTask], config: DecontamConfig | None = None) -> None:
        self.config = config or DecontamConfig()
        self.hasher = ShingleHasher(self.config.ngram, lowercase=self.config.lowercase, seed=1234)
        self.benchmarks = sorted({t.benchmark for t in tasks})
        self.ignored = 0
        hashes, owners = [], []
        by_task: dict[tuple[str, str], list[str]] = {}  # one problem may come from two files (MBPP)
        for t in tasks:
            by_task.setdefault((t.benchmark, t.task_id), []).extend(t.texts)
        for b, bench in enumerate(self.benchmarks):
            per_task = [self._ngrams(texts) for (tb, _), texts in by_task.items() if tb == bench]
            unique, n_tasks = np.unique(np.concatenate(per_task), return_counts=True)
            keep = n_tasks < self.config.boilerplate_tasks
            self.ignored += int(np.count_nonzero(~keep))
            hashes.append(unique[keep])
            owners.append(np.full(int(keep.sum()), b, dtype=np.int32))
        all_hashes = np.concatenate(hashes) if hashes else np.empty(0, np.uint64)
        order = np.argsort(all_hashes, kind="stable")
        self.hashes = all_hashes[order]
        self.owners = np.concatenate(owners)[order] if owners else np.empty(0, np.int32)

    def _ngrams(self, texts: list[str]) -> np.ndarray:
        """Unique informative n-gram hashes of one task's texts."""
        parts = [np.empty(0, np.uint64)]
        n, cfg = self.config.ngram, self.config
        for text in map(strip_imports, texts):
            h, _ = self.hasher.shingles([text], short=False)
            words = _TOKEN.findall(text.lower() if cfg.lowercase else text)
            if len(h) != max(len(words) - n + 1, 0):
                raise AssertionError(f"tokenizer mismatch: {len(h)} n-grams for {len(words)} words")
            keep = [
                sum(map(len, window)) >= cfg.min_ngram_chars and len(set(window)) >= cfg.min_distinct_words
                for window in (words[i : i + n] for i in range(len(h)))
            ]
            self.ignored += len(keep) - sum(keep)
            parts.append(h[np.array(keep, dtype=bool)])
        return np.unique(np.concatenate(parts))

    def __len__(self) -> int:
        return len(self.hashes)

    def matches_many(self, texts: Sequence[str]) -> list[Counter[str]]:
        """Per text: benchmark -> number of distinct benchmark n-grams it contains."""
        out: list[Counter[str]] = []
        for start, stop in batches(texts):
            h, offsets = self.hasher.shingles(texts[start:stop], short=False)
            if len(self.hashes) == 0:
                out.extend(Counter() for _ in range(stop - start))
                continue
            pos = np.minimum(np.searchsorted(self.hashes, h), len(self.hashes) - 1)
            hit = self.hashes[pos] == h
            for i in range(stop - start):
                lo, hi = offsets[i], offsets[i + 1]
                found = np.unique(pos[lo:hi][hit[lo:hi]])
                out.append(Counter(self.benchmarks[b] for b in self.owners[found].tolist()))
        return out


class Decontaminate(PipelineStep):
    """Drop documents with at least `min_matches` benchmark n-grams (`contaminated:<benchmark>`)."""

    def __init__(
        self,
        index: NgramIndex,
        *,
        batch_size: int = 256,
        name: str | None = None,
        exclusion_writer: JsonlWriter | None = None,
    ) -> None:
        super().__init__(name=name, exclusion_writer=exclusion_writer)
        self.index = index
        self.batch_size = batch_size

    @classmethod
    def setting_keys(cls) -> list[str]:
        """Every key `from_settings` reads (checked before any work starts)."""
        return ["benchmarks", "batch_size", "name", *(f.name for f in dataclasses.fields(DecontamConfig))]

    @classmethod
    def from_settings(cls, settings: dict[str, Any]) -> Decontaminate:
        """From a YAML mapping: `benchmarks` (a directory of benchmark files, required),
        `batch_size`, `name`, and any `DecontamConfig` field."""
        from codelm.data.benchmarks import load_benchmarks

        settings = dict(settings)
        if "benchmarks" not in settings:
            raise DataError("step decontaminate needs `benchmarks: DIR` (a directory of benchmark files)")
        directory = settings.pop("benchmarks")
        own = {k: settings.pop(k) for k in ("batch_size", "name") if k in settings}
        return cls(NgramIndex(load_benchmarks(directory), DecontamConfig.from_dict(settings)), **own)

    def run(self, docs: Iterator[Document]) -> Iterator[Document]:
        batch: list[Document] = []
        for doc in docs:
            batch.append(doc)
            if len(batch) >= self.batch_size:
                yield from self._decide(batch)
                batch = []
        yield from self._decide(batch)

    def _decide(self, batch: list[Document]) -> Iterator[Document]:
        if not batch:
            return
        for doc, hits in zip(batch, self.index.matches_many([d.text for d in batch]), strict=True):
            if sum(hits.values()) >= self.index.config.min_matches:
                # most matches first; ties broken by name so the reason is deterministic
                bench = min(hits, key=lambda b: (-hits[b], b))
                doc.metadata["contamination"] = dict(sorted(hits.items()))
                self.drop(doc, f"contaminated:{bench}")
            else:
                yield self.keep(doc)
