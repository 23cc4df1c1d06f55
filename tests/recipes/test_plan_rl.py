"""The dry-run plan of an RL stage counts sampling (one forward pass per token) and training."""

from pathlib import Path

import pytest

from codelm.recipes.plan import plan, rl_flops
from codelm.recipes.schema import load_recipe

SEED_CODER = Path(__file__).resolve().parents[2] / "recipes" / "seed-coder-8b.yaml"


def test_rl_flops_split():
    assert rl_flops(6.0, 10.0, {}) == pytest.approx((20.0, 80.0))  # 2N to sample, 6N to train
    # two epochs keep the sampling policy's log-probs (+2N), a KL adds the reference's (+2N)
    assert rl_flops(6.0, 10.0, {"epochs": 2, "kl_coef": 0.04}) == pytest.approx((20.0, 20.0 + 160.0))


def test_seed_coder_reasoning_branch_is_planned():
    unset = next(s for s in plan(load_recipe(SEED_CODER)).stages if s.stage.kind == "rl")
    assert unset.stage.tokens is None and unset.flops == 0  # unpublished: not invented
    p = plan(load_recipe(SEED_CODER, overrides=["stages.reasoning.tokens=2.0e10"]))
    rl = next(s for s in p.stages if s.stage.kind == "rl")
    assert rl.stage.name == "reasoning" and rl.tokens == 2.0e10
    per_token = rl.flops / rl.tokens / (1 + 1 / 3)  # no KL, one epoch: sample + train
    assert rl.generation_flops == pytest.approx(per_token / 3 * rl.tokens)
    assert per_token > 6 * 8e9  # 6N with N ~ 8B, plus attention
    tiny = load_recipe(SEED_CODER, scale="tiny")
    cfg = tiny.train_config(tiny.stage("reasoning"), _paths())
    assert cfg.stage == "rl" and cfg.data.corpus.endswith("statistics.py") and not cfg.data.data


def _paths():
    from codelm.recipes.schema import StagePaths

    return StagePaths("<init>", "<tok>", "<run>/shards", "<run>/stages/reasoning")


@pytest.mark.slow
def test_seed_coder_tiny_reasoning_stage_trains(tiny_checkpoint, tmp_path):
    """The tiny scale's RL stage alone, from a tiny Seed-Coder checkpoint: problems derived from the
    doctests of statistics.py in the sandbox, two steps (the whole recipe runs in test_runner.py)."""
    import json

    from codelm.recipes.schema import StagePaths
    from codelm.train.loop import train

    recipe = load_recipe(SEED_CODER, scale="tiny")
    ck = str(tiny_checkpoint("seedcoder"))
    cfg = recipe.train_config(
        recipe.stage("reasoning"), StagePaths(ck, ck, "<shards>", str(tmp_path / "out"))
    )
    cfg.data.allow_code_execution = True  # what `codelm run --allow-code-execution` sets for rl stages
    train(cfg)
    meta = json.loads((tmp_path / "out" / "final" / "meta.json").read_text())
    assert meta["stage"] == "rl" and meta["step"] == 2 and meta["data"]["problems"] >= 5
    rows = [json.loads(line) for line in (tmp_path / "out" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "reward_mean" in r] == [1, 2]
