"""Two-process DDP on CPU (gloo) through `accelerate launch`, with the shipped accelerate config.

The global batch is split between the processes instead of accumulated in one, and the loss is
normalised by the units of the whole global batch, so the curve matches the single-process run up to
float summation order.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.parametrize("device", ["cpu", "null"])  # null: what a stage YAML says by default
def test_two_process_ddp_matches_single_process(
    tiny_checkpoint, shards_of, make_config, read_losses, launch_ddp, tmp_path, device
):
    from codelm.train.loop import train

    extra = [
        "model.family=llama",
        f"model.tokenizer={tiny_checkpoint('llama')}",
        f"pretrain.shards=[{shards_of('llama')}]",
        "pretrain.fim_rate=0.5",
        "run.max_steps=4",
    ]
    single = make_config("pretrain", *extra, out=tmp_path / "single")
    train(single)

    # run.device unset once left each process alone on a CPU-only machine: two world-size-1 runs
    # writing one directory
    ddp = make_config("pretrain", *extra, f"run.device={device}", out=tmp_path / "ddp")
    proc = launch_ddp(ddp, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]

    meta = json.loads((tmp_path / "ddp" / "final" / "meta.json").read_text())
    assert meta["world_size"] == 2 and meta["device"]["processes"] == 2
    got, want = read_losses(tmp_path / "ddp"), read_losses(tmp_path / "single")
    assert got == pytest.approx(want, abs=1e-5)
