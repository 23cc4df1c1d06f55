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
        # held-out loss at steps 0, 2, 4 and 6: it must take nothing from the training data or RNG
        f"pretrain.heldout_shards=[{shards('llama', heldout=True)}]",
        "run.eval_every=2",
        "run.eval_rows=4",
    ],
    # Muon for the hidden matrices: their momentum buffers are saved and restored with AdamW's state
    "pretrain-muon": lambda ck, shards, files: [
        "model.family=llama",
        f"model.tokenizer={ck('llama')}",
        f"pretrain.shards=[{shards('llama')}]",
        "optim.name=muon",
    ],
    # rows handed out from a shuffle buffer of 6 (not a multiple of the batch: resuming mid-buffer)
    "pretrain-row-shuffle": lambda ck, shards, files: [
        "model.family=llama",
        f"model.tokenizer={ck('llama')}",
        f"pretrain.shards=[{shards('llama')}]",
        "pretrain.fim_rate=0.5",
        "pretrain.row_shuffle=6",
    ],
    "dpo": lambda ck, shards, files: [
        f"model.init_from={ck('stablecode')}",
        f"dpo.data={files['dpo']}",
        "batch.global_batch_size=8",  # 4 steps an epoch: the resume crosses into epoch 2
        f"dpo.heldout={files['dpo_heldout']}",
        "run.eval_every=3",
        "run.eval_rows=4",
    ],
}


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_killed_and_resumed_run_matches_uninterrupted(
    stage, tiny_checkpoint, shards_of, chat_files, make_config, read_losses, tmp_path
):
    from codelm.train.loop import train

    extra = STAGES[stage](tiny_checkpoint, shards_of, chat_files)
    stage = stage.split("-")[0]
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
    held = heldout_losses(tmp_path / "straight")
    assert bool(held) == any(x.startswith("run.eval_every") for x in extra)
    assert heldout_losses(tmp_path / "broken") == held


def heldout_losses(out) -> list[tuple[int, float]]:
    from codelm.train.metrics import read_metrics

    return [
        (r["step"], r["heldout_loss"]) for r in read_metrics(out / "metrics.jsonl") if "heldout_loss" in r
    ]


def test_row_shuffle_hands_out_the_same_rows_mixed(tiny_checkpoint, shards_of, make_config):
    """A shuffle buffer only reorders: over whole buffers the rows are the unshuffled ones, and the
    order differs (a batch mixes documents instead of taking consecutive pieces of one)."""
    from codelm.models import get_family
    from codelm.train.fim import FimTransform
    from codelm.train.init import load_tokenizer
    from codelm.train.row_shuffle import RowShuffle
    from codelm.train.shards import ShardReader
    from codelm.train.sources import PretrainSource

    cfg = make_config(
        "pretrain",
        "model.family=llama",
        f"model.tokenizer={tiny_checkpoint('llama')}",
        f"pretrain.shards=[{shards_of('llama')}]",
    )
    tok, fam = load_tokenizer(cfg.model), get_family("llama")

    def source():
        fim = FimTransform(fam, tok, 0.0, None, max_tokens=64)
        return PretrainSource(ShardReader(cfg.data.shards), 64, fim, bos_id=None, eos_id=tok.eos_token_id)

    plain = [r.ids.tolist() for r in source().next_units(24)]
    mixed = [r.ids.tolist() for r in RowShuffle(source(), 8, seed=1).next_units(24)]
    assert sorted(map(tuple, mixed)) == sorted(map(tuple, plain)) and mixed != plain
    for start in range(0, 24, 8):  # each buffer holds the same rows as the unshuffled run
        assert sorted(map(tuple, mixed[start : start + 8])) == sorted(map(tuple, plain[start : start + 8]))


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
