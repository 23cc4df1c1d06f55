"""Stage configs: every shipped YAML parses and runs; overrides are typed; bad configs are clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from codelm.errors import CodelmError
from codelm.train.config import load_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "train"
STAGE_YAMLS = sorted(CONFIGS.glob("*.yaml"))


def test_every_stage_is_shipped():
    assert {p.stem for p in STAGE_YAMLS} == {"pretrain-fim", "long-context", "sft", "dpo", "rl"}


@pytest.mark.parametrize("path", STAGE_YAMLS, ids=lambda p: p.stem)
def test_shipped_yaml_parses_and_round_trips(path):
    cfg = load_config(path)
    assert (
        load_config(
            None,
            [f"{k}={yaml.safe_dump(v, default_flow_style=True).strip()}" for k, v in cfg.to_dict().items()],
        )
        == cfg
    )


@pytest.mark.parametrize("path", sorted((CONFIGS / "accelerate").glob("*.yaml")), ids=lambda p: p.stem)
def test_accelerate_configs_are_valid_yaml(path):
    data = yaml.safe_load(path.read_text())
    assert data["distributed_type"] in ("MULTI_GPU", "FSDP", "DEEPSPEED")
    if data["distributed_type"] == "DEEPSPEED":
        assert data["deepspeed_config"]["zero_stage"] == int(path.stem[-1])


def test_shipped_chain_runs(tiny_checkpoint, shards_of, tmp_path, read_losses):
    """pretrain-fim -> long-context -> sft -> dpo, two steps each, exactly as shipped but the paths."""
    from codelm.train.loop import train

    common = [
        "run.max_steps=2",
        "run.log_every=1",
        "optim.warmup_steps=1",
        "run.threads=1",
        "run.device=cpu",
        "run.plot=false",
    ]
    prev = None
    for name in ("pretrain-fim", "long-context", "sft", "dpo"):
        sets = [*common, f"run.out_dir={tmp_path / name}"]
        if name == "pretrain-fim":
            sets += [f"model.tokenizer={tiny_checkpoint('llama')}", f"pretrain.shards=[{shards_of('llama')}]"]
        else:
            sets.append(f"model.init_from={prev}")
        if name == "long-context":
            sets.append(f"pretrain.shards=[{shards_of('llama')}]")
        if name in ("sft", "dpo"):
            sets.append(f"{name}.data={CONFIGS / 'data' / f'{name}-sample.jsonl'}")
        prev = train(load_config(CONFIGS / f"{name}.yaml", sets))
        assert len(read_losses(tmp_path / name)) == 2


def test_overrides_are_typed():
    cfg = load_config(
        CONFIGS / "pretrain-fim.yaml",
        [
            "optim.lr=1e-3",
            "run.save_every=0",
            "run.plot=false",
            "pretrain.shards=[a, b]",
            "model.overrides={num_hidden_layers: 4}",
        ],
    )
    assert cfg.optim.lr == 1e-3 and isinstance(cfg.optim.lr, float)
    assert cfg.run.save_every == 0 and cfg.run.plot is False
    assert cfg.data.shards == ["a", "b"]
    assert cfg.model.overrides == {"num_hidden_layers": 4}
    assert load_config(CONFIGS / "sft.yaml", ["batch.global_batch_size=16"]).batch.global_sequences == 16


@pytest.mark.parametrize(
    ("sets", "match"),
    [
        (["optim.lrr=1"], "did you mean 'lr'"),
        (["pretrian.fim_rate=1"], "unknown section 'pretrian'"),
        (["stage=sftt"], "did you mean 'sft'"),
        (["pretrain.fim_rate=1.5"], r"fim_rate must be in \[0, 1\]"),
        (["batch.micro_batch_size=two"], "expected int"),
        (["run.save_every=2.5"], "expected int"),
        (["run.precision=fp16"], "fp32, bf16 or auto"),
        (["optim.decay=step"], "optim.decay"),
        (["batch.unit=tokens", "batch.global_batch_size=100"], "multiple of seq_len"),
        (["optim.warmup_steps=-1"], "optim.betas/warmup/clip"),
        (["model.packed_attention=none"], "packed_attention"),
        (["optim.lr"], "key=value"),
    ],
)
def test_bad_configs_say_what_is_wrong(sets, match):
    with pytest.raises(CodelmError, match=match):
        load_config(CONFIGS / "pretrain-fim.yaml", sets)


def test_dpo_needs_a_starting_checkpoint_and_batches_must_split():
    with pytest.raises(CodelmError, match="init_from"):
        load_config(CONFIGS / "dpo.yaml", ["model.init_from=null", "model.family=llama"])
    cfg = load_config(CONFIGS / "sft.yaml", ["batch.micro_batch_size=3"])
    with pytest.raises(CodelmError, match="does not split"):
        cfg.batch.accumulation(1)
    assert load_config(CONFIGS / "sft.yaml").batch.accumulation(2) == 2
