"""Log-probabilities through the API: both OpenAI shapes, streamed and not, and the openai client.

Characters that span several tokens are the hard case (item 1 of issue 11): the scripted tiny model
writes exactly `TEXT`, whose CJK, emoji and accented characters are split across byte tokens.
"""

import re

import httpx
import pytest
from openai import OpenAI
from transformers import AutoTokenizer

from codelm.engine import TokenLogprob
from codelm.models.tiny import script_tokens
from codelm.models.vocab import TokenBytes
from codelm.serve.engine_client import LocalEngineClient
from codelm.serve.logprobs import TextOffsets, chat_logprobs, completion_logprobs

from .helpers import sse_payloads
from .test_gateway import UPSTREAM_KEY, pair  # noqa: F401  (fixture)

BODY = {"prompt": "import os\n", "max_tokens": 8, "temperature": 0, "ignore_eos": True}
TEXT = "中文 🙂 \U0002070e héllo"


def raw(token: str) -> bytes:
    """A logprobs token's bytes: OpenAI spells a partial character as `bytes:\\xe4\\xb8`."""
    if token.startswith("bytes:"):
        return bytes(int(h, 16) for h in re.findall(r"\\x([0-9a-f]{2})", token))
    return token.encode("utf-8")


def char_offsets(pieces: list[bytes]) -> list[int]:
    """Where each token starts, in characters: complete characters before its first byte."""
    data, out, at = b"".join(pieces), [], 0
    for p in pieces:
        out.append(len(data[:at].decode("utf-8", errors="ignore")))
        at += len(p)
    return out


@pytest.mark.parametrize("kind", ["byte-level BPE", "SentencePiece byte fallback"])
def test_multi_token_characters_keep_their_bytes_and_offsets(tiny_checkpoint, byte_fallback_tokenizer, kind):
    tok = (
        AutoTokenizer.from_pretrained(tiny_checkpoint("llama"))
        if kind == "byte-level BPE"
        else byte_fallback_tokenizer
    )
    ids = tok(TEXT, add_special_tokens=False)["input_ids"]
    entries = [TokenLogprob(i, -0.5, [(i, -0.5)]) for i in ids]
    token_bytes = TokenBytes(tok)
    pieces = [token_bytes(i) for i in ids]
    chat = chat_logprobs(entries, token_bytes).content
    assert [bytes(c.bytes) for c in chat] == pieces and b"".join(pieces) == TEXT.encode()
    assert [raw(c.token) for c in chat] == pieces
    whole = completion_logprobs(entries, token_bytes)
    assert whole.text_offset == char_offsets(pieces)
    assert max(whole.text_offset) < len(TEXT)
    # streamed in chunks that cut characters in half, the offsets continue where they stopped
    offsets, streamed = TextOffsets(), []
    for start in range(0, len(entries), 3):
        streamed += completion_logprobs(entries[start : start + 3], token_bytes, offsets).text_offset
    assert streamed == whole.text_offset


@pytest.fixture
def scripted(own_engine, start_server):
    """A llama server whose model writes exactly TEXT, then EOS."""
    engine = own_engine("llama")
    ids = engine.tokenizer(TEXT, add_special_tokens=False)["input_ids"]

    def start(extra: list[int] = ()):
        script_tokens(engine.model, [*ids, *extra, engine.tokenizer.eos_token_id])
        return start_server(LocalEngineClient(engine), "llama").url

    return start, ids


def test_multi_token_characters_through_the_api(scripted):
    start, ids = scripted
    url = start()
    body = {"prompt": "x", "max_tokens": 64, "temperature": 0, "logprobs": 1}
    choice = httpx.post(url + "/v1/completions", json=body, timeout=60).json()["choices"][0]
    assert choice["text"] == TEXT
    lp = choice["logprobs"]
    pieces = [raw(t) for t in lp["tokens"]]
    assert len(pieces) == len(ids) and b"".join(pieces) == TEXT.encode()
    assert lp["text_offset"] == char_offsets(pieces) and max(lp["text_offset"]) < len(TEXT)


def test_multi_token_characters_in_chat_bytes(scripted):
    start, _ = scripted
    client = OpenAI(base_url=start() + "/v1", api_key="unused")
    out = client.chat.completions.create(
        model="llama", messages=[{"role": "user", "content": "hi"}], max_tokens=64, logprobs=True
    )
    assert out.choices[0].message.content == TEXT
    content = out.choices[0].logprobs.content
    assert b"".join(bytes(t.bytes) for t in content) == TEXT.encode()
    assert all(t.bytes != [0xEF, 0xBF, 0xBD] for t in content)


def test_completion_logprobs_line_up_with_the_text(server, tiny_engine):
    url = server("llama").url
    choice = httpx.post(url + "/v1/completions", json={**BODY, "logprobs": 2}, timeout=60).json()["choices"][
        0
    ]
    lp = choice["logprobs"]
    assert len(lp["tokens"]) == len(lp["token_logprobs"]) == len(lp["top_logprobs"]) == 8
    pieces = [raw(t) for t in lp["tokens"]]
    assert b"".join(pieces).decode("utf-8", errors="replace").startswith(choice["text"])
    offsets = lp["text_offset"]
    assert offsets[0] == 0 and offsets == sorted(offsets) and offsets[-1] <= len(choice["text"])
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
    joined = b"".join(bytes(t.bytes) for t in content).decode("utf-8", errors="replace")
    assert joined.strip().startswith(out.choices[0].message.content.strip())
    assert all(len(t.top_logprobs) == 3 and bytes(t.bytes) == raw(t.token) for t in content)
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
