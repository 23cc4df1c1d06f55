"""Gateway mode: a codelm server forwarding rendered prompts to a second codelm server upstream.

Both servers run on loopback ports started by the test. The gateway has no model: it renders the
family's FIM and chat prompts and stop rules, and must answer exactly what the local server does.
"""

import argparse
import json

import httpx
import pytest

from codelm.errors import CodelmError
from codelm.models import get_family
from codelm.serve.engine_client import LocalEngineClient
from codelm.serve.gateway import GatewayClient
from codelm.serve.launch import build_backend

from .helpers import sse_payloads

UPSTREAM_KEY = "upstream-key"


@pytest.fixture
def pair(server, start_server, tiny_checkpoint):
    """(direct url, gateway url): the same llama model served locally and through the gateway."""
    upstream = server("llama", api_key=UPSTREAM_KEY)
    path = str(tiny_checkpoint("llama"))
    backend = GatewayClient(upstream.url, "llama", get_family("llama"), api_key=UPSTREAM_KEY)
    gateway = start_server(backend, "llama-gw", aliases=[path])
    return upstream.url, gateway.url


def post(url: str, path: str, body: dict, key: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.post(url + path, json=body, headers=headers, timeout=60)


def test_fim_and_chat_match_the_local_server(pair):
    direct, gw = pair
    fim = {"prompt": "def add(a, b):\n    return ", "suffix": "\n", "max_tokens": 12, "temperature": 0}
    chat = {"messages": [{"role": "user", "content": "Sort a list."}], "max_tokens": 12, "temperature": 0}
    for path, body in (("/v1/completions", fim), ("/v1/chat/completions", chat)):
        want = post(direct, path, body, UPSTREAM_KEY).json()
        got = post(gw, path, body).json()
        assert got["model"] == "llama-gw"
        assert got["choices"] == want["choices"]
        assert got["usage"] == want["usage"]


def test_streaming_is_relayed(pair):
    direct, gw = pair
    body = {"prompt": "import os\n", "max_tokens": 10, "temperature": 0, "ignore_eos": True}
    want = post(direct, "/v1/completions", body, UPSTREAM_KEY).json()["choices"][0]["text"]
    with httpx.stream("POST", gw + "/v1/completions", json={**body, "stream": True}, timeout=60) as r:
        events = sse_payloads(r.iter_lines())
    assert events[-1] == "[DONE]" and len(events) > 3
    assert "".join(e["choices"][0]["text"] for e in events[:-1]) == want
    assert events[-2]["choices"][0]["finish_reason"] == "length"


def test_stops_line_mode_and_context_are_applied_by_the_gateway(pair):
    direct, gw = pair
    body = {"prompt": "def walk(root):\n", "max_tokens": 30, "temperature": 0, "ignore_eos": True}
    full = post(direct, "/v1/completions", body, UPSTREAM_KEY).json()["choices"][0]["text"]
    stop = full[10:13]
    got = post(gw, "/v1/completions", {**body, "stop": [stop]}).json()["choices"][0]
    assert got["text"] == full[: full.index(stop)] and got["finish_reason"] == "stop"
    ctx = {**body, "context_files": [{"path": "a.py", "content": "A = 1\n"}], "mode": "line", "path": "b.py"}
    ctx.pop("ignore_eos")
    assert (
        post(gw, "/v1/completions", ctx).json()["choices"]
        == post(direct, "/v1/completions", ctx, UPSTREAM_KEY).json()["choices"]
    )


def test_upstream_errors_become_client_errors(pair, tiny_engine):
    _, gw = pair
    too_long = post(gw, "/v1/completions", {"prompt": "x = 1\n" * tiny_engine("llama").context_window})
    assert too_long.status_code == 400
    assert "upstream refused the request" in too_long.json()["error"]["message"]
    assert "context window" in too_long.json()["error"]["message"]
    bad = post(gw, "/v1/completions", {"prompt": "x", "temperature": -1})
    assert bad.status_code == 400 and "temperature" in bad.json()["error"]["message"]  # checked locally


def test_fim_refused_for_codegen1_without_asking_upstream(start_server):
    backend = GatewayClient("http://127.0.0.1:9", "m", get_family("codegen1"))  # nothing listens there
    url = start_server(backend, "cg").url
    r = post(url, "/v1/completions", {"prompt": "a", "suffix": "b"})
    assert (
        r.status_code == 400 and "model does not support fill-in-the-middle" in r.json()["error"]["message"]
    )
    r = post(url, "/v1/completions", {"prompt": "a"})
    assert r.status_code == 502 and "unreachable" in r.json()["error"]["message"]


def test_payload_carries_the_family_stops():
    client = GatewayClient("http://127.0.0.1:9/v1", "org/name", get_family("seedcoder"))
    request = client.infill_request("a", "b", max_new_tokens=5, stop=["\n\n"])
    body = client.payload([request])
    assert client.url == "http://127.0.0.1:9/v1"
    assert body["prompt"] == "<[fim-suffix]>b<[fim-prefix]>a<[fim-middle]>" and body["model"] == "org/name"
    assert body["stop"][0] == "\n\n" and "<[fim-middle]>" in body["stop"] and body["stream"] is True
    json.dumps(body)


def test_build_backend_needs_a_family_for_hub_ids():
    args = argparse.Namespace(upstream="http://127.0.0.1:9", model="org/name", family=None)
    with pytest.raises(CodelmError, match="--family"):
        build_backend(args)
    args.family = "seedcoder"
    assert build_backend(args).family.name == "seedcoder"


def test_local_backend_is_the_default(tiny_checkpoint):
    args = argparse.Namespace(
        upstream=None,
        model=str(tiny_checkpoint("llama")),
        family=None,
        device=None,
        dtype=None,
        threads=None,
        allow_pickle=False,
        max_batch_size=4,
        max_queue=8,
    )
    backend = build_backend(args)
    try:
        assert isinstance(backend, LocalEngineClient) and backend.scheduler.max_queue == 8
    finally:
        backend.scheduler.close()


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/completions", '{"prompt": "x\\ud800"}', "prompt"),
        ("/v1/completions", '{"prompt": "x", "suffix": "\\udfff"}', "suffix"),
        (
            "/v1/chat/completions",
            '{"messages": [{"role": "user", "content": "\\ud800"}]}',
            "messages.0.content",
        ),
    ],
)
def test_a_lone_surrogate_is_a_400_in_gateway_mode_too(pair, path, body, field):
    _, gw = pair
    r = httpx.post(gw + path, content=body, headers={"Content-Type": "application/json"}, timeout=60)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["message"].startswith(f"{field}: holds an unpaired surrogate")
