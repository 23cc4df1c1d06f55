"""`codelm serve`: load the model (or point at an upstream), build the app, run uvicorn.

    codelm serve --model /tmp/tiny-llama --port 8000
    CODELM_API_KEY=secret codelm serve --model ORG/NAME --family seedcoder --upstream http://127.0.0.1:8001

`ServerThread` runs an app on a background thread on a free loopback port (tests, notebooks);
`ServerProcess` runs `codelm serve` as a child process (benchmarks: its own interpreter and GIL).
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
        return GatewayClient(args.upstream, args.model, family)

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
    )
    return LocalEngineClient(engine, max_batch_size=args.max_batch_size, max_queue=args.max_queue)


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


def serve_from_args(args: argparse.Namespace) -> None:
    """Entry point of `codelm serve` (the parser lives in codelm.cli)."""
    api_key = args.api_key or os.environ.get("CODELM_API_KEY") or None
    backend = build_backend(args)
    name = args.served_model_name or served_name(args.model)
    app = create_app(backend, name, api_key=api_key, aliases=[args.model])
    host = "127.0.0.1" if args.host in ("0.0.0.0", "::", "") else args.host
    print(banner(f"http://{host}:{args.port}", name, bool(api_key), backend.family.supports_fim), flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info", timeout_graceful_shutdown=5)


class ServerThread:
    """uvicorn serving `app` on a background thread; `port=0` picks a free port."""

    def __init__(self, app: FastAPI, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning"):
        config = uvicorn.Config(app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=2)
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
