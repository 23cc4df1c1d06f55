"""The optional API key: required on every route but /health, as Bearer (API) or Basic (browser)."""

import base64

import httpx
import pytest

from codelm.serve.auth import presented_key

KEY = "s3cret"


@pytest.fixture
def url(server):
    return server("llama", api_key=KEY).url


def basic(user: str, password: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.mark.parametrize(
    "method,path",
    [
        ("GET", "/v1/models"),
        ("GET", "/metrics"),
        ("GET", "/"),
        ("POST", "/v1/completions"),
        ("POST", "/v1/chat/completions"),
        ("GET", "/no/such/route"),
        ("GET", "/openapi.json"),
    ],
)
def test_every_route_but_health_needs_the_key(url, method, path):
    for headers in (
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": "Token " + KEY},
        basic("u", "nope"),
    ):
        r = httpx.request(method, url + path, headers=headers, json={"prompt": "x"})
        assert r.status_code == 401, (path, headers)
        assert r.json()["error"]["type"] == "authentication_error"
        assert r.json()["error"]["code"] == "invalid_api_key"
    assert httpx.get(url + "/health").status_code == 200


def test_the_key_opens_every_route(url):
    bearer = {"Authorization": f"Bearer {KEY}"}
    assert httpx.get(url + "/v1/models", headers=bearer).status_code == 200
    assert httpx.get(url + "/metrics", headers=bearer).status_code == 200
    r = httpx.post(url + "/v1/completions", headers=bearer, json={"prompt": "x", "max_tokens": 2})
    assert r.status_code == 200
    # the playground page: browsers answer the Basic challenge with the key as password
    challenge = httpx.get(url + "/")
    assert challenge.headers["WWW-Authenticate"].startswith("Basic")
    page = httpx.get(url + "/", headers=basic("anyone", KEY))
    assert page.status_code == 200 and "codelm playground" in page.text
    assert httpx.get(url + "/v1/models", headers=basic("", KEY)).status_code == 200


def test_failed_auth_is_counted(url):
    httpx.get(url + "/v1/models")
    metrics = httpx.get(url + "/metrics", headers={"Authorization": f"Bearer {KEY}"}).text
    assert 'codelm_errors_total{code="invalid_api_key",status="401"}' in metrics


def test_presented_key_parsing():
    assert presented_key("Bearer abc") == "abc"
    assert presented_key("bearer   abc ") == "abc"
    assert presented_key(basic("u", "p:q")["Authorization"]) == "p:q"
    assert presented_key("Basic !!notbase64") is None
    assert presented_key("Digest abc") is None
