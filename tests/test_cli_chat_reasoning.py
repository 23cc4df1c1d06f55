"""`codelm chat` with a reasoning model: thinking on stderr, the answer on stdout and in the history.

Exact thinking comes from a scripted tiny model (`script_tokens`); the command-line runs check the
flags on a real tiny checkpoint, whose random model writes no markers.
"""

from __future__ import annotations

import argparse
import io
import json
import sys

import pytest

from codelm.cli import main
from codelm.cli_chat import chat_from_file, chat_interactive
from codelm.models.tiny import script_tokens

THOUGHT, ANSWER = "f must return one.", "def f():\n    return 1"
SCRIPT = f"<think>\n{THOUGHT}\n</think>\n\n{ANSWER}"


@pytest.fixture
def scripted(tiny_engine):
    engine = tiny_engine("llama")
    ids = [*engine.tokenizer(SCRIPT, add_special_tokens=False)["input_ids"], engine.tokenizer.eos_token_id]
    handle = script_tokens(engine.model, ids)
    yield engine
    handle.remove()


def _args(**kw) -> argparse.Namespace:
    return argparse.Namespace(**{"stream": False, "json": False, "hide_reasoning": False, **kw})


def test_interactive_thinking_goes_to_stderr_and_not_into_the_history(
    scripted, recording, monkeypatch, capsys
):
    engine = recording(scripted)
    monkeypatch.setattr(sys, "stdin", io.StringIO("Write f.\nagain\n"))
    chat_interactive(engine, {"max_new_tokens": 100, "temperature": 0}, args=_args())
    out, err = capsys.readouterr()
    assert out.startswith(ANSWER + "\n") and THOUGHT not in out
    assert f"[thinking]\n{THOUGHT}\n[/thinking]\n" in err
    assert engine.sent[1][1] == {"role": "assistant", "content": ANSWER}  # the answer only


@pytest.mark.parametrize("stream", [False, True])
def test_messages_file_prints_thinking_apart(scripted, tmp_path, capsys, stream):
    path = tmp_path / "m.json"
    path.write_text(json.dumps([{"role": "user", "content": "Write f."}]))
    chat_from_file(scripted, str(path), {"max_new_tokens": 100, "temperature": 0}, _args(stream=stream))
    out, err = capsys.readouterr()
    assert out == ANSWER + "\n"
    assert err == f"[thinking]\n{THOUGHT}\n[/thinking]\n"


def test_json_output_has_a_reasoning_field(scripted, tmp_path, capsys):
    path = tmp_path / "m.json"
    path.write_text(json.dumps([{"role": "user", "content": "Write f."}]))
    chat_from_file(scripted, str(path), {"max_new_tokens": 100, "temperature": 0}, _args(json=True))
    c = json.loads(capsys.readouterr().out)["completions"][0]
    assert (c["reasoning"], c["text"]) == (THOUGHT, ANSWER)


def test_hide_reasoning(scripted, tmp_path, capsys):
    path = tmp_path / "m.json"
    path.write_text(json.dumps([{"role": "user", "content": "Write f."}]))
    chat_from_file(scripted, str(path), {"max_new_tokens": 100}, _args(stream=True, hide_reasoning=True))
    out, err = capsys.readouterr()
    assert out == ANSWER + "\n" and err == ""


def test_cli_flags_on_a_tiny_reasoning_template(tiny_checkpoint, tmp_path, capsys):
    """The real command line (in-process `main`): flags reach the engine, bad values are one line."""
    path = tmp_path / "m.json"
    path.write_text(json.dumps([{"role": "user", "content": "Write f."}]))
    model = ["chat", "--model", str(tiny_checkpoint("seedcoder")), "--max-new-tokens", "4"]
    assert (
        main(
            [
                *model,
                "--messages",
                str(path),
                "--chat-format",
                "reasoning",
                "--max-thinking-tokens",
                "2",
                "--json",
            ]
        )
        == 0
    )
    c = json.loads(capsys.readouterr().out)["completions"][0]
    assert "reasoning" not in c and c["completion_tokens"] >= 1  # no markers: no reasoning field
    assert main([*model, "--messages", str(path), "--max-thinking-tokens", "-1"]) == 1
    assert capsys.readouterr().err.strip() == (
        "codelm: error: invalid sampling parameter: max_thinking_tokens must be an integer >= 0, got -1"
    )
    system = tmp_path / "s.json"
    system.write_text(json.dumps([{"role": "system", "content": "s"}, {"role": "user", "content": "x"}]))
    assert main([*model, "--messages", str(system), "--chat-format", "reasoning"]) == 1
    assert "System role not supported" in capsys.readouterr().err
