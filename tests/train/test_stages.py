"""Each stage trains a tiny model for a few CPU steps: the loss falls, and matches stored values.

The stored curves were produced by these exact configs (seed 0, one thread, deterministic algorithms);
a change in the loop, the packing, FIM or the losses shows up here as a number that moved.
"""

from __future__ import annotations

import json

import pytest
from transformers import AutoConfig

TOL = 5e-4  # absolute; CPU kernels differ a little between machines, not more than this in 6 steps

EXPECTED = {
    "pretrain_fim_llama": [7.644841, 7.464437, 7.264548, 6.878644, 6.898741, 7.372994],
    "pretrain_codegen1": [7.679152, 7.625783, 7.344605, 7.009323, 6.691055, 7.423984],
    "long_context_stablecode": [7.623799, 7.565976, 7.380855, 7.026281, 6.990296, 6.918396],
    "sft_codegemma": [7.635675, 6.782988, 5.736044, 4.994889, 4.350411, 3.970856],
    "dpo_stablecode": [0.693147, 0.315581, 0.196065, 0.138014, 0.104638, 0.081465, 0.0702, 0.063638],
}


def check_curve(name: str, got: list[float]) -> None:
    assert sum(got[-2:]) / 2 < got[0], f"{name}: loss did not fall: {got}"
    want = EXPECTED[name]
    assert len(got) == len(want) and all(abs(a - b) <= TOL for a, b in zip(got, want, strict=True)), (
        f"{name}: loss curve moved\n got  {got}\n want {want}"
    )


def test_pretrain_fim_llama(pretrain_run, read_losses):
    check_curve("pretrain_fim_llama", read_losses(pretrain_run.parent))


def test_pretrain_codegen1_no_fim(tiny_checkpoint, shards_of, make_config, read_losses):
    from codelm.train.loop import train

    cfg = make_config(
        "pretrain",
        "model.family=codegen1",
        f"model.tokenizer={tiny_checkpoint('codegen1')}",
        f"pretrain.shards=[{shards_of('codegen1')}]",
        "batch.unit=tokens",
        "batch.global_batch_size=256",  # 4 rows of 64 tokens
    )
    final = train(cfg)
    check_curve("pretrain_codegen1", read_losses(final.parent))


def test_long_context_continues_with_new_rope_theta(tiny_checkpoint, shards_of, make_config, read_losses):
    from codelm.train.loop import train

    cfg = make_config(
        "pretrain",
        f"model.init_from={tiny_checkpoint('stablecode')}",
        "model.rope_theta=5000000",
        "model.max_position_embeddings=2048",
        f"pretrain.shards=[{shards_of('stablecode')}]",
        "pretrain.fim_rate=0.1",  # Seed-Coder's continued-pretraining rate
        "batch.seq_len=256",
        "batch.micro_batch_size=1",
        "batch.global_batch_size=2",
    )
    final = train(cfg)
    config = AutoConfig.from_pretrained(final)
    assert config.rope_parameters["rope_theta"] == 5_000_000
    assert config.max_position_embeddings == 2048
    check_curve("long_context_stablecode", read_losses(final.parent))


def test_sft_codegemma_loss_on_assistant_tokens(tiny_checkpoint, chat_files, make_config, read_losses):
    from codelm.train.loop import train

    cfg = make_config(
        "sft",
        f"model.init_from={tiny_checkpoint('codegemma')}",
        f"sft.data={chat_files['sft']}",
        "batch.seq_len=128",
    )
    final = train(cfg)
    check_curve("sft_codegemma", read_losses(final.parent))
    meta = json.loads((final / "meta.json").read_text())
    assert meta["data"]["kind"] == "sft" and meta["data"]["examples"] == 48


def test_dpo_reward_accuracy_rises(tiny_checkpoint, chat_files, make_config, read_losses):
    from codelm.train.loop import train
    from codelm.train.metrics import read_metrics

    cfg = make_config(
        "dpo",
        f"model.init_from={tiny_checkpoint('stablecode')}",
        f"dpo.data={chat_files['dpo']}",
        "dpo.beta=0.1",
        "batch.micro_batch_size=2",
        "batch.global_batch_size=8",
        "optim.lr=1.0e-3",
        "run.max_steps=8",
    )
    final = train(cfg)
    records = read_metrics(final.parent / "metrics.jsonl")
    acc = [r["reward_accuracy"] for r in records]
    assert acc[0] <= 0.5  # policy == reference at the first step: every reward is 0
    assert min(acc[-3:]) >= 0.9, acc
    assert records[-1]["reward_margin"] > records[0]["reward_margin"]
    check_curve("dpo_stablecode", read_losses(final.parent))


def test_dpo_precomputed_reference_matches_frozen_model(tiny_checkpoint, chat_files, make_config, tmp_path):
    from codelm.train.loop import train
    from codelm.train.metrics import read_metrics

    curves = []
    for ref in ("model", "precomputed"):
        cfg = make_config(
            "dpo",
            f"model.init_from={tiny_checkpoint('stablecode')}",
            f"dpo.data={chat_files['dpo']}",
            f"dpo.reference={ref}",
            "run.max_steps=3",
            out=tmp_path / ref,
        )
        final = train(cfg)
        curves.append([r["loss"] for r in read_metrics(final.parent / "metrics.jsonl")])
    assert curves[0] == pytest.approx(curves[1], abs=1e-5)
    assert (tmp_path / "precomputed" / "dpo_reference.json").is_file()


@pytest.mark.parametrize(
    ("family", "options"),
    [
        ("llama", ["run.precision=bf16"]),
        ("codegen1", ["run.precision=bf16", "model.packed_attention=block_mask"]),
        ("codegemma", ["model.gradient_checkpointing=true", "model.packed_attention=block_mask"]),
        ("stablecode", ["model.attn_implementation=eager", "optim.decay=constant", "optim.grad_clip=0"]),
    ],
)
def test_precision_and_attention_options_train(
    family, options, tiny_checkpoint, shards_of, make_config, read_losses
):
    from codelm.train.loop import train

    cfg = make_config(
        "pretrain",
        f"model.init_from={tiny_checkpoint(family)}",
        f"pretrain.shards=[{shards_of(family)}]",
        "run.max_steps=3",
        *options,
    )
    got = read_losses(train(cfg).parent)
    assert len(got) == 3 and all(x == x and 5 < x < 9 for x in got)
