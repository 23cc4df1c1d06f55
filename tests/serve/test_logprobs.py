"""Log-probabilities through the API: both OpenAI shapes, streamed and not, and the openai client."""

import httpx
import pytest
from openai import OpenAI

from .helpers import sse_payloads
from .test_gateway import UPSTREAM_KEY, pair  # noqa: F401  (fixture)

BODY = {"prompt": "import os\n", "max_tokens": 8, "temperature": 0, "ignore_eos": True}


def test_completion_logprobs_line_up_with_the_text(server, tiny_engine):
    url = server("llama").url
    choice = httpx.post(url + "/v1/completions", json={**BODY, "logprobs": 2}, timeout=60).json()["choices"][
        0
    ]
    lp = choice["logprobs"]
    assert len(lp["tokens"]) == len(lp["token_logprobs"]) == len(lp["top_logprobs"]) == 8
    joined = "".join(lp["tokens"])
    if "\ufffd" not in joined:  # a token holding part of a UTF-8 character reads as U+FFFD alone
        assert joined == choice["text"]
    assert lp["text_offset"] == [sum(map(len, lp["tokens"][:i])) for i in range(8)]
    for value, top in zip(lp["token_logprobs"], lp["top_logprobs"], strict=True):
        # greedy: the chosen token is the most likely; two ids can read alike, so the map may shrink
        assert value <= 0 and 1 <= len(top) <= 2 and max(top.values()) == pytest.approx(value)
    want = (
        tiny_engine("llama")
        .complete("import os\n", max_new_tokens=8, temperature=0, ignore_eos=True, logprobs=2)
        .completions[0]
        .logprobs
    )
    assert lp["token_logprobs"] == pytest.approx([e.logprob for e in want], abs=1e-5)


def test_streamed_completion_logprobs_equal_the_whole(server):
    url = server("llama").url
    whole = httpx.post(url + "/v1/completions", json={**BODY, "logprobs": 1}, timeout=60).json()
    with httpx.stream(
        "POST", url + "/v1/completions", json={**BODY, "logprobs": 1, "stream": True}, timeout=60
    ) as r:
        events = sse_payloads(r.iter_lines())[:-1]
    parts = [e["choices"][0]["logprobs"] for e in events if e["choices"][0]["logprobs"]]
    assert sum((p["tokens"] for p in parts), []) == whole["choices"][0]["logprobs"]["tokens"]
    assert sum((p["text_offset"] for p in parts), []) == whole["choices"][0]["logprobs"]["text_offset"]


def test_chat_logprobs_with_the_openai_client(server):
    client = OpenAI(base_url=server("stablecode").url + "/v1", api_key="unused")
    out = client.chat.completions.create(
        model="stablecode",
        messages=[{"role": "user", "content": "hi"}],
        max_tokens=5,
        temperature=0,
        logprobs=True,
        top_logprobs=3,
    )
    content = out.choices[0].logprobs.content
    assert content
    joined = "".join(t.token for t in content)
    if "\ufffd" not in joined:
        assert joined.startswith(out.choices[0].message.content.strip())
    assert all(len(t.top_logprobs) == 3 and t.bytes == list(t.token.encode()) for t in content)
    stream = client.chat.completions.create(
        model="stablecode",
        messages=[{"role": "user", "content": "hi"}],
        max_tokens=5,
        temperature=0,
        logprobs=True,
        stream=True,
    )
    streamed = [
        t.token for c in stream if c.choices and c.choices[0].logprobs for t in c.choices[0].logprobs.content
    ]
    assert streamed == [t.token for t in content]


def test_gateway_refuses_logprobs(pair):  # noqa: F811
    _, gw = pair
    r = httpx.post(gw + "/v1/completions", json={**BODY, "logprobs": 1}, timeout=60)
    assert r.status_code == 400 and "gateway mode" in r.json()["error"]["message"]
