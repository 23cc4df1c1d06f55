"""Problems for the `rl` stage: prompts with tests, read from JSONL, checked, handed out per step.

One JSON object per line, in one of three styles (the keys say which):

    asserts  {"task_id", "prompt", "tests": ["assert f(1) == 2", ...], "setup"?: "import math",
              "reference"?: "..."}                        # function + asserts, as MBPP / HumanEval
    stdio    {"task_id", "prompt", "stdio": [{"input": "1 2\\n", "output": "3"}, ...], "reference"?}
    doctest  {"task_id", "prompt", "module", "name", "reference"}   # codelm.recipes.derive output

`reference` is what a perfect completion would be (for a completion-format prompt, the text after
the prompt). The doctest style is exactly what `codelm.recipes.derive.doctest_problems` writes from a
code corpus (functions whose doctests pass, checked in the sandbox), so problems are derived the way
the DPO pairs are; `rl.corpus` does that at the start of the stage (`derive_problems`).

Bad problems are skipped and counted, never trained on: no tests, a prompt too long for
`batch.seq_len` with `rl.max_new_tokens` of room, or a reference that fails its own tests in the
sandbox. A line that is not a JSON object with a prompt is an error naming the line: the file is
broken, and guessing would lose data silently.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from codelm.errors import CodelmError
from codelm.jsonl import numbered_records, write_records
from codelm.train.sources import epoch_order


@dataclass(frozen=True)
class Problem:
    task_id: str
    prompt: str
    style: str  # asserts | stdio | doctest
    record: dict[str, Any] = field(compare=False)  # the JSON line as read (tests, reference, ...)

    @property
    def reference(self) -> str | None:
        return self.record.get("reference")

    @property
    def tests(self) -> list[Any]:
        """One entry per test: an assert line, an {input, output} pair, or the whole doctest."""
        if self.style == "asserts":
            return [t for t in self.record.get("tests") or [] if isinstance(t, str) and t.strip()]
        if self.style == "stdio":
            return [t for t in self.record.get("stdio") or [] if isinstance(t, dict) and "input" in t]
        return [self.record["name"]] if ">>>" in self.record.get("reference", "") else []


def _style(record: dict[str, Any]) -> str:
    if "stdio" in record:
        return "stdio"
    if "module" in record and "name" in record:
        return "doctest"
    return "asserts"


def read_problems(path: str | Path) -> list[Problem]:
    """Every problem of a JSONL file, in file order; a malformed line is a one-line error."""
    p = Path(path)
    if not p.is_file():
        raise CodelmError(f"rl.data: {p} does not exist")
    problems = []
    for number, record in numbered_records(p):
        if not isinstance(record, dict) or not isinstance(record.get("prompt"), str):
            raise CodelmError(f"{p}:{number}: a problem is a JSON object with a string 'prompt'")
        task_id = str(record.get("task_id", f"line-{number}"))
        problems.append(Problem(task_id, record["prompt"], _style(record), record))
    return problems


def check_problems(
    problems: list[Problem],
    prompt_tokens: list[int],
    room: int,
    verdicts: list[bool | None],
    needs_tests: bool = True,
) -> tuple[list[int], dict[str, int]]:
    """Indexes of the usable problems and the count of each reason the others were skipped.

    `prompt_tokens` are the rendered prompts' lengths, `room` the longest prompt that leaves
    `max_new_tokens` within seq_len, `verdicts` whether each reference passed (None: no reference);
    a pluggable reward that runs no tests (`needs_tests=False`) takes problems without them."""
    keep, skipped = [], Counter()
    for i, problem in enumerate(problems):
        if needs_tests and not problem.tests:
            skipped["no_tests"] += 1
        elif prompt_tokens[i] > room:
            skipped["prompt_too_long"] += 1
        elif verdicts[i] is False:
            skipped["reference_fails"] += 1
        else:
            keep.append(i)
    return keep, dict(skipped)


def corpus_texts(corpus: str | Path) -> list[str]:
    """The documents of `rl.corpus`: a JSONL of {"text"} records, a Python file, or a directory of them."""
    src = Path(corpus)
    if src.is_dir():
        return [f.read_text(encoding="utf-8", errors="replace") for f in sorted(src.rglob("*.py"))]
    if not src.is_file():
        raise CodelmError(f"rl.corpus: {src} does not exist")
    if src.suffix != ".jsonl":
        return [src.read_text(encoding="utf-8", errors="replace")]
    texts = []
    for number, record in numbered_records(src):
        if not isinstance(record, dict) or not isinstance(record.get("text"), str):
            raise CodelmError(f"{src}:{number}: a corpus document is a JSON object with a string 'text'")
        texts.append(record["text"])
    return texts


def derive_problems(corpus: str | Path, out: Path, pool: Any, max_problems: int) -> Path:
    """Doctest problems derived from a code corpus, written to `out` once: a resume (or another
    process) reads the same file instead of deriving again (keyed by the texts' sha256 and the cap)."""
    import hashlib

    from codelm.recipes.derive import doctest_problems

    texts = corpus_texts(corpus)
    digest = hashlib.sha256("\0".join(texts).encode("utf-8", errors="replace")).hexdigest()
    key = {"corpus_sha256": digest, "max_problems": max_problems}
    stamp = out.with_suffix(".key.json")
    if out.is_file() and stamp.is_file() and json.loads(stamp.read_text()) == key:
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    write_records(doctest_problems(texts, pool=pool, max_problems=max_problems), out)
    stamp.write_text(json.dumps(key))
    return out


class PromptOrder:
    """The problems' order across epochs (seeded, process-independent) and the position in it."""

    def __init__(self, n: int, seed: int, shuffle: bool) -> None:
        if n == 0:
            raise CodelmError("rl.data: no usable problems (all were skipped; see the counts above)")
        self.n, self.seed, self.shuffle = n, seed, shuffle
        self.epoch, self.pos = 0, 0
        self._order: tuple[int, np.ndarray] | None = None

    def take(self, k: int) -> list[int]:
        """The next `k` problem indexes (an epoch boundary may fall inside)."""
        out = []
        for _ in range(k):
            if self._order is None or self._order[0] != self.epoch:
                self._order = (self.epoch, epoch_order(self.n, self.seed, self.epoch, self.shuffle))
            out.append(int(self._order[1][self.pos]))
            self.pos += 1
            if self.pos == self.n:
                self.epoch, self.pos = self.epoch + 1, 0
        return out

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "pos": self.pos}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch, self.pos = int(state["epoch"]), int(state["pos"])
        if self.pos >= self.n:
            raise CodelmError("the checkpoint's problem position is past the end of rl.data")
