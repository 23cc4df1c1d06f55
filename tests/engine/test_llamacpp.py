"""The llama.cpp backend against the PyTorch engine on the same tiny checkpoints, and its batched decode
against each prompt decoded alone.

f32 GGUF: greedy tokens identical to the PyTorch engine for completion and FIM prompts. f16 and q8_0
change the logits a little: measured as teacher-forced top-1 agreement along the PyTorch engine's own
greedy continuations (robust to one early divergence deciding everything after it).
"""

from __future__ import annotations

import pytest

pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (pip install 'codelm[llamacpp]')")

from codelm.engine import Engine  # noqa: E402
from codelm.errors import CodelmError  # noqa: E402
from codelm.models.gguf_export import export_gguf  # noqa: E402

PROMPTS = ["import os\n", "def fib(n):\n    ", "class Stack:\n    def __init__(self):\n", "# sort a list\n"]
FIM = [("def add(a, b):\n    return ", "\n\nprint(add(1, 2))\n"), ("for i in range(", "):\n    print(i)\n")]


@pytest.fixture(scope="module")
def gguf_engine(tiny_checkpoint, tmp_path_factory):
    """gguf_engine(family, kind) -> an Engine on the exported file (cached)."""
    out = tmp_path_factory.mktemp("llamacpp")
    engines: dict = {}

    def get(family: str, kind: str = "f32"):
        if (family, kind) not in engines:
            path = export_gguf(tiny_checkpoint(family), out / f"{family}-{kind}.gguf", kind)
            engines[family, kind] = Engine.from_pretrained(str(path), threads=1)
        return engines[family, kind]

    return get


@pytest.mark.parametrize("family", ["llama", "seedcoder"])
def test_f32_greedy_tokens_match_pytorch(family, tiny_engine, gguf_engine):
    torch_engine, cpp = tiny_engine(family), gguf_engine(family)
    greedy = {"temperature": 0, "max_new_tokens": 24, "ignore_eos": True}
    for prompt in PROMPTS:
        want, got = torch_engine.complete(prompt, **greedy), cpp.complete(prompt, **greedy)
        assert got.completions[0].token_ids == want.completions[0].token_ids, prompt
    for prefix, suffix in FIM:
        want, got = torch_engine.infill(prefix, suffix, **greedy), cpp.infill(prefix, suffix, **greedy)
        assert got.completions[0].token_ids == want.completions[0].token_ids
        assert got.text == want.text


def test_f32_logits_match_pytorch(tiny_engine, gguf_engine):
    """Same logits within 1e-3 (measured ~6e-5; leaving out the rotary q/k permutation gives ~4e-3)."""
    import torch

    torch_engine, cpp = tiny_engine("llama"), gguf_engine("llama")
    for prompt in PROMPTS:
        ids = torch_engine.encode(prompt + "    return self.items[-1]\n" * 3)
        with torch.inference_mode():
            want = torch_engine.model(torch.tensor([ids])).logits[0, -1]
        assert float((cpp.model.logits_after(ids) - want).abs().max()) < 1e-3


def _agreement(torch_engine, cpp) -> float:
    """Top-1 agreement of llama.cpp's logits along the PyTorch engine's greedy continuations."""
    same = total = 0
    for prompt in PROMPTS:
        ids = torch_engine.encode(prompt)
        cont = torch_engine.complete(prompt, temperature=0, max_new_tokens=16, ignore_eos=True)
        for token in cont.completions[0].token_ids:
            same += int(cpp.model.logits_after(ids).argmax()) == token
            total += 1
            ids = [*ids, token]
    return same / total


@pytest.mark.parametrize(("kind", "floor"), [("f32", 1.0), ("f16", 0.9), ("q8_0", 0.8)])
def test_reduced_precision_mostly_agrees(kind, floor, tiny_engine, gguf_engine):
    assert _agreement(tiny_engine("llama"), gguf_engine("llama", kind)) >= floor


def test_stream_stops_and_samples(tiny_engine, gguf_engine):
    cpp = gguf_engine("llama")
    request = cpp.completion_request("def f(x):\n", temperature=0, max_new_tokens=20, stop=["\n\n"])
    streamed = list(cpp.stream(request))
    assert streamed[-1].finish_reason in ("stop", "length")
    whole = cpp.generate([request])[0].completions[0]
    assert "".join(c.text for c in streamed) == whole.text and "\n\n" not in whole.text
    # n samples reuse the prompt's cache: greedy samples are identical, seeded ones reproducible
    many = cpp.complete("import ", n=3, temperature=0, max_new_tokens=8).completions
    assert len({c.text for c in many}) == 1 and len(many) == 3
    seeded = [cpp.complete("import ", n=2, temperature=1.0, seed=7, max_new_tokens=8) for _ in range(2)]
    assert [c.text for c in seeded[0].completions] == [c.text for c in seeded[1].completions]
    lp = cpp.complete("x = ", temperature=0, max_new_tokens=4, logprobs=2).completions[0].logprobs
    assert len(lp) == 4 and all(t.logprob <= 0 and len(t.top) == 2 for t in lp)


