"""SFT/DPO data: loss exactly on the assistant's replies and their end markers, packing keeps them whole."""

from __future__ import annotations

import json

import numpy as np
import pytest

from codelm.errors import CodelmError
from codelm.models import get_family
from codelm.train.chat import ChatEncoder, DPOSource, SFTSource
from codelm.train.packing import IGNORE

CONVO = [
    {"role": "user", "content": "Reverse a string."},
    {"role": "assistant", "content": "s[::-1]"},
    {"role": "user", "content": "And a list?"},
    {"role": "assistant", "content": "xs[::-1]"},
]
END = {
    "codegemma": "<end_of_turn>\n",
    "stablecode": "<|im_end|>\n",
    "llama": "<|im_end|>\n",
    "seedcoder": "<[end▁of▁sentence]>",
}


def spans(tok, ids, labels) -> list[str]:
    """The labelled stretches of a row, decoded."""
    out, cur = [], []
    for i, lab in zip(ids, labels, strict=True):
        if lab != IGNORE:
            cur.append(int(i))
        elif cur:
            out.append(tok.decode(cur))
            cur = []
    return out + ([tok.decode(cur)] if cur else [])


@pytest.mark.parametrize("family", sorted(END))
def test_loss_only_on_assistant_turns_with_their_end_marker(tokenizer_of, family):
    tok = tokenizer_of(family)
    enc = ChatEncoder(tok, get_family(family))
    ids, labels = enc.conversation(CONVO)
    assert spans(tok, ids, labels) == [f"s[::-1]{END[family]}", f"xs[::-1]{END[family]}"]
    spec = get_family(family).tokenizer
    if spec.add_bos:  # exactly one BOS at the start, as the engine encodes prompts
        bos = tok.convert_tokens_to_ids(spec.bos)
        assert ids[0] == bos and ids[1] != bos
    ids, labels = enc.conversation(CONVO, train_from=3)  # DPO: only the reply after the prompt
    assert spans(tok, ids, labels) == [f"xs[::-1]{END[family]}"]


def test_plain_completion_for_base_formats(tokenizer_of):
    tok = tokenizer_of("codegen1")
    enc = ChatEncoder(tok, get_family("codegen1"))
    with pytest.raises(CodelmError, match="no chat template"):
        enc.conversation(CONVO)
    ids, labels = enc.completion("def f():\n", "    return 1\n")
    assert spans(tok, ids, labels) == ["    return 1\n<|endoftext|>"]


def test_sft_packing_keeps_conversations_whole(tokenizer_of, tmp_path):
    tok = tokenizer_of("llama")
    path = tmp_path / "sft.jsonl"
    path.write_text("".join(json.dumps({"messages": CONVO[: 2 + 2 * (i % 2)]}) + "\n" for i in range(10)))
    enc = ChatEncoder(tok, get_family("llama"))
    src = SFTSource(str(path), enc, seq_len=64, packing=True, seed=0)
    lengths = sorted({len(e[0]) for e in src.examples})
    rows = src.next_units(4)
    for row in rows:
        assert len(row) <= 64
        per_segment = np.bincount(row.segments)
        assert all(n in lengths for n in per_segment)  # whole examples only
    assert max(r.segments.max() for r in rows) >= 1  # several per row
    state = src.state_dict()
    more = src.next_units(3)
    src.load_state_dict(state)
    again = src.next_units(3)
    assert all((a.ids == b.ids).all() for a, b in zip(more, again, strict=True))


def test_dpo_pairs_share_the_prompt(tokenizer_of, tmp_path):
    tok = tokenizer_of("stablecode")
    path = tmp_path / "dpo.jsonl"
    path.write_text(json.dumps({"prompt": "Say hi.", "chosen": "hi", "rejected": "no"}) + "\n")
    src = DPOSource(str(path), ChatEncoder(tok, get_family("stablecode")), seq_len=64, seed=0)
    chosen, rejected = src.next_units(1)
    assert spans(tok, chosen.ids, chosen.labels) == ["hi<|im_end|>\n"]
    assert spans(tok, rejected.ids, rejected.labels) == ["no<|im_end|>\n"]
    prompt = tok.decode(chosen.ids[chosen.labels == IGNORE])
    assert prompt == tok.decode(rejected.ids[rejected.labels == IGNORE])
    assert prompt == "<|im_start|>user\nSay hi.<|im_end|>\n<|im_start|>assistant\n"


def test_plain_text_pairs_skip_the_chat_format(tokenizer_of, tmp_path):
    """`"chat": false`: a base model's completion or infill pair, as is, beside chat pairs."""
    tok = tokenizer_of("stablecode")
    path = tmp_path / "dpo.jsonl"
    records = [
        {"prompt": "def f():\n", "chosen": "    return (1)\n", "rejected": "    return (1\n", "chat": False},
        {"prompt": "Say hi.", "chosen": "hi", "rejected": "no"},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    src = DPOSource(str(path), ChatEncoder(tok, get_family("stablecode")), seq_len=64, seed=0, shuffle=False)
    chosen, rejected, chat_chosen, _ = src.next_units(2)
    eos = tok.eos_token
    assert spans(tok, chosen.ids, chosen.labels) == [f"    return (1)\n{eos}"]
    assert spans(tok, rejected.ids, rejected.labels) == [f"    return (1\n{eos}"]
    assert tok.decode(chosen.ids[chosen.labels == IGNORE]) == "def f():\n"
    assert spans(tok, chat_chosen.ids, chat_chosen.labels) == ["hi<|im_end|>\n"]
    path.write_text(json.dumps({**records[0], "chat": "no"}) + "\n")
    with pytest.raises(CodelmError, match="'chat' must be true or false"):
        DPOSource(str(path), ChatEncoder(tok, get_family("stablecode")), seq_len=64, seed=0)


def test_bad_records_are_clear_errors(tokenizer_of, tmp_path):
    enc = ChatEncoder(tokenizer_of("llama"), get_family("llama"))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "x"}\n')
    with pytest.raises(CodelmError, match="needs 'messages'"):
        SFTSource(str(bad), enc, 64, packing=True, seed=0)
    with pytest.raises(CodelmError, match="'prompt', 'chosen' and 'rejected'"):
        DPOSource(str(bad), enc, 64, seed=0)
    bad.write_text("{not json\n")
    with pytest.raises(CodelmError, match="bad.jsonl:1: not valid JSON"):
        SFTSource(str(bad), enc, 64, packing=True, seed=0)
    with pytest.raises(CodelmError, match="does not exist"):
        SFTSource(str(tmp_path / "missing.jsonl"), enc, 64, packing=True, seed=0)
