"""The OpenAI-compatible backend against codelm's own server on a loopback port: completions,
FIM through `suffix`, chat, n samples, stops cut client-side, and errors that say what happened."""

from __future__ import annotations

import pytest

from codelm.errors import CodelmError, UnsupportedFeatureError
from codelm.eval.backends.openai import OpenAIBackend, api_base
from codelm.eval.generation import GenerationFailed, GenRequest, Sampling
from codelm.serve.app import create_app
from codelm.serve.engine_client import LocalEngineClient
from codelm.serve.launch import ServerThread

SAMPLING = Sampling(temperature=0.8, max_new_tokens=8, seed=1)


@pytest.fixture(scope="module")
def servers(tiny_engine):
    running = {
        f: ServerThread(create_app(LocalEngineClient(tiny_engine(f)), f"tiny-{f}")).start()
        for f in ("seedcoder", "codegen1")
    }
    yield {f: s.url for f, s in running.items()}
    for s in running.values():
        s.stop()


def test_api_base():
    assert api_base("http://h:1") == "http://h:1/v1" == api_base("http://h:1/v1/")


def test_completion_infill_chat(servers):
    backend = OpenAIBackend(servers["seedcoder"], concurrency=3)
    assert backend.model == "tiny-seedcoder"  # from /v1/models
    requests = [
        GenRequest("completion", prompt="def add(a, b):\n", n=2, sampling=SAMPLING, stop=("\n\n",)),
        GenRequest("infill", prompt="def add(a, b):\n    return ", suffix="\n", sampling=SAMPLING),
        GenRequest("chat", messages=({"role": "user", "content": "hi"},), sampling=SAMPLING),
    ]
    texts = backend.generate(requests)
    assert [len(t) for t in texts] == [2, 1, 1] and "\n\n" not in texts[0][0]
    body = backend.body(requests[1])
    assert body["suffix"] == "\n" and body["seed"] == 1 and "top_k" not in body
    backend.close()


def test_fim_refusal_ends_the_run(servers):
    backend = OpenAIBackend(servers["codegen1"])
    with pytest.raises(UnsupportedFeatureError, match="fill-in-the-middle"):
        backend.generate([GenRequest("infill", prompt="a", suffix="b", sampling=SAMPLING)])


def test_a_refused_request_fails_alone(servers):
    backend = OpenAIBackend(servers["seedcoder"])
    requests = [
        GenRequest("completion", prompt="x", sampling=SAMPLING),
        GenRequest("completion", prompt="x = 1\n" * 3000),
    ]
    with pytest.raises(GenerationFailed) as caught:
        backend.generate(requests)
    assert set(caught.value.errors) == {1} and len(caught.value.texts[0]) == 1


def test_unreachable_server():
    with pytest.raises(CodelmError, match="cannot reach"):
        OpenAIBackend("http://127.0.0.1:9", retries=0)
