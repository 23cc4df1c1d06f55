"""`skip_special_tokens` (vLLM's request field): special tokens that are not stops leave the text."""

import httpx
import pytest

from codelm.models.tiny import script_tokens
from codelm.serve.engine_client import LocalEngineClient


@pytest.mark.parametrize("endpoint", ["completions", "chat"])
def test_skip_special_tokens_field(own_engine, start_server, endpoint):
    engine = own_engine("stablecode")
    tok = engine.tokenizer
    name = tok.convert_tokens_to_ids("<filename>")  # a StarCoder-style special token, not a stop
    script = [name, *tok("x = 1", add_special_tokens=False)["input_ids"], name, tok.eos_token_id]
    url = start_server(LocalEngineClient(engine), "stablecode").url
    if endpoint == "completions":
        path, body, text = "/v1/completions", {"prompt": "a"}, lambda r: r["choices"][0]["text"]
    else:
        path = "/v1/chat/completions"
        body = {"messages": [{"role": "user", "content": "a"}]}
        text = lambda r: r["choices"][0]["message"]["content"]  # noqa: E731
    for extra, want in (({}, "x = 1"), ({"skip_special_tokens": False}, "<filename>x = 1<filename>")):
        handle = script_tokens(engine.model, script)
        r = httpx.post(url + path, json={**body, "max_tokens": 20, "temperature": 0, **extra}, timeout=60)
        handle.remove()
        assert r.status_code == 200 and text(r.json()) == want
