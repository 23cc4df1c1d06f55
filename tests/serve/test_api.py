"""Every endpoint on a tiny checkpoint of each family: models, completions, FIM, chat, SSE framing."""

import httpx
import pytest

from codelm.models.formats import render_fim

from .helpers import sse_payloads

FAMILIES = ["codegen1", "codegemma", "stablecode", "seedcoder", "llama"]
PREFIX, SUFFIX = "def add(a, b):\n    return ", "\n\nprint(add(1, 2))\n"


@pytest.fixture(params=FAMILIES)
def family(request):
    return request.param


def client(server, family: str) -> httpx.Client:
    return httpx.Client(base_url=server(family).url, timeout=60)


def test_health_and_models(server, family, tiny_engine):
    c = client(server, family)
    assert c.get("/health").json() == {"status": "ok"}
    card = c.get("/v1/models").json()["data"][0]
    fam = tiny_engine(family).family
    assert card["id"] == family and card["object"] == "model" and card["family"] == family
    assert card["supports_fim"] == fam.supports_fim and card["supports_chat"] == (fam.chat is not None)
    assert card["context_window"] == tiny_engine(family).context_window


def test_completion_matches_the_engine(server, family, tiny_engine):
    body = {"model": family, "prompt": "import os\n", "max_tokens": 12, "temperature": 0}
    r = client(server, family).post("/v1/completions", json=body)
    assert r.status_code == 200, r.text
    data = r.json()
    assert data["object"] == "text_completion" and data["model"] == family
    want = tiny_engine(family).complete("import os\n", max_new_tokens=12, temperature=0)
    assert data["choices"][0]["text"] == want.text
    assert data["choices"][0]["finish_reason"] == want.completions[0].finish_reason
    assert data["usage"]["prompt_tokens"] == want.prompt_tokens
    assert data["usage"]["total_tokens"] == want.prompt_tokens + data["usage"]["completion_tokens"]


def test_suffix_renders_the_family_fim_or_is_refused(server, family, tiny_engine):
    engine = tiny_engine(family)
    body = {"prompt": PREFIX, "suffix": SUFFIX, "max_tokens": 10, "temperature": 0}
    r = client(server, family).post("/v1/completions", json=body)
    if not engine.family.supports_fim:
        assert r.status_code == 400
        error = r.json()["error"]
        assert "model does not support fill-in-the-middle" in error["message"]
        assert error["type"] == "invalid_request_error" and error["code"] == "unsupported_feature"
        return
    assert r.status_code == 200, r.text
    data = r.json()
    # the prompt the server ran is the family's own FIM rendering: same tokens, same greedy text
    assert data["usage"]["prompt_tokens"] == len(engine.encode(render_fim(engine.family, PREFIX, SUFFIX)))
    assert data["choices"][0]["text"] == engine.infill(PREFIX, SUFFIX, max_new_tokens=10, temperature=0).text


def test_chat_or_refusal(server, family, tiny_engine):
    engine = tiny_engine(family)
    messages = [
        {"role": "user", "content": "Reverse a string."},
        {"role": "assistant", "content": "s[::-1]"},
        {"role": "user", "content": "In a function?"},
    ]
    body = {"messages": messages, "max_tokens": 8, "temperature": 0}
    r = client(server, family).post("/v1/chat/completions", json=body)
    if engine.family.chat is None:
        assert r.status_code == 400 and "no chat format" in r.json()["error"]["message"]
        return
    assert r.status_code == 200, r.text
    data = r.json()
    assert data["object"] == "chat.completion"
    choice = data["choices"][0]
    assert choice["message"]["role"] == "assistant"
    assert choice["message"]["content"] == engine.chat(messages, max_new_tokens=8, temperature=0).text
    assert data["usage"]["prompt_tokens"] == len(engine.encode(engine.chat_request(messages).prompt))


def test_completion_stream_framing(server, family):
    body = {"prompt": "class Stack:\n", "max_tokens": 10, "temperature": 0, "ignore_eos": True}
    c = client(server, family)
    plain = c.post("/v1/completions", json=body).json()
    stream_body = {**body, "stream": True, "stream_options": {"include_usage": True}}
    with c.stream("POST", "/v1/completions", json=stream_body) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        raw = r.read().decode()
    assert raw.endswith("data: [DONE]\n\n")
    assert all(block.startswith("data: ") for block in raw.split("\n\n") if block)
    events = sse_payloads(raw.splitlines())
    assert events[-1] == "[DONE]"
    usage, chunks = events[-2], events[:-2]
    assert usage["choices"] == [] and usage["usage"] == plain["usage"]
    assert all(ch["object"] == "text_completion" and ch["id"] == chunks[0]["id"] for ch in chunks)
    text = "".join(ch["choices"][0]["text"] for ch in chunks)
    if family != "codegen1":  # codegen1's truncate_before_pattern only runs on the final text
        assert text == plain["choices"][0]["text"]
    assert chunks[-1]["choices"][0]["finish_reason"] == plain["choices"][0]["finish_reason"] == "length"
    assert all(ch["choices"][0]["finish_reason"] is None for ch in chunks[:-1])


def test_chat_stream_framing(server):
    body = {
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 6,
        "n": 2,
        "seed": 1,
        "temperature": 0.9,
    }
    c = client(server, "stablecode")
    plain = c.post("/v1/chat/completions", json=body).json()
    with c.stream("POST", "/v1/chat/completions", json={**body, "stream": True}) as r:
        events = sse_payloads(r.iter_lines())
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert all(ch["object"] == "chat.completion.chunk" for ch in chunks)
    for i in range(2):
        mine = [ch["choices"][0] for ch in chunks if ch["choices"][0]["index"] == i]
        # reasoning_content is null for a reply without thinking, as vLLM sends it
        assert mine[0]["delta"] == {"role": "assistant", "content": "", "reasoning_content": None}
        assert mine[-1]["finish_reason"] in ("stop", "length") and mine[-1]["delta"].get("content") is None
        text = "".join(ch["delta"].get("content") or "" for ch in mine)
        assert text == plain["choices"][i]["message"]["content"]  # seeded: same samples


def test_batched_prompts_and_n(server):
    body = {
        "prompt": ["import os\n", "x = 1\n"],
        "n": 2,
        "max_tokens": 5,
        "temperature": 0,
        "ignore_eos": True,
    }
    data = client(server, "llama").post("/v1/completions", json=body).json()
    assert [ch["index"] for ch in data["choices"]] == [0, 1, 2, 3]
    texts = [ch["text"] for ch in data["choices"]]
    assert texts[0] == texts[1] and texts[2] == texts[3]  # greedy: the n samples agree
    assert data["usage"]["completion_tokens"] == 20
