"""The files of an evaluation run, written as work finishes so ``--resume`` skips what is done.

``OUT/config.json``        what generated the samples (backend, prompt mode, n, sampling); a
                           resumed run must match it, or its samples would mix two settings
``OUT/generations.jsonl``  one line per problem, appended as soon as its n samples exist
``OUT/executions.jsonl``   one line per executed (sample, check), appended as each verdict arrives
``OUT/calibration.jsonl``  one line per calibrated timeout: the canonical solution's verdict and
                           runtime, and the timeout derived from it (reused when resuming)
``OUT/scores.jsonl``       one line per scored document (perplexity) or reply (preference: ids
                           ``ID/chosen``, ``ID/rejected``): its summed negative log-likelihood in
                           nats and how many tokens it predicted; a reference model's scores are
                           under the task ``reference_journal(task, model)``
``OUT/samples.jsonl``      the merged result, one line per sample (written by the report)

Lines are flushed one by one; a run killed mid-line leaves a partial last line, which resuming
drops (with a warning), cuts from the file and redoes. Nothing is ever rewritten in place.

``TruthCache`` is shared by all runs: a benchmark's ground truth (MBPP+ and HumanEval+: the canonical
solution's outputs and its seconds per input, as EvalPlus caches them in ``~/.cache/evalplus``),
one file per problem named by the SHA-256 of everything that determines it (the check program, the
Python version, the problem's reference and inputs), so a changed dataset or harness misses instead
of reusing stale outputs. ``CODELM_EVAL_CACHE`` names its directory (default
``$XDG_CACHE_HOME/codelm/eval``, else ``~/.cache/codelm/eval``); ``off`` disables it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from codelm.errors import CodelmError

from .generation import Generated
from .program import ExecResult, Status

log = logging.getLogger(__name__)
JOURNALS = ("generations.jsonl", "executions.jsonl", "calibration.jsonl", "scores.jsonl")


def reference_journal(task: str, model: Path) -> str:
    """The ``task`` field of a reference model's scores: naming the model keeps another
    reference's scores from being reused on resume."""
    return f"{task}:reference={Path(model).resolve()}"


def _end_last_line(path: Path) -> None:
    """Make appended lines start on their own: a partial last line (dropped when read) is cut, a
    whole one that lost only its newline gets it back."""
    if not path.exists():
        return
    with open(path, "rb+") as f:
        data = f.read()
        if not data or data.endswith(b"\n"):
            return
        start = data.rfind(b"\n") + 1
        try:
            json.loads(data[start:])
        except ValueError:  # partial JSON (or bytes cut inside a character)
            f.truncate(start)
        else:
            f.write(b"\n")


