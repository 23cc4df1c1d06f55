"""`codelm serve`: load the model (or point at an upstream), build the app, run uvicorn.

    codelm serve --model /tmp/tiny-llama --port 8000
    CODELM_API_KEY=secret codelm serve --model ORG/NAME --family seedcoder --upstream http://127.0.0.1:8001

The port is bound before the model loads and before anything is printed: a port in use fails at
once with one line, and the "serving at" banner only appears for a server that has its port.
An API key given empty (`--api-key ''`, or `CODELM_API_KEY=` set but empty) is an error, not a
server without authentication: an unset secret in a deployment must not open the server.

`ServerThread` runs an app on a background thread on a free loopback port (tests, notebooks);
`ServerProcess` runs `codelm serve` as a child process (benchmarks: its own interpreter and GIL).
Both use the same uvicorn settings as `codelm serve` (`server_config`).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import uvicorn
from fastapi import FastAPI

from codelm.errors import CodelmError
from codelm.serve.app import create_app
from codelm.serve.engine_client import Backend
from codelm.serve.limits import DEFAULT_CLIENT_TIMEOUT_S, head_timeout_protocol


def build_backend(args: argparse.Namespace) -> Backend:
    """A local engine behind the scheduler, or (with --upstream) a gateway to another server."""
    if args.upstream:
        from codelm.models import get_family
        from codelm.models.detect import detect_family
        from codelm.serve.gateway import GatewayClient

        if args.family:
            family = get_family(args.family)
        elif Path(args.model).is_dir():
            family = detect_family(Path(args.model))
        else:
            raise CodelmError("--upstream needs --family when --model is not a local checkpoint directory")
        return GatewayClient(args.upstream, args.model, family, **_chat_options(args))

    from codelm.engine import Engine
    from codelm.serve.engine_client import LocalEngineClient

    engine = Engine.from_pretrained(
        args.model,
        family=args.family,
        device=args.device,
        dtype=args.dtype,
        threads=args.threads,
        allow_pickle=args.allow_pickle,
        max_batch_size=args.max_batch_size,
        **_chat_options(args),
    )
    return LocalEngineClient(engine, max_batch_size=args.max_batch_size, max_queue=args.max_queue)


def _chat_options(args: argparse.Namespace) -> dict:
    """Chat template and reasoning split (ServeConfig's defaults when a caller's namespace lacks them)."""
    reasoning = getattr(args, "reasoning", None)
    return {"chat_format": getattr(args, "chat_format", None) or "chat", "reasoning": reasoning is not False}


def served_name(model: str) -> str:
    """A local directory is served under its name; a hub id as it is (`org/name`)."""
    path = Path(model).expanduser()
    return path.resolve().name if path.exists() else model


def banner(url: str, name: str, keyed: bool, supports_fim: bool) -> str:
    body = {"model": name, "prompt": "def fibonacci(n):", "max_tokens": 64}
    if supports_fim:
        body.update(prompt="def add(a, b):\n    return ", suffix="\n\nprint(add(1, 2))\n")
    auth = ' -H "Authorization: Bearer $CODELM_API_KEY"' if keyed else ""
    data = shlex.quote(json.dumps(body))
    curl = f"curl {url}/v1/completions -H 'Content-Type: application/json'{auth} -d {data}"
    lines = [
        f"codelm serving {name} at {url}  (playground: {url}/ , metrics: {url}/metrics)",
        "try:",
        f"  {curl}",
    ]
    if keyed:
        lines.append("  (the API key is required: export CODELM_API_KEY first; the playground asks for it)")
    return "\n".join(lines)


def api_key_from(args: argparse.Namespace) -> str | None:
    """--api-key, else $CODELM_API_KEY, else None (no authentication); empty values are errors."""
    if args.api_key is not None:
        key, source, instead = args.api_key, "--api-key", "leave the flag out"
    elif "CODELM_API_KEY" in os.environ:
        key, source, instead = os.environ["CODELM_API_KEY"], "$CODELM_API_KEY", "unset the variable"
    else:
        return None
    if not key.strip():
        raise CodelmError(f"{source} is empty: give a key, or {instead} to serve without authentication")
    if key != key.strip():
        raise CodelmError(f"{source} starts or ends with whitespace, which clients cannot send")
    return key


def bind(host: str, port: int) -> socket.socket:
    """A socket bound to host:port, not yet listening (uvicorn listens on it)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn: restart over TIME_WAIT
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        reason = exc.strerror or str(exc)
        raise CodelmError(
            f"cannot listen on {host}:{port}: {reason} (another server on that port? choose one with --port)"
        ) from None
    return sock


