"""`reasoning_content` in chat replies (vLLM's and DeepSeek's field), whole and streamed, the
`max_thinking_tokens` budget and its 400s, a tiny model on a reasoning template, and gateway mode.

Exact thinking comes from a scripted tiny model (`script_tokens`); a tiny model left alone writes
no markers, which is the other case a client must handle (reasoning_content null).
"""

from __future__ import annotations

import httpx
import pytest

from codelm.engine import Engine
from codelm.engine.loader import Loaded
from codelm.models import get_family
from codelm.models.tiny import script_tokens
from codelm.serve.engine_client import LocalEngineClient
from codelm.serve.gateway import GatewayClient

from .helpers import sse_payloads

CHAT = "/v1/chat/completions"
USER = [{"role": "user", "content": "Write f."}]
THOUGHT, ANSWER = "f must return one.", "```python\ndef f():\n    return 1\n```"
SCRIPT = f"<think>\n{THOUGHT}\n</think>\n\n{ANSWER}"


def _chars(engine: Engine, text: str) -> list[int]:
    """One token per character, so the markers reach the server cut across many tokens."""
    return [i for ch in text for i in engine.tokenizer(ch, add_special_tokens=False)["input_ids"]]


@pytest.fixture
def scripted_server(own_engine, start_server):
    """(url, script()): a llama server whose next reply is SCRIPT, one character per token."""
    engine = own_engine("llama")
    ids = [*_chars(engine, SCRIPT), engine.tokenizer.eos_token_id]
    handles = []

    def script() -> None:
        for h in handles:
            h.remove()
        handles[:] = [script_tokens(engine.model, ids)]

    return start_server(LocalEngineClient(engine), "llama").url, script


def _stream(url: str, body: dict) -> list:
    with httpx.stream("POST", url + CHAT, json={**body, "stream": True}, timeout=60) as r:
        assert r.status_code == 200
        return sse_payloads(r.iter_lines())


def test_reply_carries_reasoning_apart_from_content(scripted_server):
    url, script = scripted_server
    script()
    r = httpx.post(url + CHAT, json={"messages": USER, "max_tokens": 200, "temperature": 0}, timeout=60)
    msg = r.json()["choices"][0]["message"]
    assert (msg["reasoning_content"], msg["content"]) == (THOUGHT, ANSWER)
    assert r.json()["usage"]["completion_tokens"] == len(SCRIPT) + 1  # thinking is billed too (+ EOS)


def test_streamed_reasoning_deltas_come_first_and_concatenate(scripted_server):
    url, script = scripted_server
    script()
    events = _stream(url, {"messages": USER, "max_tokens": 200, "temperature": 0})
    assert events[-1] == "[DONE]"
    deltas = [e["choices"][0]["delta"] for e in events[:-1]]
    reasoning = [d["reasoning_content"] for d in deltas if d.get("reasoning_content")]
    content = [d["content"] for d in deltas if d.get("content")]
    assert "".join(reasoning) == THOUGHT and "".join(content) == ANSWER
    first_content = next(i for i, d in enumerate(deltas) if d.get("content"))
    assert not any(d.get("reasoning_content") for d in deltas[first_content:])
    assert not any("think>" in (d.get("content") or "") + (d.get("reasoning_content") or "") for d in deltas)
    assert events[-2]["choices"][0]["finish_reason"] == "stop"


def test_thinking_budget_is_applied(scripted_server):
    url, script = scripted_server
    script()
    body = {"messages": USER, "max_tokens": 200, "temperature": 0, "max_thinking_tokens": 4}
    msg = httpx.post(url + CHAT, json=body, timeout=60).json()["choices"][0]["message"]
    # four tokens after <think>: the newline (dropped from the text as layout), then "f", " ", "m"
    assert msg["reasoning_content"] == THOUGHT[:3]
    assert msg["content"] and "</think>" not in msg["reasoning_content"]
    script()
    events = _stream(url, body)
    deltas = [e["choices"][0]["delta"] for e in events[:-1]]
    assert "".join(d.get("reasoning_content") or "" for d in deltas) == THOUGHT[:3]
    assert "".join(d.get("content") or "" for d in deltas) == msg["content"]


@pytest.mark.parametrize("bad", [-1, 1.5, "3", True, None])
def test_bad_thinking_budget_is_a_400(server, bad):
    body = {"messages": USER, "max_tokens": 5, "max_thinking_tokens": bad}
    r = httpx.post(server("llama").url + CHAT, json=body, timeout=60)
    if bad is None:  # null means no budget
        assert r.status_code == 200
        return
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert "max_thinking_tokens" in err["message"] or err.get("param") == "max_thinking_tokens"


