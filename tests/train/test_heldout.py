"""Held-out loss during training (train/heldout.py): when it is scored, which rows, and what it equals."""

from __future__ import annotations

import math

import numpy as np
import pytest

from codelm.config import ConfigError


def heldout_records(out) -> dict[int, dict]:
    from codelm.train.metrics import read_metrics

    return {r["step"]: r for r in read_metrics(out / "metrics.jsonl") if "heldout_loss" in r}


def pretrain_args(ck, shards) -> list[str]:
    return [
        "model.family=llama",
        f"model.tokenizer={ck('llama')}",
        f"pretrain.shards=[{shards('llama')}]",
        "pretrain.fim_rate=0.5",  # training rows are FIM-ed; held-out rows never are
        f"pretrain.heldout_shards=[{shards('llama', heldout=True)}]",
    ]


def document_stream(shard_dir, bos: int | None, eos: int) -> np.ndarray:
    """The held-out documents in file order, each [BOS] doc EOS: what plain rows are cut from."""
    from codelm.train.shards import ShardReader

    reader = ShardReader([shard_dir])
    head = [bos] if bos is not None else []
    return np.concatenate([np.r_[head, reader.document(i), eos] for i in range(len(reader))])


def test_pretrain_heldout_loss_is_the_plain_lm_loss_of_the_weights(tiny_checkpoint, shards_of, make_config):
    """Scored before training, every eval_every steps and at the end, on the first rows of the held-out
    shards cut as training rows but without FIM; at the end it equals HF's own loss of the final model."""
    import torch
    from transformers import AutoModelForCausalLM

    from codelm.models import get_family
    from codelm.train.heldout import heldout_rows
    from codelm.train.init import load_tokenizer
    from codelm.train.loop import train
    from codelm.train.packing import collate, model_inputs

    cfg = make_config(
        "pretrain", *pretrain_args(tiny_checkpoint, shards_of), "run.eval_every=4", "run.eval_rows=6"
    )
    final = train(cfg)
    held = heldout_records(final.parent)
    assert sorted(held) == [0, 4, 6]
    assert "loss" not in held[0] and all("loss" in held[s] for s in (4, 6))  # merged into step records
    assert held[6]["heldout_loss"] < held[0]["heldout_loss"]  # it learns what it never saw

    tok, family = load_tokenizer(cfg.model), get_family("llama")
    rows = heldout_rows(cfg, tok, family)
    bos = tok.convert_tokens_to_ids(family.tokenizer.bos) if family.tokenizer.add_bos else None
    stream = document_stream(shards_of("llama", heldout=True), bos, tok.eos_token_id)
    assert np.array_equal(np.concatenate([r.ids for r in rows]), stream[: 6 * 64])  # no FIM, in order

    model = AutoModelForCausalLM.from_pretrained(final, dtype=torch.float32)
    batch = collate(rows, tok.pad_token_id)
    with torch.no_grad():
        want = model(**model_inputs(batch), labels=batch.labels, num_items_in_batch=batch.targets).loss
    assert held[6]["heldout_units"] == batch.targets
    assert held[6]["heldout_loss"] == pytest.approx(want.item(), abs=1e-4)


def test_heldout_rows_stop_at_the_end_of_the_data(tiny_checkpoint, shards_of, make_config):
    """eval_rows past the end: whole rows of one pass only, nothing wrapped from the start again."""
    from codelm.models import get_family
    from codelm.train.heldout import heldout_rows
    from codelm.train.init import load_tokenizer

    cfg = make_config("pretrain", *pretrain_args(tiny_checkpoint, shards_of), "run.eval_rows=100000")
    tok, family = load_tokenizer(cfg.model), get_family("llama")
    rows = heldout_rows(cfg, tok, family)
    stream = document_stream(shards_of("llama", heldout=True), None, tok.eos_token_id)
    assert len(rows) == len(stream) // 64 < 100000


@pytest.mark.parametrize("reference", ["model", "precomputed"])
def test_dpo_heldout_preferences(reference, tiny_checkpoint, chat_files, make_config):
    """Before training the policy is its reference: held-out loss log 2, margin 0; after a few steps on
    separable pairs the held-out margin is positive and the loss below log 2."""
    from codelm.train.loop import train

    cfg = make_config(
        "dpo",
        f"model.init_from={tiny_checkpoint('stablecode')}",
        f"dpo.data={chat_files['dpo']}",
        f"dpo.heldout={chat_files['dpo_heldout']}",
        f"dpo.reference={reference}",
        "run.eval_rows=6",
    )
    held = heldout_records(train(cfg).parent)
    assert sorted(held) == [0, 6]
    assert held[0]["heldout_units"] == 6
    assert held[0]["heldout_loss"] == pytest.approx(math.log(2), abs=1e-5)
    assert held[0]["heldout_reward_margin"] == pytest.approx(0.0, abs=1e-5)
    assert held[6]["heldout_loss"] < math.log(2) and held[6]["heldout_reward_margin"] > 0
    assert 0 <= held[6]["heldout_reward_accuracy"] <= 1


def test_sft_heldout_loss_falls(tiny_checkpoint, chat_files, make_config):
    from codelm.train.loop import train

    cfg = make_config(
        "sft",
        f"model.init_from={tiny_checkpoint('codegemma')}",
        f"sft.data={chat_files['sft']}",
        f"sft.heldout={chat_files['sft_heldout']}",
        "run.eval_every=3",
    )
    held = heldout_records(train(cfg).parent)
    assert sorted(held) == [0, 3, 6]
    assert held[6]["heldout_loss"] < held[0]["heldout_loss"]


def test_heldout_config_errors(tiny_checkpoint, shards_of, chat_files, make_config):
    train_shards = shards_of("llama")
    with pytest.raises(ConfigError, match="heldout_shards are also training shards"):
        make_config("pretrain", "model.family=llama", f"pretrain.shards=[{train_shards}]",
                    f"pretrain.heldout_shards=[{train_shards}/.]")  # fmt: skip
    with pytest.raises(ConfigError, match="sft.heldout is sft.data"):
        make_config(
            "sft", "model.family=llama", f"sft.data={chat_files['sft']}", f"sft.heldout={chat_files['sft']}"
        )
    with pytest.raises(ConfigError, match="eval_rows"):
        make_config("sft", "model.family=llama", f"sft.data={chat_files['sft']}", "run.eval_rows=0")
