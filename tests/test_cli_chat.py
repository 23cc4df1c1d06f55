"""`codelm chat` interactive: the banner, commands handled locally, and a clean stderr."""

from __future__ import annotations

import io
import subprocess
import sys

from codelm.cli_chat import banner, chat_interactive


def test_commands_are_handled_locally_and_never_sent(tiny_engine, recording, monkeypatch, capsys):
    engine = recording(tiny_engine("llama"))
    lines = "/help\nhi\n/reset\n/bogus\nthere\n/usr/bin is missing\n/exit\nnever read\n"
    monkeypatch.setattr(sys, "stdin", io.StringIO(lines))
    chat_interactive(engine, {"max_new_tokens": 2}, system="be brief")
    err = capsys.readouterr().err
    assert err.count(banner()) == 2  # at the start and for /help
    assert all(c in banner() for c in ("/help", "/reset", "/exit"))
    assert "(conversation reset)" in err and "unknown command /bogus" in err
    system = {"role": "system", "content": "be brief"}
    users = [[m["content"] for m in h if m["role"] == "user"] for h in engine.sent]
    # /help and /bogus never reach the model; /reset forgets "hi" but keeps the system message
    assert users == [["hi"], ["there"], ["there", "/usr/bin is missing"]]
    assert all(h[0] == system for h in engine.sent)


def test_cli_chat_session_prints_only_the_banner_on_stderr(tiny_checkpoint):
    """No library warnings between turns (transformers' past_key_values deprecation did)."""
    proc = subprocess.run(
        [sys.executable, "-m", "codelm.cli", "chat", "--model", str(tiny_checkpoint("llama"))]
        + ["--max-new-tokens", "3"],
        input="hi\n/help\nthere\n",
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == (banner() + "\n") * 2
