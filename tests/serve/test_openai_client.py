"""The official `openai` client against a keyed server: completions with suffix, chat, streaming."""

import openai
import pytest

KEY = "test-key-123"


@pytest.fixture
def client(server):
    return openai.OpenAI(base_url=f"{server('stablecode', api_key=KEY).url}/v1", api_key=KEY, max_retries=0)


def test_models(client):
    assert [m.id for m in client.models.list().data] == ["stablecode"]


def test_completion_with_suffix(client, tiny_engine):
    out = client.completions.create(
        model="stablecode", prompt="def add(a, b):\n    return ", suffix="\n", max_tokens=8, temperature=0
    )
    want = tiny_engine("stablecode").infill(
        "def add(a, b):\n    return ", "\n", max_new_tokens=8, temperature=0
    )
    assert out.choices[0].text == want.text
    assert out.choices[0].finish_reason == want.completions[0].finish_reason
    assert out.usage.prompt_tokens == want.prompt_tokens


def test_chat(client, tiny_engine):
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Sort a list."}]
    out = client.chat.completions.create(model="stablecode", messages=messages, max_tokens=8, temperature=0)
    assert out.choices[0].message.role == "assistant"
    assert (
        out.choices[0].message.content
        == tiny_engine("stablecode").chat(messages, max_new_tokens=8, temperature=0).text
    )


def test_streaming_completion_and_chat(client):
    kwargs = {"model": "stablecode", "max_tokens": 8, "temperature": 0}
    plain = client.completions.create(prompt="import os\n", **kwargs).choices[0].text
    stream = client.completions.create(prompt="import os\n", stream=True, **kwargs)
    assert "".join(chunk.choices[0].text for chunk in stream) == plain

    messages = [{"role": "user", "content": "hi"}]
    plain = client.chat.completions.create(messages=messages, **kwargs).choices[0].message.content
    stream = client.chat.completions.create(
        messages=messages, stream=True, stream_options={"include_usage": True}, **kwargs
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == plain
    assert chunks[-1].usage.completion_tokens > 0


def test_errors_surface_as_openai_exceptions(client, server):
    with pytest.raises(openai.BadRequestError, match="temperature must be >= 0"):
        client.completions.create(model="stablecode", prompt="x", temperature=-1)
    with pytest.raises(openai.NotFoundError, match="does not exist"):
        client.completions.create(model="nope", prompt="x")
    bad = openai.OpenAI(
        base_url=f"{server('stablecode', api_key=KEY).url}/v1", api_key="wrong", max_retries=0
    )
    with pytest.raises(openai.AuthenticationError):
        bad.models.list()


def test_code_extras_through_extra_body(client):
    out = client.completions.create(
        model="stablecode",
        prompt="x = sq",
        suffix="\n",
        max_tokens=16,
        extra_body={
            "mode": "line",
            "timeout_ms": 5000,
            "path": "main.py",
            "context_files": [{"path": "utils/math.py", "content": "def square(x):\n    return x * x\n"}],
        },
    )
    assert "\n" not in out.choices[0].text
    assert out.usage.prompt_tokens > 20  # the context file went into the prompt