def test_bad_files_and_flags_are_refused(tmp_path, gguf_engine):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a gguf file")
    with pytest.raises(CodelmError, match="not a readable GGUF"):
        Engine.from_pretrained(str(bad))
    with pytest.raises(CodelmError, match="no GGUF file"):
        Engine.from_pretrained(str(tmp_path / "missing.gguf"))
    path = gguf_engine("llama").path
    with pytest.raises(CodelmError, match="drop --dtype"):
        Engine.from_pretrained(str(path), dtype="bfloat16")
    with pytest.raises(CodelmError, match="runs on the CPU"):
        Engine.from_pretrained(str(path), device="cuda")


def test_eval_backend(gguf_engine, tiny_engine):
    from codelm.eval.backends.engine import EngineBackend
    from codelm.eval.generation import LOGLIKELIHOOD, GenerationFailed, GenRequest, Sampling

    backend, reference = EngineBackend(gguf_engine("llama")), EngineBackend(tiny_engine("llama"))
    assert "does not score" in backend.supports(LOGLIKELIHOOD)
    assert backend.supports("infill") is None
    greedy = Sampling(max_new_tokens=12)
    requests = [
        GenRequest("completion", "def fib(n):\n", n=2, sampling=greedy, stop=("\ndef",)),
        GenRequest("infill", "def add(a, b):\n    return ", "\n", sampling=greedy),
        GenRequest("chat", messages=({"role": "user", "content": "Reverse a string."},), sampling=greedy),
    ]
    assert backend.generate(requests) == reference.generate(requests)
    with pytest.raises(GenerationFailed) as failed:  # a prompt past the context fails alone
        backend.generate([GenRequest("completion", "x " * 5000, sampling=greedy), requests[0]])
    assert failed.value.texts[1] == reference.generate([requests[0]])[0] and 0 in failed.value.errors


def test_cli_complete_and_infill(gguf_engine, tiny_engine, capsys):
    from codelm.cli import main

    path = str(gguf_engine("llama").path)
    assert main(["complete", "--model", path, "--prompt", "import os\n", "--max-new-tokens", "8",
                 "--temperature", "0"]) == 0  # fmt: skip
    want = tiny_engine("llama").complete("import os\n", temperature=0, max_new_tokens=8).text
    assert capsys.readouterr().out.rstrip("\n") == want.rstrip("\n")


# -- the batched decode: one context, one sequence per row ----------------------------------------
BATCH_PROMPTS = [
    "import os\n",
    "def fib(n):\n    if n < 2:\n        return n\n",
    "class Stack:\n    def __init__(self):\n        self.items = []\n\n    def push(self, x):\n",
    "# sort a list\n",
    "for i in range(10):\n    print(i)\n" * 4,
]
GREEDY = {"temperature": 0, "max_new_tokens": 20, "ignore_eos": True}


def _consistent(model) -> None:
    """codelm's record of each sequence matches what llama.cpp holds; every sequence is free."""
    import llama_cpp

    assert model.free == set(range(model.n_seq)) and not model.owner
    for s in range(model.n_seq):
        assert llama_cpp.llama_memory_seq_pos_max(model.mem, s) == len(model.cached[s]) - 1


def test_batched_greedy_equals_serial(gguf_engine):
    cpp = gguf_engine("llama")
    assert cpp.model.n_seq >= len(BATCH_PROMPTS)
    requests = [cpp.completion_request(p, **GREEDY) for p in BATCH_PROMPTS]
    alone = [cpp.generate([r])[0].completions[0] for r in requests]
    together = [r.completions[0] for r in cpp.generate(requests)]  # one batch, prompts of 4-60 tokens
    assert [c.token_ids for c in together] == [c.token_ids for c in alone]
    assert [c.text for c in together] == [c.text for c in alone]
    _consistent(cpp.model)


