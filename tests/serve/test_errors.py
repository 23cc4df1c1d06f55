"""Bad requests get a 4xx with an OpenAI-style JSON error naming the problem; the server stays up."""

import httpx
import pytest

FAMILIES = ["codegen1", "codegemma", "stablecode", "seedcoder", "llama"]

# (path, raw body, status, words the message must contain, error param)
CASES = [
    ("/v1/completions", "{not json", 400, "invalid JSON", None),
    ("/v1/completions", "[1, 2]", 400, "must be a JSON object", None),
    ("/v1/completions", '{"max_tokens": 5}', 400, "prompt: Field required", "prompt"),
    ("/v1/completions", '{"prompt": "x", "model": "gpt-4"}', 404, "model 'gpt-4' does not exist", "model"),
    ("/v1/completions", '{"prompt": "x", "max_tokens": 100000}', 400, "context window", None),
    (
        "/v1/completions",
        '{"prompt": "x", "max_tokens": 0}',
        400,
        "max_new_tokens must be a positive integer",
        None,
    ),
    ("/v1/completions", '{"prompt": "x", "temperature": -0.5}', 400, "temperature must be >= 0", None),
    ("/v1/completions", '{"prompt": "x", "top_p": 2}', 400, "top_p must be in (0, 1]", None),
    ("/v1/completions", '{"prompt": "x", "n": 0}', 400, "n must be a positive integer", None),
    ("/v1/completions", '{"prompt": "x", "n": 1000}', 400, "this server decodes at most 32 rows", None),
    (
        "/v1/completions",
        '{"prompt": "x", "max_tokens": "ten"}',
        400,
        "max_tokens: Input should be",
        "max_tokens",
    ),
    (
        "/v1/completions",
        '{"prompt": "x", "temperature": "hot"}',
        400,
        "temperature: Input should be",
        "temperature",
    ),
    (
        "/v1/completions",
        '{"prompt": "x", "stop": [""]}',
        400,
        "stop must be a list of non-empty strings",
        None,
    ),
    ("/v1/completions", '{"prompt": 5}', 400, "prompt: Input should be", "prompt"),
    ("/v1/completions", '{"prompt": [1, 2, 3]}', 400, "token-id prompts are not supported", "prompt"),
    ("/v1/completions", '{"prompt": []}', 400, "prompt must not be empty", "prompt"),
    ("/v1/completions", '{"prompt": "x", "logprobs": 21}', 400, "less than or equal to 20", None),
    ("/v1/completions", '{"prompt": "x", "echo": true}', 400, "echo is not supported", "echo"),
    ("/v1/completions", '{"prompt": "x", "frequency_penalty": 1}', 400, "use repetition_penalty", None),
    (
        "/v1/completions",
        '{"prompt": "x", "mode": "word"}',
        400,
        "mode: Input should be 'line' or 'block'",
        "mode",
    ),
    (
        "/v1/completions",
        '{"prompt": "x", "timeout_ms": -1}',
        400,
        "timeout_ms: Input should be greater than 0",
        None,
    ),
    (
        "/v1/completions",
        '{"prompt": "x", "context_files": [{"path": "a.py"}]}',
        400,
        "content: Field required",
        None,
    ),
    ("/v1/chat/completions", '{"messages": []}', 400, "at least one message", "messages"),
    (
        "/v1/chat/completions",
        '{"messages": [{"role": "robot", "content": "hi"}]}',
        400,
        "messages.0.role",
        None,
    ),
    ("/v1/chat/completions", '{"messages": "hi"}', 400, "messages: Input should be a valid list", "messages"),
    (
        "/v1/chat/completions",
        '{"messages": [{"role": "user", "content": "x"}], "top_logprobs": 2}',
        400,
        "top_logprobs needs logprobs: true",
        "top_logprobs",
    ),
    (
        "/v1/chat/completions",
        '{"messages": [{"role": "user", "content": "x"}], "model": "m"}',
        404,
        "does not exist",
        None,
    ),
]


@pytest.mark.parametrize("family", FAMILIES)
def test_bad_requests_get_json_4xx(server, family):
    c = httpx.Client(base_url=server(family).url, timeout=60)
    for path, body, status, words, param in CASES:
        if (
            path.endswith("chat/completions")
            and family == "codegen1"
            and status == 400
            and "robot" not in body
        ):
            continue  # codegen1 has no chat format at all; tested below
        r = c.post(path, content=body, headers={"Content-Type": "application/json"})
        assert r.status_code == status, (body, r.text)
        error = r.json()["error"]
        assert words in error["message"], (body, error)
        assert error["type"] == ("not_found_error" if status == 404 else "invalid_request_error")
        assert error["code"]
        if param:
            assert error["param"] == param, (body, error)
    assert c.get("/health").status_code == 200  # still up


def test_prompt_longer_than_the_context(server, tiny_engine):
    window = tiny_engine("llama").context_window
    r = httpx.post(f"{server('llama').url}/v1/completions", json={"prompt": "x = 1\n" * window}, timeout=60)
    assert r.status_code == 400
    assert "does not fit the model's context window" in r.json()["error"]["message"]


def test_unknown_route_and_method(server):
    url = server("llama").url
    r = httpx.get(f"{url}/v1/nothing")
    assert r.status_code == 404 and r.json()["error"]["type"] == "not_found_error"
    r = httpx.get(f"{url}/v1/completions")
    assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"


def test_codegen1_chat_is_refused(server):
    r = httpx.post(
        f"{server('codegen1').url}/v1/chat/completions",
        json={"messages": [{"role": "user", "content": "hi"}]},
    )
    assert r.status_code == 400
    assert r.json()["error"] == {
        "message": "model family codegen1 has no chat format (it is a base model)",
        "type": "invalid_request_error",
        "code": "unsupported_feature",
        "param": None,
    }


def test_errors_are_counted_in_metrics(server):
    url = server("seedcoder").url
    httpx.post(f"{url}/v1/completions", content="{bad", headers={"Content-Type": "application/json"})
    text = httpx.get(f"{url}/metrics").text
    assert 'codelm_errors_total{code="invalid_request",status="400"}' in text
