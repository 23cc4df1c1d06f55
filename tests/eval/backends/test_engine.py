"""The in-process backend on tiny checkpoints: n texts per request, stop strings, FIM and chat in
the family's formats, clear refusals, and per-request failures for prompts that do not fit."""

from __future__ import annotations

import pytest

from codelm.eval.backends.engine import EngineBackend
from codelm.eval.generation import GenerationFailed, GenRequest, Sampling

SAMPLING = Sampling(temperature=0.8, top_p=0.95, max_new_tokens=8, seed=3)


@pytest.fixture(scope="module")
def seedcoder(tiny_engine):
    return EngineBackend(tiny_engine("seedcoder"))


def test_completion_infill_and_chat(seedcoder):
    requests = [
        GenRequest("completion", prompt="def add(a, b):\n", n=2, sampling=SAMPLING),
        GenRequest("infill", prompt="def add(a, b):\n    return ", suffix="\n", n=1, sampling=SAMPLING),
        GenRequest("chat", messages=({"role": "user", "content": "hi"},), n=1, sampling=SAMPLING),
    ]
    texts = seedcoder.generate(requests)
    assert [len(t) for t in texts] == [2, 1, 1] and all(isinstance(x, str) for t in texts for x in t)
    assert seedcoder.generate(requests[:1]) == texts[:1]  # seeded: reproducible whatever the batch


def test_stop_strings_are_applied(seedcoder):
    [texts] = seedcoder.generate(
        [GenRequest("completion", prompt="x", n=3, sampling=SAMPLING, stop=("e", "a", " "))]
    )
    assert all(not any(c in t for c in "ea ") for t in texts)


def test_refusals_name_the_problem(tiny_engine):
    codegen = EngineBackend(tiny_engine("codegen1"))
    assert codegen.supports("infill") == "model family codegen1 does not support fill-in-the-middle"
    assert "no chat format" in codegen.supports("chat") and codegen.supports("completion") is None


def test_a_prompt_that_does_not_fit_fails_alone(seedcoder):
    requests = [
        GenRequest("completion", prompt="def f():\n", sampling=SAMPLING),
        GenRequest("completion", prompt="x = 1\n" * 3000, sampling=SAMPLING),
    ]
    with pytest.raises(GenerationFailed) as caught:
        seedcoder.generate(requests)
    assert set(caught.value.errors) == {1} and "context window" in caught.value.errors[1]
    assert len(caught.value.texts[0]) == 1 and caught.value.texts[1] == []


def test_the_weights_fingerprint_changes_when_the_checkpoint_is_written_again(tmp_path):
    """Name, size and mtime of the weight files, none of them read: what `codelm eval --resume`
    compares, so a model trained again at the same path is not scored with the old model's answers."""
    import os

    from codelm.eval.backends.engine import weights_fingerprint

    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "config.json").write_text("{}")
    weights = ckpt / "model.safetensors"
    weights.write_bytes(b"\0" * 64)
    os.utime(weights, ns=(1_000_000_000, 1_000_000_000))
    first = weights_fingerprint(ckpt)
    assert first and weights_fingerprint(str(ckpt)) == first
    (ckpt / "config.json").write_text('{"a": 1}')  # not a weight file
    assert weights_fingerprint(ckpt) == first
    os.utime(weights, ns=(2_000_000_000, 2_000_000_000))  # written again, same bytes
    assert weights_fingerprint(ckpt) not in (None, first)
    odd = tmp_path / "odd"  # a weight file whose name is not UTF-8
    odd.mkdir()
    open(bytes(odd) + b"/\xff.safetensors", "wb").close()
    assert weights_fingerprint(odd)
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    assert weights_fingerprint(gguf) and weights_fingerprint("org/some-hub-model") is None
