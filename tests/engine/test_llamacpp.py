"""The llama.cpp backend against the PyTorch engine on the same tiny checkpoints.

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
