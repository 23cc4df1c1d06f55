"""The tiny recipe's evaluation: does the model learn? Measured before and after training.

Four numbers a few-million-parameter model can move, all from real benchmarks and data:

* HumanEval pass@1 (greedy, Codex stop sequences), executed in codelm's sandbox; expected near 0 for
  a model this small, and reported as measured.
* Syntax validity: the share of HumanEval completions for which prompt + completion compiles.
* Single-line FIM exact match on HumanEval single-line infilling, in the family's own FIM format
  (the first generated line against the canonical middle, whitespace-trimmed).
* Held-out perplexity against a unigram baseline fitted on the training shards' token counts: a
  model that learned anything beyond token frequencies beats it.

Full benchmark runs go through `codelm eval`; this is the small fixed suite a report can show.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

HUMANEVAL_STOPS = ["\nclass", "\ndef", "\n#", "\nif", "\nprint"]  # Codex / bigcode-evaluation-harness


def _infilling(path: Path, limit: int | None) -> list[dict[str, Any]]:
    """The infilling problems, or `limit` of them spread evenly over all HumanEval tasks."""
    import gzip
    import json

    with gzip.open(path, "rt") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    if not limit or limit >= len(rows):
        return rows
    return [rows[int(i * len(rows) / limit)] for i in range(limit)]


def unigram_log_probs(shard_dirs: Sequence[str | Path], vocab_size: int) -> np.ndarray:
    """Add-one smoothed unigram log-probabilities of the training tokens."""
    from codelm.train.shards import ShardReader

    reader = ShardReader([str(d) for d in shard_dirs])
    counts = np.ones(vocab_size, dtype=np.float64)
    for i in range(len(reader)):
        counts += np.bincount(reader.document(i), minlength=vocab_size)[:vocab_size]
    return np.log(counts / counts.sum())


def perplexities(
    engine, texts: Sequence[str], unigram: np.ndarray, max_tokens: int = 512
) -> dict[str, float]:
    """Token-level perplexity of the model and of the unigram baseline on `texts`."""
    nll, base, n = 0.0, 0.0, 0
    for text in texts:
        ids = engine.encode(text)[:max_tokens]
        if len(ids) < 2:
            continue
        with torch.inference_mode():
            logits = engine.model(torch.tensor([ids], device=next(engine.model.parameters()).device)).logits
        logp = torch.log_softmax(logits[0, :-1].float(), dim=-1)
        target = torch.tensor(ids[1:], device=logp.device)
        nll -= float(logp.gather(1, target[:, None]).sum())
        base -= float(unigram[np.minimum(np.array(ids[1:]), len(unigram) - 1)].sum())
        n += len(ids) - 1
    return {"perplexity": math.exp(nll / n), "unigram_perplexity": math.exp(base / n), "tokens": n}


def _generate(engine, requests: Sequence[Any]) -> list[str]:
    """Texts of the requests; a prompt longer than the context window gets "" (it cannot pass)."""
    import sys

    from rich.progress import Progress

    fits = [len(engine.encode(r.prompt)) < engine.context_window for r in requests]
    todo = [r for r, ok in zip(requests, fits, strict=True) if ok]
    texts: list[str] = []
    with Progress(disable=not sys.stderr.isatty(), transient=True) as bar:
        task = bar.add_task("generating", total=len(todo))
        for start in range(0, len(todo), engine.max_batch_size):
            chunk = todo[start : start + engine.max_batch_size]
            texts += [r.text for r in engine.generate(chunk)]
            bar.advance(task, len(chunk))
    done = iter(texts)
    return [next(done) if ok else "" for ok in fits]


def evaluate_checkpoint(
    checkpoint: str | Path,
    *,
    data_dir: str | Path,
    heldout: Sequence[str],
    unigram: np.ndarray,
    limit: int | None = None,
    fim_limit: int | None = None,
    allow_code_execution: bool = False,
    workers: int = 2,
) -> dict[str, Any]:
    """The suite's metrics and a few sample completions for one checkpoint."""
    from codelm.engine import Engine
    from codelm.eval.tasks.humaneval import evaluate, load_problems

    engine = Engine.from_pretrained(str(checkpoint))
    data_dir = Path(data_dir)
    problems = load_problems(data_dir / "HumanEval.jsonl.gz")
    if limit:
        problems = dict(list(problems.items())[:limit])
    reqs = [
        engine.completion_request(p.prompt, max_new_tokens=128, temperature=0.0, stop=HUMANEVAL_STOPS)
        for p in problems.values()
    ]
    completions = _generate(engine, reqs)
    out: dict[str, Any] = {"humaneval_problems": len(problems)}
    valid = 0
    for p, c in zip(problems.values(), completions, strict=True):
        try:
            compile(p.prompt + c, "<completion>", "exec")
            valid += 1
        except (SyntaxError, ValueError):
            pass  # an invalid completion is exactly what this metric counts
    out["syntax_valid"] = valid / len(problems)
    if allow_code_execution:
        from codelm.eval.execution import ExecutionPool

        with ExecutionPool(workers, allow_code_execution=True) as pool:
            report = evaluate(problems, list(zip(problems, completions, strict=True)), pool, ks=(1,))
        out["humaneval_pass@1"] = report.pass_at_k[1].value
    else:
        out["humaneval_pass@1"] = None  # not executed: the caller did not opt in
    if engine.family.supports_fim:
        rows = _infilling(data_dir / "HumanEval-SingleLineInfilling.jsonl.gz", fim_limit or limit)
        reqs = [
            engine.infill_request(r["prompt"], r["suffix"], max_new_tokens=48, temperature=0.0) for r in rows
        ]
        fills = _generate(engine, reqs)
        hits = sum(
            f.split("\n")[0].strip() == r["canonical_solution"].strip()
            for f, r in zip(fills, rows, strict=True)
        )
        out["fim_exact_match"] = hits / len(rows)
        out["fim_problems"] = len(rows)
    out.update(perplexities(engine, heldout, unigram))
    out["samples"] = [
        {"prompt": p.prompt[-200:], "completion": c}
        for p, c in list(zip(problems.values(), completions, strict=True))[:3]
    ]
    return out