def server_config(
    app: FastAPI, host: str = "127.0.0.1", port: int = 0, log_level: str = "info"
) -> uvicorn.Config:
    """uvicorn settings for `app`: request heads time out like its bodies (serve/limits.py)."""
    timeout_s = getattr(app.state, "client_timeout_s", DEFAULT_CLIENT_TIMEOUT_S)
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        timeout_graceful_shutdown=5,
        http=head_timeout_protocol(timeout_s),
    )


def run_server(app: FastAPI, sock: socket.socket) -> None:
    """Serve `app` on the bound `sock` until interrupted."""
    host, port = sock.getsockname()[:2]
    uvicorn.Server(server_config(app, host, port)).run(sockets=[sock])


def serve_from_args(args: argparse.Namespace) -> None:
    """Entry point of `codelm serve` (the parser lives in codelm.cli): `--config FILE`, the flags
    given and `--set` become one `ServeConfig`, which is what runs."""
    import dataclasses

    from codelm.config import config_from_args, dump
    from codelm.serve.config import ServeConfig

    fields = [f.name for f in dataclasses.fields(ServeConfig)]
    config = config_from_args(ServeConfig, args, {k: getattr(args, k, None) for k in fields}, "serve config")
    if getattr(args, "print_config", False):
        print(dump(config), end="")
        return
    if not config.model:
        raise CodelmError("give --model CHECKPOINT_OR_HUB_ID (or model: in --config)")
    args = argparse.Namespace(**{**vars(args), **dataclasses.asdict(config)})
    api_key = api_key_from(args)
    sock = bind(args.host, args.port)
    try:
        backend = build_backend(args)
        name = args.served_model_name or served_name(args.model)
        app = create_app(
            backend,
            name,
            api_key=api_key,
            aliases=[args.model],
            max_body_bytes=args.max_body_bytes,
            client_timeout_s=args.client_timeout,
        )
        host = "127.0.0.1" if args.host in ("0.0.0.0", "::", "") else args.host
        port = sock.getsockname()[1]  # the real one when --port 0
        print(
            banner(f"http://{host}:{port}", name, api_key is not None, backend.family.supports_fim),
            flush=True,
        )
        run_server(app, sock)
    finally:
        sock.close()


class ServerThread:
    """uvicorn serving `app` on a background thread; `port=0` picks a free port."""

    def __init__(self, app: FastAPI, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning"):
        config = server_config(app, host, port, log_level)
        config.timeout_graceful_shutdown = 2
        self.server = uvicorn.Server(config)
        self.app, self.host = app, host
        self._thread = threading.Thread(target=self.server.run, name="codelm-uvicorn", daemon=True)

    def start(self, timeout_s: float = 30.0) -> ServerThread:
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.01)
        return self

    @property
    def port(self) -> int:
        return self.server.servers[0].sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=30)

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class ServerProcess:
    """`codelm serve --model MODEL EXTRA...` in a child process on a free loopback port."""

    def __init__(self, model: str, *extra: str, log_path: str | None = None) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [
            sys.executable,
            "-m",
            "codelm.cli",
            "serve",
            "--model",
            model,
            "--port",
            str(self.port),
            *extra,
        ]
        self._log = open(log_path or os.devnull, "w")  # closed in stop()
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def start(self, timeout_s: float = 120.0) -> ServerProcess:
        """Wait until /health answers."""
        deadline = time.monotonic() + timeout_s
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"codelm serve exited with status {self.proc.returncode}")
            try:
                if httpx.get(f"{self.url}/health", timeout=5).status_code == 200:
                    return self
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.1)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(30)
        self._log.close()

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
