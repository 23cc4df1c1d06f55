"""SFT and pretraining on narrow data with replayed pretraining rows (train/replay.py): the mix, exact
resume, and a real run."""

import json

import numpy as np
import pytest

from codelm.config import ConfigError


def _stage(tiny_checkpoint, chat_files, shards_of, make_config, *extra):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from codelm.models import get_family
    from codelm.train.stages import build_stage

    checkpoint = tiny_checkpoint("llama")
    cfg = make_config(
        "sft",
        f"model.init_from={checkpoint}",
        f"sft.data={chat_files['sft']}",
        "sft.shuffle=false",
        *extra,
    )
    model = AutoModelForCausalLM.from_pretrained(checkpoint)
    return build_stage(
        cfg, AutoTokenizer.from_pretrained(checkpoint), get_family("llama"), model, torch.device("cpu")
    )


REPLAY = ("sft.replay_fraction=0.25", "sft.replay_fim_rate=0.5")


def test_replay_mixes_a_fixed_share_in_order(tiny_checkpoint, chat_files, shards_of, make_config):
    plain = _stage(tiny_checkpoint, chat_files, shards_of, make_config).source.next_units(30)
    mixed = _stage(
        tiny_checkpoint,
        chat_files,
        shards_of,
        make_config,
        f"sft.replay_shards=[{shards_of('llama')}]",
        *REPLAY,
    ).source
    rows = mixed.next_units(40)
    replayed = [i for i in range(40) if (i + 1) // 4 > i // 4]  # every 4th unit: 3, 7, 11, ...
    assert replayed == list(range(3, 40, 4))
    sft_rows = [r for i, r in enumerate(rows) if i not in replayed]
    assert len(sft_rows) == 30  # the SFT rows are the plain stage's, in its order
    assert all(np.array_equal(a.ids, b.ids) for a, b in zip(sft_rows, plain, strict=True))
    for i in replayed:  # pretraining rows: full rows, every token but segment starts a target
        assert len(rows[i]) == 64 and (rows[i].labels != -100).sum() >= 60
    assert mixed.lineage()["replay"]["fraction"] == 0.25


def test_replay_resumes_exactly(tiny_checkpoint, chat_files, shards_of, make_config):
    args = (f"sft.replay_shards=[{shards_of('llama')}]", *REPLAY)
    first = _stage(tiny_checkpoint, chat_files, shards_of, make_config, *args).source
    first.next_units(13)
    state = json.loads(json.dumps(first.state_dict()))  # as a checkpoint stores it
    want = first.next_units(21)
    again = _stage(tiny_checkpoint, chat_files, shards_of, make_config, *args).source
    again.load_state_dict(state)
    got = again.next_units(21)
    assert all(
        np.array_equal(a.ids, b.ids) and np.array_equal(a.labels, b.labels)
        for a, b in zip(got, want, strict=True)
    )


def test_sft_trains_with_replay(tiny_checkpoint, chat_files, shards_of, make_config, read_losses):
    from codelm.train.loop import train

    cfg = make_config(
        "sft",
        f"model.init_from={tiny_checkpoint('llama')}",
        f"sft.data={chat_files['sft']}",
        f"sft.replay_shards=[{shards_of('llama')}]",
        *REPLAY,
    )
    final = train(cfg)
    losses = read_losses(final.parent)
    assert len(losses) == 6 and all(np.isfinite(losses))
    meta = json.loads(next((final.parent / "checkpoints").glob("step-*/meta.json")).read_text())
    assert meta["data"]["replay"]["fraction"] == 0.25


def test_replay_config_errors(chat_files, make_config):
    with pytest.raises(ConfigError, match="needs sft.replay_shards"):
        make_config("sft", "model.family=llama", f"sft.data={chat_files['sft']}", "sft.replay_fraction=0.2")
    with pytest.raises(ConfigError, match="replay_fraction"):
        make_config(
            "sft",
            "model.family=llama",
            f"sft.data={chat_files['sft']}",
            "sft.replay_fraction=1.0",
            "sft.replay_shards=[x]",
        )


def _pretrain_stage(tiny_checkpoint, shards_of, make_config, *extra):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from codelm.models import get_family
    from codelm.train.stages import build_stage

    checkpoint = tiny_checkpoint("llama")
    cfg = make_config(
        "pretrain",
        f"model.init_from={checkpoint}",
        f"pretrain.shards=[{shards_of('llama', heldout=True)}]",  # the narrow data: other files
        "pretrain.fim_rate=0.5",
        *extra,
    )
    model = AutoModelForCausalLM.from_pretrained(checkpoint)
    return build_stage(
        cfg, AutoTokenizer.from_pretrained(checkpoint), get_family("llama"), model, torch.device("cpu")
    )


def test_pretraining_on_narrow_data_replays_the_corpus(tiny_checkpoint, shards_of, make_config):
    """The tiny recipe's functions stage: its documents' rows in their own order, every other row
    from the corpus shards."""
    plain = _pretrain_stage(tiny_checkpoint, shards_of, make_config).source.next_units(10)
    replay = (f"pretrain.replay_shards=[{shards_of('llama')}]", "pretrain.replay_fraction=0.5")
    mixed = _pretrain_stage(tiny_checkpoint, shards_of, make_config, *replay).source
    rows = mixed.next_units(20)
    own, replayed = rows[0::2], rows[1::2]
    assert all(np.array_equal(a.ids, b.ids) for a, b in zip(own, plain, strict=True))
    assert not any(np.array_equal(a.ids, b.ids) for a, b in zip(replayed, plain, strict=True))
    assert mixed.lineage()["replay"]["fraction"] == 0.5
    with pytest.raises(ConfigError, match="needs pretrain.replay_shards"):
        _pretrain_stage(tiny_checkpoint, shards_of, make_config, "pretrain.replay_fraction=0.5")
