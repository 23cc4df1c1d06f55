"""Code-completion extras (line mode, time budget, repository context) and clean output."""

import httpx
import pytest

from codelm.models.formats import render_fim, render_repo_context
from codelm.serve.engine_client import LocalEngineClient
from codelm.serve.protocol import CompletionRequest

from .helpers import boost_token, sse_payloads

CONTEXT = [{"path": "utils/math.py", "content": "def square(x):\n    return x * x\n"}]


def post(server, family: str, **body) -> dict:
    r = httpx.post(f"{server(family).url}/v1/completions", json=body, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


def test_line_mode_stops_at_the_first_newline(own_engine, start_server):
    engine = own_engine("llama")
    boost_token(engine, "\n", after_steps=4, text=True)  # steer the random model to end lines
    url = start_server(LocalEngineClient(engine), "llama").url
    body = {"prompt": "import os\nimport sys\n", "max_tokens": 12, "temperature": 0}
    block = httpx.post(f"{url}/v1/completions", json=body, timeout=60).json()["choices"][0]
    assert "\n" in block["text"]
    line = httpx.post(f"{url}/v1/completions", json={**body, "mode": "line"}, timeout=60).json()["choices"][0]
    assert "\n" not in line["text"] and block["text"].startswith(line["text"])
    assert line["finish_reason"] == "stop"


def test_user_stop_strings_are_cut(server):
    body = {"prompt": "def walk(root):\n", "max_tokens": 40, "temperature": 0, "ignore_eos": True}
    full = post(server, "seedcoder", **body)["choices"][0]["text"]
    stop = full[len(full) // 2 : len(full) // 2 + 3]
    cut = post(server, "seedcoder", **body, stop=[stop])["choices"][0]
    assert cut["text"] == full[: full.index(stop)] and cut["finish_reason"] == "stop"
    with httpx.stream(
        "POST", f"{server('seedcoder').url}/v1/completions", json={**body, "stop": stop, "stream": True}
    ) as r:
        streamed = "".join(e["choices"][0]["text"] for e in sse_payloads(r.iter_lines()) if e != "[DONE]")
    assert streamed == cut["text"]


def test_time_budget_ends_with_length(server):
    body = {"prompt": "x", "max_tokens": 1000, "temperature": 0, "ignore_eos": True, "timeout_ms": 1}
    choice = post(server, "llama", **body)["choices"][0]
    assert choice["finish_reason"] == "length"


@pytest.mark.parametrize("family", ["codegemma", "seedcoder"])  # file separator / path comments
def test_repo_context_is_rendered_before_the_fim_prompt(tiny_engine, family):
    from codelm.serve.metrics import Metrics
    from codelm.serve.serving import Serving

    engine = tiny_engine(family)
    client = LocalEngineClient(engine)
    try:
        req = CompletionRequest(prompt="x = sq", suffix="\n", context_files=CONTEXT, path="main.py")
        [request] = Serving(client, family, Metrics()).completion_requests(req)
    finally:
        client.scheduler.close()
    fam = engine.family
    header = f"{fam.file_separator}main.py\n" if fam.file_separator else "# main.py\n"
    files = [(f["path"], f["content"]) for f in CONTEXT]
    assert request.prompt == render_repo_context(fam, files) + render_fim(fam, header + "x = sq", "\n")
    assert request.kind == "infill"


def test_repo_context_through_the_api(server, tiny_engine):
    bare = post(server, "codegemma", prompt="x = sq", max_tokens=4)
    with_ctx = post(server, "codegemma", prompt="x = sq", max_tokens=4, context_files=CONTEXT, path="main.py")
    fam = tiny_engine("codegemma").family
    context = render_repo_context(fam, [(f["path"], f["content"]) for f in CONTEXT])
    engine = tiny_engine("codegemma")
    want = len(engine.encode(context + f"{fam.file_separator}main.py\nx = sq"))
    assert with_ctx["usage"]["prompt_tokens"] == want > bare["usage"]["prompt_tokens"]


@pytest.mark.parametrize("family", ["codegemma", "stablecode", "seedcoder", "llama"])
def test_sentinels_never_reach_the_client(own_engine, start_server, family):
    """The model is steered to emit its file separator / FIM sentinel after a few tokens."""
    engine = own_engine(family)
    fam = engine.family
    sentinel = fam.file_separator or fam.fim.middle
    boost_token(engine, sentinel, after_steps=3)
    url = start_server(LocalEngineClient(engine), family).url
    body = {"prompt": "def add(a, b):\n    return ", "suffix": "\n", "max_tokens": 50, "temperature": 0}
    data = httpx.post(f"{url}/v1/completions", json=body, timeout=60).json()
    choice = data["choices"][0]
    assert choice["finish_reason"] == "stop" and data["usage"]["completion_tokens"] <= 4
    with httpx.stream("POST", f"{url}/v1/completions", json={**body, "stream": True}, timeout=60) as r:
        raw = r.read().decode()
    for s in fam.sentinel_strings:
        assert s not in choice["text"] and s not in raw
