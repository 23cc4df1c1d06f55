"""The perplexity task on a tiny real checkpoint: the tiny recipe's numbers (its own code, same run),
whole long documents through windows, resume without rescoring, and the refusals."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from codelm.errors import CodelmError, UnsupportedFeatureError
from codelm.eval.backends.engine import EngineBackend
from codelm.eval.backends.samples import SamplesBackend
from codelm.eval.runner import EvalOptions, run_eval
from codelm.eval.tasks import get_task
from codelm.eval.tasks.data import Source

SRC = Path(__file__).resolve().parents[3] / "src" / "codelm"
# documents of different lengths, each well inside one context window and the recipe's 512 tokens
DOCUMENTS = [
    "def add(a, b):\n    return a + b\n",
    "import os\n\nfor name in sorted(os.listdir('.')):\n    print(name.upper())\n",
    "class Stack:\n    def __init__(self):\n        self.items = []\n\n    def push(self, x):\n"
    "        self.items.append(x)\n",
    "x",  # one token after BOS
    "",  # BOS only: nothing to predict, in both codes
    "# a comment\nvalues = {k: v * 2 for k, v in zip('abc', range(3))}\n" * 3,
]


@pytest.fixture(scope="module")
def engine(tiny_checkpoint):
    from codelm.engine import Engine

    return Engine.from_pretrained(str(tiny_checkpoint("llama")))


def unigram_log_probs(shard_dirs, vocab_size: int):
    """Reference: add-one smoothed unigram log-probabilities of the training tokens (the tiny
    recipe's code before it evaluated through `codelm eval`)."""
    import numpy as np

    from codelm.train.shards import ShardReader

    reader = ShardReader([str(d) for d in shard_dirs])
    counts = np.ones(vocab_size, dtype=np.float64)
    for i in range(len(reader)):
        counts += np.bincount(reader.document(i), minlength=vocab_size)[:vocab_size]
    return np.log(counts / counts.sum())


def perplexities(engine, texts, unigram, max_tokens: int = 512) -> dict[str, float]:
    """Reference: one forward pass per document, log-softmax, gather (the former recipe code)."""
    import math

    import numpy as np
    import torch

    nll, base, n = 0.0, 0.0, 0
    for text in texts:
        ids = engine.encode(text)[:max_tokens]
        if len(ids) < 2:
            continue
        with torch.inference_mode():
            logits = engine.model(torch.tensor([ids])).logits
        logp = torch.log_softmax(logits[0, :-1].float(), dim=-1)
        target = torch.tensor(ids[1:])
        nll -= float(logp.gather(1, target[:, None]).sum())
        base -= float(unigram[np.minimum(np.array(ids[1:]), len(unigram) - 1)].sum())
        n += len(ids) - 1
    size = sum(len(t.encode()) for t in texts)  # bits per byte: of every document's bytes
    return {
        "perplexity": math.exp(nll / n),
        "unigram_perplexity": math.exp(base / n),
        "tokens": n,
        "bits_per_byte": nll / math.log(2) / size,
        "unigram_bits_per_byte": base / math.log(2) / size,
    }


def write_jsonl(path: Path, texts: list[str], key: str = "id") -> Path:
    path.write_text("".join(json.dumps({key: i, "text": t}) + "\n" for i, t in enumerate(texts)))
    return path


def perplexity(tmp_path: Path, backend, name: str, **options) -> dict:
    docs = write_jsonl(tmp_path / "heldout.jsonl", DOCUMENTS)
    opts = EvalOptions(
        tasks=("perplexity",), output=tmp_path / name, data={"perplexity": str(docs)}, progress=False
    )
    return run_eval(dataclasses.replace(opts, **options), backend)["perplexity"]


def test_the_recipes_numbers(engine, tmp_path):
    """Same values as the tiny recipe's former perplexity and unigram code (kept below as the
    reference), on every corpus kind."""
    from codelm.train.shards import pack_texts, read_index

    train = [p.read_text() for p in sorted((SRC / "eval").glob("*.py"))]
    shards = pack_texts(train, engine.tokenizer, tmp_path / "shards", family="llama")
    vocab = read_index(shards)["tokenizer"]["vocab_size"]
    backend = EngineBackend(engine)

    want = perplexities(engine, DOCUMENTS, unigram_log_probs([shards], vocab))
    got = perplexity(tmp_path, backend, "shards", unigram_corpus=shards)
    assert got["tokens"] == want["tokens"] and got["documents"] == len(DOCUMENTS)
    assert got["perplexity"] == pytest.approx(want["perplexity"], rel=1e-6)
    assert got["unigram_perplexity"] == pytest.approx(want["unigram_perplexity"], rel=1e-6)
    assert got["unigram_fitted_on"] == str(shards)
    assert got["bits_per_byte"] == pytest.approx(want["bits_per_byte"], rel=1e-6)
    assert got["unigram_bits_per_byte"] == pytest.approx(want["unigram_bits_per_byte"], rel=1e-6)

    texts = perplexity(
        tmp_path, backend, "texts", unigram_corpus=write_jsonl(tmp_path / "train.jsonl", train)
    )
    assert texts["unigram_perplexity"] == pytest.approx(want["unigram_perplexity"], rel=1e-6)

    # default: fitted on the documents themselves, as if they were the training shards
    own = pack_texts(DOCUMENTS, engine.tokenizer, tmp_path / "own", family="llama")
    want_own = perplexities(engine, DOCUMENTS, unigram_log_probs([own], vocab))
    got_own = perplexity(tmp_path, backend, "own")
    assert got_own["unigram_perplexity"] == pytest.approx(want_own["unigram_perplexity"], rel=1e-6)
    assert got_own["unigram_perplexity"] < got["unigram_perplexity"]  # fitted on what it scores
    assert got_own["unigram_fitted_on"] == "the evaluated documents"
    assert got_own["perplexity"] == got["perplexity"]
    report = (tmp_path / "own" / "report.md").read_text()
    assert "| perplexity | - | 6 |" in report and "fitted on the evaluated documents" in report


def test_long_documents_are_scored_whole_in_windows(tiny_checkpoint):
    """Every token after the first is predicted once, window by window; batching changes nothing."""
    import torch

    from codelm.engine import Engine

    engine = Engine.from_pretrained(str(tiny_checkpoint("llama")))  # its own: the window is shrunk
    engine.context_window = 16
    backend = EngineBackend(engine)
    text = (SRC / "eval" / "passk.py").read_text()[:600]
    ids = engine.encode(text)
    assert len(ids) > 3 * 16
    want = 0.0
    for start in range(0, len(ids) - 1, 15):
        window = ids[start : start + 16]
        with torch.inference_mode():
            logits = engine.model(torch.tensor([window])).logits[0, :-1].float()
        want -= float(torch.log_softmax(logits, -1).gather(1, torch.tensor(window[1:])[:, None]).sum())
    [(nll, tokens)] = backend.score([text])
    assert tokens == len(ids) - 1 and nll == pytest.approx(want, rel=1e-5)
    together = backend.score([DOCUMENTS[0], text, DOCUMENTS[1]])
    alone = [backend.score([t])[0] for t in (DOCUMENTS[0], text, DOCUMENTS[1])]
    assert [t for _, t in together] == [t for _, t in alone]
    assert [n for n, _ in together] == pytest.approx([n for n, _ in alone], rel=1e-5)


class Counting:
    """The engine backend, counting the texts it is asked to score."""

    def __init__(self, backend):
        self.inner, self.scored = backend, 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def score(self, texts):
        self.scored += len(texts)
        return self.inner.score(texts)


def test_resume_rescores_nothing(engine, tmp_path):
    backend = Counting(EngineBackend(engine))
    first = perplexity(tmp_path, backend, "run")
    lines = (tmp_path / "run" / "scores.jsonl").read_text().splitlines()
    assert backend.scored == len(DOCUMENTS) == len(lines)
    assert perplexity(tmp_path, backend, "run", resume=True) == first and backend.scored == len(DOCUMENTS)


def test_refusals(engine, tmp_path):
    docs = write_jsonl(tmp_path / "docs.jsonl", DOCUMENTS)
    samples = tmp_path / "samples.jsonl"
    samples.write_text(json.dumps({"task_id": "0", "completion": "x"}) + "\n")
    with pytest.raises(UnsupportedFeatureError, match="samples file cannot score texts"):
        run_eval(
            EvalOptions(tasks=("perplexity",), output=tmp_path / "a", data={"perplexity": str(docs)}),
            SamplesBackend(samples),
        )
    from codelm.eval.backends.openai import OpenAIBackend

    assert "use --model" in OpenAIBackend("http://127.0.0.1:9", "m").supports("loglikelihood")
    backend = EngineBackend(engine)
    with pytest.raises(CodelmError, match="--data perplexity=PATH"):
        run_eval(EvalOptions(tasks=("perplexity",), output=tmp_path / "b"), backend)
    with pytest.raises(CodelmError, match="does not exist"):
        perplexity(tmp_path, backend, "c", unigram_corpus=tmp_path / "nowhere")
    from codelm.train.shards import write_shards

    other = write_shards([[1, 2, 3]], tmp_path / "other", vocab_size=7, tokenizer={"vocab_size": 7})
    with pytest.raises(CodelmError, match="vocabulary of 7 tokens"):
        perplexity(tmp_path, backend, "d", unigram_corpus=other)
    assert not (tmp_path / "d").exists()  # refused before any work
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": 1, "text": "a"}\n{"id": 1, "text": "b"}\n')
    with pytest.raises(CodelmError, match="ids repeat"):
        get_task("perplexity").load(Source(path=bad))
