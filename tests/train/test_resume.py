"""Exact resume: a run killed after a checkpoint and resumed logs the same losses as one never stopped."""

from __future__ import annotations

import pytest

from codelm.errors import CodelmError


class Killed(Exception):
    pass


def kill_after(n: int):
    def hook(step: int, record: dict) -> None:
        if step == n:
            raise Killed  # dies after logging step n, past the checkpoint at step n-1

    return hook


STAGES = {
    "pretrain": lambda ck, shards, files: [
        "model.family=llama",
        f"model.tokenizer={ck('llama')}",
        f"pretrain.shards=[{shards('llama')}]",
        "pretrain.fim_rate=0.5",
    ],
    "dpo": lambda ck, shards, files: [
        f"model.init_from={ck('stablecode')}",
        f"dpo.data={files['dpo']}",
        "batch.global_batch_size=8",  # 4 steps an epoch: the resume crosses into epoch 2
    ],
}


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_killed_and_resumed_run_matches_uninterrupted(
    stage, tiny_checkpoint, shards_of, chat_files, make_config, read_losses, tmp_path
):
    from codelm.train.loop import train

    extra = STAGES[stage](tiny_checkpoint, shards_of, chat_files)
    straight = make_config(stage, *extra, "run.save_every=2", out=tmp_path / "straight")
    train(straight)
    want = read_losses(tmp_path / "straight")

    broken = make_config(stage, *extra, "run.save_every=2", out=tmp_path / "broken")
    with pytest.raises(Killed):
        train(broken, on_step=kill_after(5))
    assert len(read_losses(tmp_path / "broken")) == 5
    with pytest.raises(CodelmError, match="already has checkpoints"):
        train(broken)
    train(broken, resume=True)
    assert read_losses(tmp_path / "broken") == want  # bit for bit


def test_resume_refuses_a_changed_config(tiny_checkpoint, shards_of, make_config, tmp_path):
    from codelm.train.loop import train

    args = [
        "model.family=llama",
        f"model.tokenizer={tiny_checkpoint('llama')}",
        f"pretrain.shards=[{shards_of('llama')}]",
        "run.max_steps=2",
    ]
    train(make_config("pretrain", *args))
    with pytest.raises(CodelmError, match=r"optim\.lr"):
        train(make_config("pretrain", *args, "optim.lr=0.5"), resume=True)
    with pytest.raises(CodelmError, match="nothing to resume"):
        train(make_config("pretrain", *args, out=tmp_path / "empty"), resume=True)