def test_completions_do_not_take_a_thinking_budget(server):
    """The field is a chat field: /v1/completions ignores unknown fields, as OpenAI servers do."""
    r = httpx.post(
        server("llama").url + "/v1/completions",
        json={"prompt": "x = ", "max_tokens": 3, "max_thinking_tokens": 2},
        timeout=60,
    )
    assert r.status_code == 200


def test_tiny_model_on_the_reasoning_template_has_no_reasoning(tiny_engine, start_server):
    """Seed-Coder-8B-Reasoning's template on a tiny model: it writes no markers, so
    reasoning_content is null whole and in every streamed delta, and content is the whole reply."""
    base = tiny_engine("seedcoder")
    engine = Engine(Loaded(base.model, base.tokenizer, base.family, base.path), chat_format="reasoning")
    url = start_server(LocalEngineClient(engine), "seed-reasoning").url
    body = {"messages": USER, "max_tokens": 8, "temperature": 0, "max_thinking_tokens": 2}
    data = httpx.post(url + CHAT, json=body, timeout=60).json()
    msg = data["choices"][0]["message"]
    want = base.generate([engine.chat_request(USER, max_new_tokens=8, temperature=0)])[0].text
    assert msg["reasoning_content"] is None and msg["content"] == want
    events = _stream(url, body)
    deltas = [e["choices"][0]["delta"] for e in events[:-1]]
    assert all(d.get("reasoning_content") is None for d in deltas)
    assert "".join(d.get("content") or "" for d in deltas) == want
    # the reasoning template refuses a system turn with a 400, as the model's own template does
    r = httpx.post(url + CHAT, json={"messages": [{"role": "system", "content": "s"}, *USER]}, timeout=60)
    assert r.status_code == 400 and "System role not supported" in r.json()["error"]["message"]


def test_past_reasoning_sent_back_is_accepted_and_not_rendered(server, tiny_engine):
    convo = [
        *USER,
        {"role": "assistant", "content": "ok", "reasoning_content": "secret plan"},
        {"role": "user", "content": "again"},
    ]
    r = httpx.post(server("llama").url + CHAT, json={"messages": convo, "max_tokens": 3}, timeout=60)
    assert r.status_code == 200
    prompt = tiny_engine("llama").chat_request([{"role": m["role"], "content": m["content"]} for m in convo])
    assert "secret plan" not in prompt.prompt


def test_gateway_separates_reasoning_from_the_upstream_text(own_engine, start_server):
    """The upstream answers /v1/completions with raw text; the gateway splits it like a local server."""
    engine = own_engine("llama")
    ids = [*_chars(engine, SCRIPT), engine.tokenizer.eos_token_id]
    upstream = start_server(LocalEngineClient(engine), "llama").url
    gateway = start_server(GatewayClient(upstream, "llama", get_family("llama")), "llama-gw").url
    body = {"messages": USER, "max_tokens": 200, "temperature": 0}
    handle = script_tokens(engine.model, ids)
    msg = httpx.post(gateway + CHAT, json=body, timeout=60).json()["choices"][0]["message"]
    handle.remove()
    assert (msg["reasoning_content"], msg["content"]) == (THOUGHT, ANSWER)
    handle = script_tokens(engine.model, ids)
    events = _stream(gateway, body)
    handle.remove()
    deltas = [e["choices"][0]["delta"] for e in events[:-1]]
    assert "".join(d.get("reasoning_content") or "" for d in deltas) == THOUGHT
    assert "".join(d.get("content") or "" for d in deltas) == ANSWER
    r = httpx.post(gateway + CHAT, json={**body, "max_thinking_tokens": 3}, timeout=60)
    assert r.status_code == 400 and "gateway mode" in r.json()["error"]["message"]


def test_official_openai_client_reads_reasoning_content(scripted_server):
    """The `openai` client keeps the extra field, whole and streamed, and sends the budget in extra_body."""
    import openai

    url, script = scripted_server
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="none", max_retries=0)
    script()
    out = client.chat.completions.create(model="llama", messages=USER, max_tokens=200, temperature=0)
    assert (out.choices[0].message.reasoning_content, out.choices[0].message.content) == (THOUGHT, ANSWER)
    script()
    stream = client.chat.completions.create(
        model="llama",
        messages=USER,
        max_tokens=200,
        temperature=0,
        stream=True,
        extra_body={"max_thinking_tokens": 4},
    )
    deltas = [c.choices[0].delta for c in stream if c.choices]
    assert "".join(getattr(d, "reasoning_content", None) or "" for d in deltas) == THOUGHT[:3]
    with pytest.raises(openai.BadRequestError, match="max_thinking_tokens"):
        client.chat.completions.create(model="llama", messages=USER, extra_body={"max_thinking_tokens": -2})
