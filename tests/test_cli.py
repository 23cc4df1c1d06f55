"""The CLI: verbs, flags, stdout for text, one-line errors on stderr with a non-zero exit."""

import json
import subprocess
import sys

import pytest

from codelm.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_models_table(capsys):
    code, out, _ = run(capsys, "models")
    assert code == 0
    for name in ("codegen1", "codegemma", "stablecode", "seedcoder", "llama", "SPM", "<[fim-suffix]>"):
        assert name in out


def test_models_sizes_table(capsys):
    code, out, _ = run(capsys, "models", "sizes")
    assert code == 0 and "8,250,462,208" in out and "2,795,443,200" in out


def test_make_tiny_then_detect(capsys, tmp_path):
    code, out, _ = run(capsys, "models", "make-tiny", "stablecode", str(tmp_path / "sc"))
    assert code == 0 and out.strip() == str(tmp_path / "sc")
    code, out, _ = run(capsys, "models", "detect", str(tmp_path / "sc"))
    assert (code, out.strip()) == (0, "stablecode")


def test_complete_json_with_n_and_seed(capsys, tiny_checkpoint):
    args = [
        "complete",
        "--model",
        str(tiny_checkpoint("llama")),
        "--prompt",
        "def f(x):",
        "--n",
        "2",
        "--seed",
        "1",
        "--temperature",
        "0.9",
        "--max-new-tokens",
        "6",
        "--json",
    ]
    code, out, _ = run(capsys, *args)
    data = json.loads(out)
    assert code == 0 and len(data["completions"]) == 2
    assert all(c["completion_tokens"] <= 6 for c in data["completions"])
    assert json.loads(run(capsys, *args)[1]) == data  # seeded: identical


def test_infill_stream_and_plain_agree(capsys, tiny_checkpoint):
    base = [
        "infill",
        "--model",
        str(tiny_checkpoint("seedcoder")),
        "--prefix",
        "def add(a, b):\n    return ",
        "--suffix",
        "\n",
        "--max-new-tokens",
        "8",
        "--temperature",
        "0",
    ]
    _, plain, _ = run(capsys, *base)
    _, streamed, _ = run(capsys, *base, "--stream")
    assert plain == streamed


def test_chat_messages_file_and_interactive(capsys, tiny_checkpoint, tmp_path, monkeypatch):
    model = str(tiny_checkpoint("codegemma"))
    f = tmp_path / "m.json"
    f.write_text(json.dumps([{"role": "user", "content": "hello"}]))
    code, out, _ = run(capsys, "chat", "--model", model, "--messages", str(f), "--max-new-tokens", "4")
    assert code == 0 and out.endswith("\n")
    import io

    from codelm.engine import Engine

    prompts = []
    real_stream = Engine.stream

    def recording_stream(self, request):  # the real model runs; we only watch the prompts
        prompts.append(request.prompt)
        yield from real_stream(self, request)

    monkeypatch.setattr(Engine, "stream", recording_stream)
    monkeypatch.setattr(sys, "stdin", io.StringIO("hi\nand again\n/exit\nnot read\n"))
    code, out, _ = run(capsys, "chat", "--model", model, "--max-new-tokens", "3", "--temperature", "0")
    assert code == 0 and len(prompts) == 2
    # the second turn carries the first exchange: multi-turn history
    assert prompts[1].startswith(prompts[0]) and prompts[1].endswith(
        "<start_of_turn>user\nand again<end_of_turn>\n<start_of_turn>model\n"
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["infill", "--prefix", "a", "--suffix", "b"],
            "model family codegen1 does not support fill-in-the-middle",
        ),
        (["complete", "--prompt", "x", "--temperature", "-1"], "temperature must be >= 0"),
        (["complete", "--prompt", "x", "--family", "gemma"], "unknown model family 'gemma'; did you mean"),
        (["chat", "--messages", "/nonexistent.json"], "cannot read /nonexistent.json"),
        (["complete"], "give --prompt TEXT"),
    ],
)
def test_errors_are_one_line_without_traceback(capsys, tiny_checkpoint, argv, message):
    code, out, err = run(capsys, *argv[:1], "--model", str(tiny_checkpoint("codegen1")), *argv[1:])
    assert code == 1 and out == ""
    assert err.startswith("codelm: error: ") and message in err and err.count("\n") == 1


def test_missing_checkpoint_and_console_script(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "codelm.cli", "complete", "--model", str(tmp_path / "none"), "--prompt", "x"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1 and "does not exist" in proc.stderr and "Traceback" not in proc.stderr
    helped = subprocess.run(
        [sys.executable, "-m", "codelm.cli", "infill", "--help"], capture_output=True, text=True
    )
    assert helped.returncode == 0 and "--suffix" in helped.stdout and "--max-new-tokens" in helped.stdout


def test_cli_starts_without_torch():
    """`codelm --help`, `--version` and every verb's parser load no torch or transformers: they start
    in a fraction of a second (torch alone costs seconds). Checked in a fresh interpreter."""
    import subprocess
    import sys

    code = (
        "import sys, contextlib, io\n"
        "import codelm.cli as c\n"
        "p = c.build_parser()\n"
        "for verb in ('run', 'eval', 'train', 'serve', 'complete'):\n"
        "    with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
        "        p.parse_args([verb, '--help'])\n"
        "heavy = [m for m in ('torch', 'transformers', 'fastapi', 'accelerate') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_n_greedy_samples_follow_openai_default_temperature(tiny_checkpoint, capsys):
    """`--n 3` on a family whose default is greedy (CodeGemma completions) would print three
    identical samples: it samples at temperature 1 instead, as the server does, and says so;
    an explicit `--temperature 0` is honoured."""
    import json

    model = str(tiny_checkpoint("codegemma"))
    base = ["complete", "--model", model, "--prompt", "def add(a, b):", "--max-new-tokens", "12", "--json"]
    assert main([*base, "--n", "3", "--seed", "1"]) == 0
    out = capsys.readouterr()
    texts = [c["text"] for c in json.loads(out.out)["completions"]]
    assert "temperature 1.0" in out.err and len(set(texts)) > 1
    assert main([*base, "--n", "3", "--temperature", "0"]) == 0
    out = capsys.readouterr()
    assert "note" not in out.err and len({c["text"] for c in json.loads(out.out)["completions"]}) == 1
