"""`codelm serve`: port bound before the banner, API key rules, the banner's curl line, a real run."""

import os
import shutil
import socket
import subprocess
import sys
import time

import httpx
import pytest

from codelm.cli import build_parser, main
from codelm.serve import launch


def parse(*argv: str):
    return build_parser().parse_args(["serve", *argv])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_taken(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
        return False


def _record_run(monkeypatch, capsys) -> dict:
    """Replace the blocking uvicorn run; record the app, and what was true when it was called."""
    ran: dict = {}

    def run(app, sock):
        ran.update(app=app, address=sock.getsockname()[:2], port_taken=_port_taken(sock.getsockname()[1]))
        ran["printed_before"] = capsys.readouterr().out
        app.state.backend.scheduler.close()

    monkeypatch.setattr(launch, "run_server", run)
    return ran


def test_serve_from_args_binds_then_prints_url_and_curl(monkeypatch, capsys, tiny_checkpoint):
    ran = _record_run(monkeypatch, capsys)
    monkeypatch.setenv("CODELM_API_KEY", "from-env")
    port = _free_port()
    model = str(tiny_checkpoint("seedcoder"))
    launch.serve_from_args(parse("--model", model, "--port", str(port), "--host", "0.0.0.0"))
    out = ran["printed_before"]
    assert ran["port_taken"], "the port must be bound before the banner and the server run"
    assert f"http://127.0.0.1:{port}" in out and "seedcoder" in out
    curl = next(line.strip() for line in out.splitlines() if line.strip().startswith("curl "))
    assert "/v1/completions" in curl and "suffix" in curl and "$CODELM_API_KEY" in curl
    assert "from-env" not in out  # the secret itself is never printed
    assert ran["address"] == ("0.0.0.0", port)
    assert any(m.cls.__name__ == "APIKeyMiddleware" for m in ran["app"].user_middleware)
    assert not _port_taken(port)  # released once the server returns


def test_an_explicit_key_wins_and_no_key_means_open(monkeypatch, capsys, tiny_checkpoint):
    ran = _record_run(monkeypatch, capsys)
    monkeypatch.delenv("CODELM_API_KEY", raising=False)
    port = _free_port()
    model = str(tiny_checkpoint("codegen1"))
    launch.serve_from_args(parse("--model", model, "--served-model-name", "cg", "--port", str(port)))
    out = ran["printed_before"]
    assert f"codelm serving cg at http://127.0.0.1:{port}" in out and "Authorization" not in out
    assert "suffix" not in out  # codegen1 has no FIM: the example is a plain completion
    assert not any(m.cls.__name__ == "APIKeyMiddleware" for m in ran["app"].user_middleware)


@pytest.mark.parametrize(
    ("argv", "env", "words"),
    [
        (["--api-key", ""], None, "--api-key is empty"),
        (["--api-key", "  "], None, "--api-key is empty"),
        (["--api-key", " k "], None, "--api-key starts or ends with whitespace"),
        ([], "", "$CODELM_API_KEY is empty: give a key, or unset the variable"),
    ],
)
def test_an_empty_api_key_is_refused_not_taken_as_no_key(monkeypatch, capsys, argv, env, words):
    monkeypatch.delenv("CODELM_API_KEY", raising=False)
    if env is not None:
        monkeypatch.setenv("CODELM_API_KEY", env)
    monkeypatch.setattr(launch, "run_server", lambda app, sock: pytest.fail("must not serve"))
    # refused before the model loads: a missing model would be the error otherwise
    assert main(["serve", "--model", "/nonexistent/model", "--port", "0", *argv]) == 1
    captured = capsys.readouterr()
    assert words in captured.err and len(captured.err.strip().splitlines()) == 1
    assert "serving" not in captured.out


def test_create_app_refuses_an_empty_key():
    from codelm.errors import CodelmError
    from codelm.serve.app import create_app

    with pytest.raises(CodelmError, match="the API key is empty"):
        create_app(object(), "m", api_key="")  # type: ignore[arg-type]


def test_a_port_in_use_fails_with_one_line_before_the_banner(monkeypatch, capsys):
    monkeypatch.setattr(launch, "run_server", lambda app, sock: pytest.fail("must not serve"))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        # before the model loads: a missing model would be the error otherwise
        code = main(["serve", "--model", "/nonexistent/model", "--port", str(port)])
    captured = capsys.readouterr()
    assert code == 1 and captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and f"cannot listen on 127.0.0.1:{port}" in lines[0], captured.err
    assert "--port" in lines[0]


def test_cli_defaults_are_the_servers():
    """Flags left out take ServeConfig's defaults, which are the server's own."""
    from codelm.serve.config import ServeConfig
    from codelm.serve.limits import DEFAULT_CLIENT_TIMEOUT_S, DEFAULT_MAX_BODY_BYTES

    config = ServeConfig(model="m")
    assert (config.max_body_bytes, config.client_timeout) == (
        DEFAULT_MAX_BODY_BYTES,
        DEFAULT_CLIENT_TIMEOUT_S,
    )


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


def test_serve_config_has_every_serve_flag():
    from dataclasses import fields

    from codelm.serve.config import ServeConfig

    flags = {a.dest for a in build_parser()._subparsers._group_actions[0].choices["serve"]._actions}
    assert flags - {"help", "func", "config", "overrides", "print_config"} <= {
        f.name for f in fields(ServeConfig)
    }
    given = vars(parse("--model", "m"))  # a flag left out is None, so ServeConfig's default applies
    assert all(given[f.name] is None for f in fields(ServeConfig) if f.name in given and f.name != "model")
