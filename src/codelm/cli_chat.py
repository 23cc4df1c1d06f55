"""`codelm chat`: one reply to a JSON conversation, or an interactive multi-turn session.

A reasoning model's thinking goes to stderr (framed by `[thinking]` lines), its answer to stdout,
so a pipe gets the answer only; `--hide-reasoning` drops the thinking, `--max-thinking-tokens N`
bounds it, `--chat-format reasoning` renders the family's reasoning template (Seed-Coder-8B-
Reasoning's). Only answers go back into the conversation, as reasoning templates expect.
"""

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


def add_reasoning_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("reasoning models")
    g.add_argument(
        "--chat-format", choices=["chat", "reasoning"], help="reasoning: the family's reasoning template"
    )
    g.add_argument("--max-thinking-tokens", type=int, help="thinking tokens before the answer is forced")
    g.add_argument(
        "--reasoning",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="separate the thinking from the answer (default: yes; --no-reasoning prints it as text)",
    )
    g.add_argument("--hide-reasoning", action="store_true", help="do not print the thinking")


class ReasoningEcho:
    """Writes a reply's thinking to stderr, framed, as it arrives (nothing for other replies)."""

    def __init__(self, args: argparse.Namespace | None = None) -> None:
        self.hidden = bool(getattr(args, "hide_reasoning", False))
        self.open = False

    def __call__(self, reasoning: str, answer: str = "") -> None:
        if self.hidden:
            return
        if reasoning:
            if not self.open:
                sys.stderr.write("[thinking]\n")
                self.open = True
            sys.stderr.write(reasoning)
            sys.stderr.flush()
        if answer:
            self.close()

    def close(self) -> None:
        if self.open and not self.hidden:
            sys.stderr.write("\n[/thinking]\n")
            sys.stderr.flush()
        self.open = False

    def whole(self, reasoning: str | None) -> None:
        if reasoning is not None:
            self(reasoning)
            self.close()


def chat_from_file(engine, path: str, sampling: dict[str, Any], args: argparse.Namespace) -> None:
    from codelm.cli import _emit

    _emit(engine, engine.chat_request(load_messages(path), **sampling), args)


COMMANDS = {
    "/help": "show these commands",
    "/reset": "forget the conversation so far (the --system message stays)",
    "/exit": "end the session (also /quit, or Ctrl-D)",
}


def banner() -> str:
    """What an interactive session prints first: how to use it, since nothing else says so."""
    lines = ["Chat: type a message and press Enter. Commands:"]
    lines += [f"  {name:<7} {what}" for name, what in COMMANDS.items()]
    return "\n".join(lines)


def chat_interactive(
    engine, sampling: dict[str, Any], system: str | None = None, args: argparse.Namespace | None = None
) -> None:
    """Read user turns from stdin and stream each reply to stdout.

    Commands are handled here and never reach the model; their messages, the banner and the prompt
    go to stderr, so stdout holds only the model's replies (usable when piped)."""
    history: list[dict[str, str]] = [{"role": "system", "content": system}] if system else []
    tty = sys.stdin.isatty()
    print(banner(), file=sys.stderr, flush=True)
    while True:
        if tty:
            print("you> ", end="", file=sys.stderr, flush=True)
        line = sys.stdin.readline()
        text = line.strip()
        if not line or text in ("/exit", "/quit"):
            return
        if not text:
            continue
        if _is_command(text):
            if text == "/reset":
                history = history[:1] if system else []
                print("(conversation reset)", file=sys.stderr, flush=True)
            elif text == "/help":
                print(banner(), file=sys.stderr, flush=True)
            else:
                print(f"unknown command {text}; /help lists the commands", file=sys.stderr, flush=True)
            continue
        history.append({"role": "user", "content": line.rstrip("\n")})
        request = engine.chat_request(history, **{**sampling, "n": 1})
        reply, echo = [], ReasoningEcho(args)
        for chunk in engine.stream(request):
            echo(chunk.reasoning, chunk.text)
            reply.append(chunk.text)
            sys.stdout.write(chunk.text)
            sys.stdout.flush()
        echo.close()
        sys.stdout.write("\n")
        sys.stdout.flush()
        history.append({"role": "assistant", "content": "".join(reply)})


def _is_command(text: str) -> bool:
    """A lone /word is a command (known or not); '/usr/bin is missing' is a message."""
    return text.startswith("/") and " " not in text and "/" not in text[1:]
