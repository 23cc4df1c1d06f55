"""What real tokenizers and first-time users exposed (issue 11): unk == eos, special tokens in the
text, library warnings, devices. Exact tokens come from a scripted tiny model (`script_tokens`)."""

from __future__ import annotations

import subprocess
import sys
import warnings

import pytest
import torch

from codelm.cli import _sampling, build_parser, main
from codelm.engine import Engine
from codelm.engine.loader import load_checkpoint, resolve_device
from codelm.errors import CodelmError
from codelm.models import FAMILY_NAMES
from codelm.models.tiny import script_tokens


def _text_ids(engine: Engine, text: str) -> list[int]:
    return engine.tokenizer(text, add_special_tokens=False)["input_ids"]


def test_eos_stays_a_stop_when_unk_bos_and_eos_are_one_token(tiny_checkpoint):
    """CodeGen1 / Stable Code: <|endoftext|> is unk too; EOS must stop even without generation_config."""
    loaded = load_checkpoint(str(tiny_checkpoint("codegen1")))
    tok = loaded.tokenizer
    assert tok.unk_token_id == tok.eos_token_id == tok.bos_token_id
    loaded.model.generation_config.eos_token_id = None  # EOS must come from the family's stop tokens
    engine = Engine(loaded)
    assert tok.eos_token_id in engine.stop_ids("completion", engine.params())
    words = _text_ids(engine, "x = 1")
    script_tokens(engine.model, [*words, tok.eos_token_id, *words])
    c = engine.complete("a", max_new_tokens=20, temperature=0.0, logprobs=0).completions[0]
    assert c.finish_reason == "stop" and c.token_ids == words and len(c.logprobs) == len(words)
    assert c.text == "x = 1"


@pytest.mark.parametrize(("family", "special"), [("stablecode", "<filename>"), ("codegemma", "<bos>")])
def test_special_tokens_that_are_not_stops_leave_the_text_unless_asked(tiny_checkpoint, family, special):
    engine = Engine.from_pretrained(str(tiny_checkpoint(family)))
    sid = engine.tokenizer.convert_tokens_to_ids(special)
    assert sid not in engine.stop_ids("completion", engine.params())
    words = _text_ids(engine, "x = 1")
    script = [sid, *words, sid, engine.tokenizer.eos_token_id]
    for skip, want in ((True, "x = 1"), (False, f"{special}x = 1{special}")):
        handle = script_tokens(engine.model, script)
        r = engine.complete("a", max_new_tokens=20, temperature=0.0, skip_special_tokens=skip, logprobs=0)
        c = r.completions[0]
        handle.remove()
        assert c.text == want and c.token_ids == script[:-1]  # the ids are reported either way
        assert [e.in_text for e in c.logprobs] == [not skip, *[True] * len(words), not skip]
        handle = script_tokens(engine.model, script)
        request = engine.completion_request("a", max_new_tokens=20, skip_special_tokens=skip)
        assert "".join(ch.text for ch in engine.stream(request)) == want
        handle.remove()


def test_skip_special_tokens_flag_reaches_the_request():
    parser = build_parser()
    args = parser.parse_args(["complete", "--model", "m", "--prompt", "p", "--no-skip-special-tokens"])
    assert _sampling(args)["skip_special_tokens"] is False
    args = parser.parse_args(["chat", "--model", "m"])
    assert "skip_special_tokens" not in _sampling(args)  # the engine's default (True) applies


def test_generation_raises_no_library_warnings(tiny_engine):
    """transformers 5.24 deprecates `past_key_values=`: one FutureWarning per generation and per chat turn."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for family in FAMILY_NAMES:
            e = tiny_engine(family)
            e.complete("def f(x):", max_new_tokens=3)
            "".join(c.text for c in e.stream(e.completion_request("def g():", max_new_tokens=3)))
    assert [str(w.message) for w in caught] == []


def test_cli_complete_prints_no_warnings(tiny_checkpoint):
    proc = subprocess.run(
        [sys.executable, "-m", "codelm.cli", "complete", "--model", str(tiny_checkpoint("llama"))]
        + ["--prompt", "def f(x):", "--max-new-tokens", "4", "--stream"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""


def test_unknown_or_missing_devices_are_one_line_errors(tiny_checkpoint, capsys):
    with pytest.raises(CodelmError, match="unknown device 'tpu'"):
        resolve_device("tpu")
    with pytest.raises(CodelmError, match="unsupported device 'meta'"):
        resolve_device("meta")
    if not torch.cuda.is_available():
        with pytest.raises(CodelmError, match="use --device cpu"):
            resolve_device("cuda")
    else:
        with pytest.raises(CodelmError, match="CUDA GPU"):
            resolve_device(f"cuda:{torch.cuda.device_count()}")
    model = str(tiny_checkpoint("llama"))
    for device in ("tpu", "cuda:99"):
        code = main(["complete", "--model", model, "--prompt", "x", "--device", device])
        err = capsys.readouterr().err
        assert code == 1 and err.startswith("codelm: error: ") and err.count("\n") == 1
