"""`codelm tokenizer train`: round trip, special tokens per family format, code-friendly splits."""

from __future__ import annotations

import argparse
import json
import sysconfig
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from codelm.errors import CodelmError
from codelm.models import FAMILY_NAMES, get_family
from codelm.models.formats import render_chat, render_fim
from codelm.models.tiny import stdlib_sources
from codelm.train.cli import add_tokenizer_train_args, tokenizer_train_from_args
from codelm.train.tokenizer import train_code_tokenizer

CODE = (
    "def add(a, b):\n        return a + 12345  # ünïcode 日本 🙂\n\t\t\tpass\n" + " " * 40 + "x = '''\\n'''\n"
)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Every family's tokenizer, trained on the same small corpus and reloaded from disk."""
    from codelm.models.tokenizer import save_tokenizer

    out = {}
    texts = list(stdlib_sources(200_000))
    for name in FAMILY_NAMES:
        tok = train_code_tokenizer(texts, name, 1024)
        path = tmp_path_factory.mktemp(name)
        save_tokenizer(tok, get_family(name), path, 2048)
        out[name] = AutoTokenizer.from_pretrained(path)
    return out


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_round_trip_and_special_tokens(trained, family):
    tok, fam = trained[family], get_family(family)
    ids = tok(CODE, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == CODE
    for t in fam.tokenizer.special_tokens:  # every control token is one atomic id
        assert tok(t, add_special_tokens=False)["input_ids"] == [tok.convert_tokens_to_ids(t)]
    assert tok.convert_tokens_to_ids(fam.tokenizer.eos) == tok.eos_token_id
    assert tok.convert_tokens_to_ids(fam.tokenizer.pad) == tok.pad_token_id
    if fam.fim:  # a FIM prompt keeps its sentinels whole
        prompt = render_fim(fam, "def f(x):\n    return ", "\n")
        pieces = tok.convert_ids_to_tokens(tok(prompt, add_special_tokens=False)["input_ids"])
        assert all(s in pieces for s in fam.fim.sentinels)
    if fam.file_separator:
        assert fam.file_separator in tok.convert_ids_to_tokens(tok(f"a{fam.file_separator}b")["input_ids"])
    if fam.chat:
        assert tok.chat_template == fam.chat.template
        msgs = [{"role": "user", "content": "hi"}]
        assert tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True) == render_chat(
            fam, msgs
        )


def test_real_ids_kept_where_known(trained):
    gem, seed, sc = trained["codegemma"], trained["seedcoder"], trained["stablecode"]
    assert (gem.pad_token_id, gem.eos_token_id, gem.bos_token_id) == (0, 1, 2)
    assert (seed.bos_token_id, seed.eos_token_id) == (0, 2)
    assert sc.convert_tokens_to_ids("<|endoftext|>") == 0


@pytest.mark.parametrize("family", ["llama", "codegen1"])
def test_digits_split_and_whitespace_runs(trained, family):
    # CodeGenTokenizer swaps in a plain ByteLevel pre-tokenizer on load; digits still come out one by
    # one because the BPE, trained with digits split, has no merge that involves a digit.
    tok = trained[family]
    pieces = tok.convert_ids_to_tokens(tok("x = 12345 + 0.75", add_special_tokens=False)["input_ids"])
    assert [p for p in pieces if any(c.isdigit() for c in p)] == list("12345075")
    assert tok(" " * 8, add_special_tokens=False)["input_ids"] == [tok.convert_tokens_to_ids(" " * 8)]
    assert tok("\t\t\t", add_special_tokens=False)["input_ids"] == [tok.convert_tokens_to_ids("\t\t\t")]
    assert len(tok(" " * 40, add_special_tokens=False)["input_ids"]) == 2  # 31 + 9


def test_options_turn_the_code_splits_off():
    tok = train_code_tokenizer(
        list(stdlib_sources(100_000)), "llama", 600, split_digits=False, whitespace_runs=False
    )
    assert " " * 8 not in tok.get_vocab()


def test_cli_entry_point(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    for name in ("textwrap.py", "string.py"):
        (corpus / name).write_text((stdlib / name).read_text())
    (corpus / "extra.jsonl").write_text(json.dumps({"text": "def f():\n    return 1\n"}) + "\n")
    (corpus / "blob.py").write_bytes(b"\xff\xfe not utf-8")
    p = argparse.ArgumentParser()
    add_tokenizer_train_args(p)
    args = p.parse_args(
        [
            "--family",
            "stablecode",
            "--input",
            str(corpus),
            "--vocab-size",
            "600",
            "--out",
            str(tmp_path / "tok"),
        ]
    )
    out = tokenizer_train_from_args(args)
    tok = AutoTokenizer.from_pretrained(out)
    assert tok.decode(tok(CODE, add_special_tokens=False)["input_ids"]) == CODE
    lineage = json.loads((out / "codelm_tokenizer.json").read_text())
    assert lineage["documents"] == 3 and lineage["skipped"] == {"not UTF-8": 1}
    assert json.loads((out / "tokenizer_config.json").read_text())["model_max_length"] == 16384


def test_bad_inputs_are_clear_errors(tmp_path):
    from codelm.train.tokenizer import iter_corpus

    with pytest.raises(CodelmError, match="does not exist"):
        list(iter_corpus([tmp_path / "nope"]))
    with pytest.raises(CodelmError, match="too small"):
        train_code_tokenizer(["x"], "llama", 100)
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text('{"text": "x = 1"}\n{"text": \n')
    with pytest.raises(CodelmError, match=r"corpus.jsonl:2: not valid JSON"):
        list(iter_corpus([corpus]))
    corpus.write_text('{"text": "x = 1"}\n{"txt": "y"}\n')
    with pytest.raises(CodelmError, match=r"corpus.jsonl:2: a JSONL corpus record needs a string 'text'"):
        list(iter_corpus([corpus]))
