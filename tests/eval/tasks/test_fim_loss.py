"""fim-loss: the likelihood of the removed line after the family's infilling prompt, scored on the
tokens the pretraining stage trains FIM on, on a tiny real checkpoint."""

from __future__ import annotations

import math

import numpy as np
import pytest

from codelm.errors import UnsupportedFeatureError
from codelm.eval.backends.engine import EngineBackend
from codelm.eval.backends.samples import SamplesBackend
from codelm.eval.runner import EvalOptions, run_eval, select
from codelm.eval.tasks import executes_code, get_task
from codelm.eval.tasks.data import resolve_source

PREFIX = "def add(a, b):\n    total = a + b\n"
MIDDLE = "    return total\n"
SUFFIX = "\n\nprint(add(1, 2))\n"


@pytest.fixture(scope="module")
def backend(tiny_checkpoint):
    from codelm.engine import Engine

    return EngineBackend(Engine.from_pretrained(str(tiny_checkpoint("llama"))))


def test_scored_tokens_are_the_trained_ones(backend):
    """The row equals what the pretraining stage builds for the same split (BOS, the piece in the
    family's order, EOS)."""
    from codelm.train.fim import FimTransform

    engine = backend.engine
    transform = FimTransform(engine.family, engine.tokenizer, 1.0, 0.0, max_tokens=4096)
    text = PREFIX + MIDDLE + SUFFIX
    cuts = (len(PREFIX), len(PREFIX) + len(MIDDLE))

    class Cuts:  # the two split points the transform draws, then nothing else
        def integers(self, low, high, size):
            return np.array(cuts)

    trained = transform.permute(text, Cuts(), spm=engine.family.fim.suffix_first)
    spec = engine.family.tokenizer
    bos = [engine.tokenizer.convert_tokens_to_ids(spec.bos)] if spec.add_bos else []
    eos = engine.tokenizer.convert_tokens_to_ids(spec.eos)
    ids, start = backend.infill_row(PREFIX, SUFFIX, MIDDLE)
    assert ids == [*bos, *trained, eos]
    middle = engine.tokenizer(MIDDLE, add_special_tokens=False)["input_ids"]
    assert ids[start:] == [*middle, eos]


def test_scores_match_a_direct_forward_pass_and_batching(backend):
    """The NLL is the model's own on the scored tokens (one forward pass per row, same run), and
    rows of different lengths batched together score as they do alone."""
    import torch

    infills = [(PREFIX, SUFFIX, MIDDLE), ("x = ", "\n", "1"), ("import os\n", "", "import sys\n" * 5)]
    got = backend.score_infills(infills)
    for infill, (nll, tokens) in zip(infills, got, strict=True):
        ids, start = backend.infill_row(*infill)
        with torch.inference_mode():
            logits = backend.engine.model(torch.tensor([ids])).logits[0]
        logp = torch.log_softmax(logits.float(), dim=-1)
        want = -sum(float(logp[i - 1, ids[i]]) for i in range(start, len(ids)))
        assert tokens == len(ids) - start
        assert nll == pytest.approx(want, rel=1e-4)
        assert backend.score_infills([infill])[0][0] == pytest.approx(nll, rel=1e-4)


def test_the_token_budget_splits_passes_and_changes_no_score(backend, monkeypatch):
    """On a CPU a pass holds at most CPU_PASS_TOKENS tokens: with room for one row per pass the
    rows are scored one pass each, to the same sums as in one shared pass. Logits are computed only
    from the first scored position on, not over the whole prompt."""
    import codelm.eval.backends.engine as module

    infills = [(PREFIX, SUFFIX, MIDDLE), ("x = ", "\n", "1"), ("import os\n", "", "import sys\n" * 5)]
    passes, widths = [], []

    def record(module_, args, out):
        passes.append(args[0].shape)
        widths.append(out.logits.shape[1])

    hook = backend.engine.model.register_forward_hook(record)
    try:
        shared = backend.score_infills(infills)
        longest = max(len(backend.infill_row(*infill)[0]) for infill in infills)
        monkeypatch.setattr(module, "CPU_PASS_TOKENS", longest)
        alone = backend.score_infills(infills)
    finally:
        hook.remove()
    assert [shape[0] for shape in passes] == [3, 1, 1, 1]
    # the prompts' logits are not computed
    assert all(w < shape[1] for w, shape in zip(widths, passes, strict=True))
    assert [t for _, t in alone] == [t for _, t in shared]
    assert [n for n, _ in alone] == pytest.approx([n for n, _ in shared], rel=1e-5)


def test_summary_on_the_bundled_problems(backend, tmp_path):
    task = get_task("fim-loss")
    assert task.local and not executes_code("fim-loss")
    options = EvalOptions(tasks=("fim-loss",), output=tmp_path / "run", limit=6, spread=True, progress=False)
    entry = run_eval(options, backend)["fim-loss"]
    assert entry["problems"] == 6 and entry["tokens"] > 6
    # per byte of the removed lines: the same NLL in bits over their UTF-8 bytes
    nll = entry["fim_loss"] * entry["tokens"]
    chosen = select(task.load(resolve_source(task)), 6, spread=True)
    size = sum(len(p.canonical_solution.encode()) for p in chosen)
    assert entry["bits_per_byte"] == pytest.approx(nll / math.log(2) / size, rel=1e-9)
    # resume: everything is journaled, nothing is rescored
    again = run_eval(
        EvalOptions(
            tasks=("fim-loss",), output=tmp_path / "run", limit=6, spread=True, progress=False, resume=True
        ),
        backend,
    )["fim-loss"]
    assert again["fim_loss"] == entry["fim_loss"]


def test_refusals(tiny_checkpoint, tmp_path):
    from codelm.engine import Engine

    no_fim = EngineBackend(Engine.from_pretrained(str(tiny_checkpoint("codegen1"))))
    options = EvalOptions(tasks=("fim-loss",), output=tmp_path / "a", limit=2, progress=False)
    with pytest.raises(UnsupportedFeatureError, match="fim-loss: model family codegen1 does not support"):
        run_eval(options, no_fim)
    assert not (tmp_path / "a" / "scores.jsonl").exists()
    samples = tmp_path / "samples.jsonl"
    samples.write_text('{"task_id": "HumanEval/0", "completion": "pass"}\n')
    with pytest.raises(UnsupportedFeatureError, match="fim-loss"):
        run_eval(
            EvalOptions(tasks=("fim-loss",), output=tmp_path / "b", progress=False), SamplesBackend(samples)
        )


@pytest.mark.parametrize("name", ["fim-loss", "perplexity", "humaneval"])
def test_a_lone_surrogate_in_a_task_file_is_refused_in_one_line(name, tmp_path):
    """JSON can escape an unpaired surrogate, which no tokenizer takes: the file is refused naming
    the record, before any model work, instead of a tokenizer traceback."""
    from codelm.errors import CodelmError
    from codelm.eval.tasks.data import Source

    path = tmp_path / "bad.jsonl"
    path.write_text(
        '{"task_id": "a", "text": "ok"}\n{"task_id": "b", "text": "x = \'\\ud800\'", "prompt": "p"}\n'
    )
    with pytest.raises(CodelmError, match=r"record 2 holds an unpaired surrogate \(U\+D800"):
        get_task(name).load(Source(path=path))