def test_rows_joining_mid_decode_and_leaving(gguf_engine):
    """The scheduler's path: a batch is stepped, new rows are merged into it while it decodes, a
    cancelled row is dropped by `select`; each finished row's tokens equal its prompt decoded alone."""
    from codelm.engine import llamacpp as ops

    cpp = gguf_engine("llama")
    requests = [cpp.completion_request(p, **GREEDY) for p in BATCH_PROMPTS]
    alone = [cpp.generate([r])[0].completions[0].token_ids for r in requests]
    rows = [cpp.build_rows(r)[1][0] for r in requests]
    batch = ops.prefill(cpp.model, rows[:2], cpp.pad_id)
    for _ in range(3):
        list(ops.choose_and_advance(batch))
    assert batch.n_ready == 2 and all(0 < len(r.token_ids) < 20 for r in rows[:2])
    batch = ops.merge(batch, ops.prefill(cpp.model, rows[2:], cpp.pad_id))
    list(ops.choose_and_advance(batch))
    cancelled = rows[3]
    seq = batch.state[cancelled].seq
    assert seq is not None and seq not in cpp.model.free
    cancelled.finish("cancelled")
    ops.select(batch, [j for j, r in enumerate(batch.rows) if r is not cancelled])
    assert seq in cpp.model.free and cancelled not in batch.rows  # its sequence is free at once
    while batch.rows:
        list(ops.choose_and_advance(batch))
    for j in (0, 1, 2, 4):
        assert rows[j].token_ids == alone[j], j
    _consistent(cpp.model)


def test_samples_share_the_prompt_and_the_prefix_cache(gguf_engine):
    cpp = gguf_engine("llama")
    prompt = BATCH_PROMPTS[4]  # long enough for the samples to copy the first one's cache
    want = cpp.complete(prompt, **GREEDY).completions[0].token_ids
    for s in range(cpp.model.n_seq):  # an empty prefix cache
        cpp.model.trim(s, 0)
    before = cpp.model.evaluated
    many = cpp.complete(prompt, n=3, **GREEDY).completions
    assert [c.token_ids for c in many] == [want] * 3
    ids = cpp.encode(prompt)
    assert cpp.model.evaluated - before == len(ids) + 3 * (20 - 1)  # the prompt once, then 3 rows
    holding = [s for s in range(cpp.model.n_seq) if cpp.model.cached[s][: len(ids)] == ids]
    assert len(holding) == 3
    before = cpp.model.evaluated  # now cached: a repeat evaluates the last prompt token only
    assert cpp.complete(prompt, **GREEDY).completions[0].token_ids == want
    assert cpp.model.evaluated - before == 1 + 19
    seeded = [cpp.complete(prompt, n=2, temperature=1.0, seed=3, max_new_tokens=8) for _ in range(2)]
    assert [c.token_ids for c in seeded[0].completions] == [c.token_ids for c in seeded[1].completions]
    _consistent(cpp.model)


def test_a_new_prompt_takes_an_empty_sequence_before_another_prompts_cache(gguf_engine):
    model = gguf_engine("llama").model
    for s in range(model.n_seq):
        model.trim(s, 0)
    a = list(range(10, 40))
    b = [*a[:3], *range(100, 130)]  # shares 3 tokens with a: too few to be worth a's cache
    model.logits_after(a)  # evaluated in a free sequence, which keeps it as a prefix cache
    (s_a,) = [s for s in range(model.n_seq) if model.cached[s]]
    s_b, kept = model.acquire(b)
    assert s_b != s_a and kept == 0 and model.cached[s_a] == a  # a's cache survives
    model.release(s_b)
    before = model.evaluated
    model.logits_after([*a, 7])  # a again, one token longer: only that token is evaluated
    assert model.evaluated - before == 1
    _consistent(model)


def test_scheduler_streams_batched_and_cancels(gguf_engine):
    import threading

    from codelm.engine.scheduler import Scheduler

    cpp = gguf_engine("llama")
    requests = [cpp.completion_request(p, **GREEDY) for p in BATCH_PROMPTS[:3]]
    alone = [cpp.generate([r])[0].completions[0].text for r in requests]
    long = cpp.completion_request("def main():\n", temperature=0, max_new_tokens=500, ignore_eos=True)
    scheduler = Scheduler(cpp)  # started once everything is queued: admitted together
    try:
        texts: dict[int, str] = {}
        tickets = []
        for i, r in enumerate(requests):
            texts[i] = ""
            tickets.append(scheduler.submit(r, lambda e, i=i: texts.__setitem__(i, texts[i] + e.text)))
        first = threading.Event()

        def cancel_on_first(event) -> None:
            first.set()
            cancelling.cancel()

        cancelling = scheduler.submit(long, cancel_on_first)
        scheduler.start()
        for t in tickets:
            assert t.done.wait(120)
        assert cancelling.done.wait(120) and first.is_set()
        assert [texts[i] for i in range(3)] == alone
        assert cancelling.rows[0].finish_reason == "cancelled" and cancelling.rows[0].generated < 500
        assert scheduler.stats.max_rows == 4  # decoded together
    finally:
        scheduler.close()
    _consistent(cpp.model)
