"""The generation interface: requests validate, single-turn generation cleans texts, keeps
pre-generated ones as given, and records per-request failures as failed samples."""

from __future__ import annotations

import pytest

from codelm.eval.generation import GenerationFailed, GenRequest, GenSettings, Sampling, single_turn


class Echo:
    name, pregenerated = "echo", False

    def __init__(self, fail: set[str] = frozenset(), pregenerated: bool = False):
        self.fail, self.pregenerated, self.calls = fail, pregenerated, []

    def supports(self, kind):
        return None

    def generate(self, requests):
        self.calls.append(len(requests))
        texts = [[f"{r.prompt}-{i}\nSTOP tail" for i in range(r.n)] for r in requests]
        errors = {i: "too long" for i, r in enumerate(requests) if r.prompt in self.fail}
        if errors:
            raise GenerationFailed([[] if i in errors else t for i, t in enumerate(texts)], errors)
        return texts

    def close(self):
        pass


def test_requests_validate():
    with pytest.raises(ValueError, match="unknown request kind"):
        GenRequest("edit")
    with pytest.raises(ValueError, match="needs messages"):
        GenRequest("chat")
    with pytest.raises(ValueError):
        Sampling(top_p=0)
    assert GenRequest("chat", messages=({"role": "user", "content": "hi"},)).shown_prompt == "hi"


def run(backend, prompts, n=2, batch_size=2):
    settings = GenSettings(n=n, batch_size=batch_size)
    return list(
        single_turn(
            prompts,
            backend,
            settings,
            lambda p: GenRequest("completion", prompt=p, n=n),
            lambda p, text: text.split("\nSTOP")[0],
        )
    )


def test_single_turn_batches_and_cleans():
    backend = Echo()
    out = run(backend, ["a", "b", "c"])
    assert backend.calls == [2, 1]
    assert [s.completion for s in out[2][1]] == ["c-0", "c-1"] and out[2][1][0].raw == "c-0\nSTOP tail"


def test_failures_are_per_request():
    out = run(Echo(fail={"b"}), ["a", "b", "c"])
    assert [s.error for s in out[1][1]] == ["too long", "too long"]
    assert all(s.error is None for _, samples in (out[0], out[2]) for s in samples)


def test_pregenerated_texts_are_kept_as_given():
    out = run(Echo(pregenerated=True), ["a"])
    assert out[0][1][0].completion == "a-0\nSTOP tail"
