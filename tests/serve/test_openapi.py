"""The published OpenAPI schema says what the server does: its statuses, limits and refusals.

The default tier checks the schema's claims directly; the slow tier runs a property-based fuzzer
(schemathesis) over every operation: no 5xx, responses as documented, and requests the schema
forbids are refused.
"""

import json
import subprocess
import sys

import httpx
import pytest

from codelm.engine.params import MAX_STOP_LENGTH, MAX_STOP_STRINGS, SEED_MAX, SEED_MIN
from codelm.serve.engine_client import LocalEngineClient


@pytest.fixture(scope="module")
def fuzz_server(tiny_engine):
    from codelm.serve.app import create_app
    from codelm.serve.launch import ServerThread

    backend = LocalEngineClient(tiny_engine("llama"), max_batch_size=4)
    with ServerThread(create_app(backend, "llama")) as server:
        yield server


def test_the_schema_promises_400_not_422_and_documents_every_error(fuzz_server):
    raw = httpx.get(f"{fuzz_server.url}/openapi.json").text
    schema = json.loads(raw)
    assert "422" not in raw and "HTTPValidationError" not in schema["components"]["schemas"]
    for path in ("/v1/completions", "/v1/chat/completions"):
        responses = schema["paths"][path]["post"]["responses"]
        for status in ("400", "401", "404", "408", "413", "503"):
            assert responses[status]["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/ErrorResponse"
            }
        assert set(responses["200"]["content"]) == {"application/json", "text/event-stream"}
    assert set(schema["paths"]["/health"]) == {"get", "head"}


def test_the_schema_states_what_is_accepted(fuzz_server):
    raw = httpx.get(f"{fuzz_server.url}/openapi.json").text
    props = json.loads(raw)["components"]["schemas"]
    completion, chat = props["CompletionRequest"]["properties"], props["ChatCompletionRequest"]["properties"]
    assert chat["messages"]["minItems"] == 1
    assert completion["echo"]["enum"] == [False]
    assert completion["presence_penalty"]["enum"] == [0] == completion["frequency_penalty"]["enum"]
    # text prompts only: token ids are refused, so they are not advertised
    assert "integer" not in json.dumps(completion["prompt"])
    stop_string, stop_list = completion["stop"]["anyOf"][:2]
    assert stop_string["maxLength"] == MAX_STOP_LENGTH and stop_list["maxItems"] == MAX_STOP_STRINGS
    # exact integers: a float 9.223372036854776e18 would admit 2**63
    assert (completion["seed"]["minimum"], completion["seed"]["maximum"]) == (SEED_MIN, SEED_MAX)
    assert f'"maximum":{SEED_MAX}' in raw.replace(" ", "")


@pytest.mark.parametrize(
    ("path", "body", "words"),
    [
        ("/v1/chat/completions", {"messages": []}, "at least one message"),
        ("/v1/completions", {"prompt": "x", "echo": True}, "echo is not supported"),
        ("/v1/completions", {"prompt": "x", "echo": 0}, "echo: Input should be a valid boolean"),
        (
            "/v1/completions",
            {"prompt": "x", "max_tokens": "3"},
            "max_tokens: Input should be a valid integer",
        ),
        ("/v1/completions", {"prompt": "x", "seed": SEED_MAX + 1}, "seed must be a 64-bit signed integer"),
        ("/v1/completions", {"prompt": [1, 2]}, "token-id prompts are not supported"),
    ],
)
def test_what_the_schema_forbids_is_a_400(fuzz_server, path, body, words):
    r = httpx.post(fuzz_server.url + path, json=body, timeout=60)
    assert r.status_code == 400 and words in r.json()["error"]["message"], r.text


def test_what_the_schema_allows_at_its_limits_is_served(fuzz_server):
    body = {
        "prompt": "x",
        "max_tokens": 1,
        "seed": SEED_MIN,
        "stop": ["s" * MAX_STOP_LENGTH] * MAX_STOP_STRINGS,
        "presence_penalty": 0,
        "echo": False,
    }
    assert httpx.post(f"{fuzz_server.url}/v1/completions", json=body, timeout=60).status_code == 200


FUZZ_CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "negative_data_rejection",  # what the schema forbids is refused
]


@pytest.mark.slow
def test_fuzzing_the_schema_finds_no_5xx_and_no_violation(fuzz_server, tmp_path):
    pytest.importorskip("schemathesis", reason="schemathesis is in the test extra")
    # schemathesis' own CLI: its pytest plugin (from_fixture) breaks on pytest 9.2 (no _nodeid)
    cmd = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "run",
        f"{fuzz_server.url}/openapi.json",
        "--checks",
        ",".join(FUZZ_CHECKS),
        "--max-examples",
        "10",
        "--seed",
        "11",
        "--generation-deterministic",
        "--workers",
        "1",
        "--request-timeout",
        "120",
        "--suppress-health-check",
        "all",
        "--report-dir",
        str(tmp_path),
    ]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=1200, cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    assert "generated" in run.stdout, run.stdout[-2000:]  # it did run test cases
