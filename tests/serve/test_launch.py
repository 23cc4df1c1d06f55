"""`codelm serve`: the banner with URL and curl line, the API key from the environment, a real run."""

import os
import shutil
import socket
import subprocess
import sys
import time

import httpx
import pytest

from codelm.cli import build_parser
from codelm.serve import launch


def parse(*argv: str):
    return build_parser().parse_args(["serve", *argv])


def test_serve_from_args_prints_url_and_curl(monkeypatch, capsys, tiny_checkpoint):
    ran = {}
    monkeypatch.setattr(launch.uvicorn, "run", lambda app, **kw: ran.update(app=app, **kw))
    monkeypatch.setenv("CODELM_API_KEY", "from-env")
    model = str(tiny_checkpoint("seedcoder"))
    launch.serve_from_args(parse("--model", model, "--port", "8123", "--host", "0.0.0.0"))
    out = capsys.readouterr().out
    assert "http://127.0.0.1:8123" in out and "seedcoder" in out
    curl = next(line.strip() for line in out.splitlines() if line.strip().startswith("curl "))
    assert "/v1/completions" in curl and "suffix" in curl and "$CODELM_API_KEY" in curl
    assert "from-env" not in out  # the secret itself is never printed
    assert ran["host"] == "0.0.0.0" and ran["port"] == 8123
    app = ran["app"]
    assert any(m.cls.__name__ == "APIKeyMiddleware" for m in app.user_middleware)
    app.state.backend.scheduler.close()


def test_an_explicit_key_wins_and_no_key_means_open(monkeypatch, capsys, tiny_checkpoint):
    apps = []
    monkeypatch.setattr(launch.uvicorn, "run", lambda app, **kw: apps.append(app))
    monkeypatch.delenv("CODELM_API_KEY", raising=False)
    model = str(tiny_checkpoint("codegen1"))
    launch.serve_from_args(parse("--model", model, "--served-model-name", "cg"))
    out = capsys.readouterr().out
    assert "codelm serving cg at http://127.0.0.1:8000" in out and "Authorization" not in out
    assert "suffix" not in out  # codegen1 has no FIM: the example is a plain completion
    assert not apps[0].user_middleware
    apps[0].state.backend.scheduler.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_cli_subprocess_and_its_curl_line(tiny_checkpoint):
    port = _free_port()
    env = {**os.environ, "CODELM_API_KEY": "k"}
    cmd = [
        sys.executable,
        "-m",
        "codelm.cli",
        "serve",
        "--model",
        str(tiny_checkpoint("llama")),
        "--port",
        str(port),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        curl = None
        for line in proc.stdout:
            if line.strip().startswith("curl "):
                curl = line.strip()
                break
        assert curl, "no curl line printed"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                    break
            except httpx.TransportError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.1)
        out = subprocess.run(["bash", "-c", curl], capture_output=True, text=True, env=env, timeout=60)
        assert '"object":"text_completion"' in out.stdout, out.stdout + out.stderr
    finally:
        proc.terminate()
        proc.wait(30)
