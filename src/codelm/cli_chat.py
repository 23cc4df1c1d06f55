"""`codelm chat`: one reply to a JSON conversation, or an interactive multi-turn session."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from codelm.errors import CodelmError


def load_messages(path: str) -> list[dict[str, Any]]:
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
        data = json.loads(text)
    except OSError as exc:
        raise CodelmError(f"cannot read {path}: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise CodelmError(f"{path} is not valid JSON: {exc}") from exc
    if isinstance(data, dict) and "messages" in data:
        data = data["messages"]
    if not isinstance(data, list):
        raise CodelmError(f"{path} must hold a list of messages (or an object with 'messages')")
    return data


def chat_from_file(engine, path: str, sampling: dict[str, Any], args: argparse.Namespace) -> None:
    from codelm.cli import _emit

    _emit(engine, engine.chat_request(load_messages(path), **sampling), args)


def chat_interactive(engine, sampling: dict[str, Any], system: str | None = None) -> None:
    """Read user turns from stdin; stream each reply; /reset clears, /exit or EOF ends."""
    history: list[dict[str, str]] = [{"role": "system", "content": system}] if system else []
    tty = sys.stdin.isatty()
    while True:
        if tty:
            print("you> ", end="", file=sys.stderr, flush=True)
        line = sys.stdin.readline()
        if not line or line.strip() in ("/exit", "/quit"):
            return
        if line.strip() == "/reset":
            history = history[:1] if system else []
            continue
        if not line.strip():
            continue
        history.append({"role": "user", "content": line.rstrip("\n")})
        request = engine.chat_request(history, **{**sampling, "n": 1})
        reply = []
        for chunk in engine.stream(request):
            reply.append(chunk.text)
            sys.stdout.write(chunk.text)
            sys.stdout.flush()
        sys.stdout.write("\n")
        sys.stdout.flush()
        history.append({"role": "assistant", "content": "".join(reply)})