class RunStore:
    """Generations and verdicts of one output directory, loaded on resume and appended to."""

    def __init__(self, out: str | Path, config: dict[str, Any], *, resume: bool = False) -> None:
        self.out = Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        existing = [name for name in (*JOURNALS, "summary.json") if (self.out / name).exists()]
        if existing and not resume:
            raise CodelmError(
                f"{self.out} already holds a run ({', '.join(existing)}): pass --resume to continue it, "
                "or choose another --output"
            )
        self._check_config(config, resume)
        self.generations: dict[tuple[str, str], list[Generated]] = {}
        self.executions: dict[tuple[str, str, int, str], ExecResult] = {}
        for record in self._read("generations.jsonl"):
            samples = [Generated(s["raw"], s["completion"], s.get("error")) for s in record["samples"]]
            self.generations[record["task"], record["task_id"]] = samples
        self.calibration: dict[tuple[str, str], dict] = {}
        for r in self._read("calibration.jsonl"):
            self.calibration[r["task"], r["key"]] = r
        for r in self._read("executions.jsonl"):
            result = ExecResult(
                Status(r["status"]), r.get("returncode"), r["runtime"], detail=r.get("detail", "")
            )
            self.executions[r["task"], r["task_id"], r["index"], r["check"]] = result
        self.scores: dict[tuple[str, str], tuple[float, int]] = {
            (r["task"], r["task_id"]): (r["nll"], r["tokens"]) for r in self._read("scores.jsonl")
        }
        for name in JOURNALS:
            _end_last_line(self.out / name)
        self._files = {name: open(self.out / name, "a", encoding="utf-8") for name in JOURNALS}  # noqa: SIM115

    def _check_config(self, config: dict[str, Any], resume: bool) -> None:
        path = self.out / "config.json"
        if resume and path.exists():
            before = json.loads(path.read_text(encoding="utf-8")).get("generation", {})
            # a run stored before the weights fingerprint existed resumes as it did then
            changed = [
                k
                for k, value in config["generation"].items()
                if before.get(k) != value and (k in before or k != "weights")
            ]
            if changed:
                details = ", ".join(f"{k}: {before.get(k)!r} -> {config['generation'][k]!r}" for k in changed)
                raise CodelmError(
                    f"{self.out} was generated with other settings ({details}); use another --output"
                )
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, path)

    def _read(self, name: str) -> Iterator[dict]:
        path = self.out / name
        if not path.exists():
            return
        lines = path.read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                if number != len(lines):
                    raise CodelmError(f"{path}:{number} is corrupt; remove the line to resume") from None
                log.warning("%s: dropping a partial last line (the run was interrupted); redoing it", path)

    def _append(self, name: str, record: dict) -> None:
        f = self._files[name]
        f.write(json.dumps(record, ensure_ascii=False) + "\n")
        f.flush()

    def add_generation(self, task: str, task_id: str, samples: list[Generated]) -> None:
        self.generations[task, task_id] = samples
        fields = [{"raw": s.raw, "completion": s.completion, "error": s.error} for s in samples]
        self._append("generations.jsonl", {"task": task, "task_id": task_id, "samples": fields})

    def add_execution(self, key: tuple[str, str, int, str], result: ExecResult) -> None:
        self.executions[key] = result
        task, task_id, index, check = key
        record = {"task": task, "task_id": task_id, "index": index, "check": check}
        record |= {"status": result.status.value, "returncode": result.returncode, "runtime": result.runtime}
        self._append("executions.jsonl", record | {"detail": result.detail})

    def add_calibration(self, task: str, key: str, timeout: float, reference: ExecResult) -> None:
        record = {"task": task, "key": key, "timeout": timeout, "status": reference.status.value}
        record |= {"runtime": reference.runtime, "detail": reference.detail}
        self.calibration[task, key] = record
        self._append("calibration.jsonl", record)

    def add_score(self, task: str, task_id: str, nll: float, tokens: int) -> None:
        self.scores[task, task_id] = (nll, tokens)
        self._append("scores.jsonl", {"task": task, "task_id": task_id, "nll": nll, "tokens": tokens})

    def close(self) -> None:
        for f in self._files.values():
            f.close()

    def write_jsonl(self, name: str, records: list[dict]) -> Path:
        """Write ``OUT/name`` whole, atomically (the merged files of the report)."""
        path = self.out / name
        tmp = path.with_suffix(".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            for record in records:
                f.write(json.dumps(record, ensure_ascii=False) + "\n")
        os.replace(tmp, path)
        return path


class TruthCache:
    """Ground truth kept across runs, one file per key; a file that cannot be read is a miss."""

    def __init__(self, root: str | Path | None) -> None:
        self.root = Path(root) if root is not None else None

    @classmethod
    def default(cls) -> TruthCache:
        """The cache ``CODELM_EVAL_CACHE`` names (``off``: none), else the user's cache directory."""
        setting = os.environ.get("CODELM_EVAL_CACHE", "")
        if setting.lower() in ("off", "0", "none"):
            return cls(None)
        if setting:
            return cls(setting)
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        return cls(Path(base) / "codelm" / "eval")

    @staticmethod
    def key(namespace: str, *parts: str | bytes) -> str:
        """A file name for what ``parts`` (and this Python, whose outputs and floats they are) determine."""
        digest = hashlib.sha256(sys.version.encode())
        for part in parts:
            data = part.encode("utf-8", "surrogatepass") if isinstance(part, str) else part
            digest.update(len(data).to_bytes(8, "big") + data)
        return f"{namespace}-{digest.hexdigest()}"

    def get(self, key: str) -> bytes | None:
        if self.root is None:
            return None
        try:
            return (self.root / key).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("ground-truth cache: cannot read %s (%s); computing it", self.root / key, exc)
            return None

    def put(self, key: str, data: bytes) -> None:
        """Write atomically (a concurrent run reads the old file or the new one, never half); a cache
        that cannot be written costs the next run time, not this one its results."""
        if self.root is None:
            return
        tmp = None
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".tmp-")
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, self.root / key)
        except OSError as exc:
            log.warning("ground-truth cache: cannot write %s (%s)", self.root, exc)
            if tmp is not None and os.path.exists(tmp):
                os.unlink(tmp)
