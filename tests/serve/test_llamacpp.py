"""`codelm serve --model FILE.gguf`: the same API on the llama.cpp backend, concurrent requests batched."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (pip install 'codelm[llamacpp]')")

from codelm.engine import Engine  # noqa: E402
from codelm.models.gguf_export import export_gguf  # noqa: E402
from codelm.serve.engine_client import LocalEngineClient  # noqa: E402

from .helpers import sse_payloads  # noqa: E402

PREFIX, SUFFIX = "def add(a, b):\n    return ", "\n\nprint(add(1, 2))\n"


@pytest.fixture(scope="module")
def cpp_engine(tiny_checkpoint, tmp_path_factory):
    path = export_gguf(tiny_checkpoint("llama"), tmp_path_factory.mktemp("serve-gguf") / "t.gguf", "f32")
    return Engine.from_pretrained(str(path), threads=1)


def test_completions_fim_chat_and_stream(cpp_engine, tiny_engine, start_server):
    c = httpx.Client(base_url=start_server(LocalEngineClient(cpp_engine), "t").url, timeout=60)
    torch_engine = tiny_engine("llama")
    r = c.post("/v1/completions", json={"prompt": "import os\n", "max_tokens": 12, "temperature": 0})
    assert r.status_code == 200, r.text
    assert (
        r.json()["choices"][0]["text"]
        == torch_engine.complete("import os\n", max_new_tokens=12, temperature=0).text
    )
    body = {"prompt": PREFIX, "suffix": SUFFIX, "max_tokens": 10, "temperature": 0}
    r = c.post("/v1/completions", json=body)
    assert (
        r.json()["choices"][0]["text"]
        == torch_engine.infill(PREFIX, SUFFIX, max_new_tokens=10, temperature=0).text
    )
    messages = [{"role": "user", "content": "Reverse a string."}]
    r = c.post("/v1/chat/completions", json={"messages": messages, "max_tokens": 8, "temperature": 0})
    assert r.status_code == 200, r.text
    assert (
        r.json()["choices"][0]["message"]["content"]
        == torch_engine.chat(messages, max_new_tokens=8, temperature=0).text
    )
    with c.stream("POST", "/v1/completions", json={**body, "stream": True}) as s:
        payloads = sse_payloads(s.iter_lines())
    assert payloads[-1] == "[DONE]"
    assert "".join(p["choices"][0]["text"] for p in payloads[:-1]) == r_text(c, body)
    too_long = {"prompt": "x " * 5000, "max_tokens": 4}
    assert c.post("/v1/completions", json=too_long).status_code == 400  # the context window, as 4xx


def r_text(c: httpx.Client, body: dict) -> str:
    return c.post("/v1/completions", json=body).json()["choices"][0]["text"]


def test_concurrent_requests_all_finish(cpp_engine, start_server):
    url = start_server(LocalEngineClient(cpp_engine), "t").url
    prompts = [f"def f{i}(x):\n" for i in range(6)]

    def one(prompt: str) -> str:
        body = {"prompt": prompt, "max_tokens": 16, "temperature": 0}
        return httpx.post(f"{url}/v1/completions", json=body, timeout=60).json()["choices"][0]["text"]

    with ThreadPoolExecutor(6) as pool:
        together = list(pool.map(one, prompts))
    assert together == [one(p) for p in prompts]  # batched together, each exactly as alone
