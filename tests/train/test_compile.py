"""run.compile: the objective under torch.compile trains what eager trains and resumes bit for bit."""

from __future__ import annotations

from pathlib import Path

import pytest

from codelm.errors import CodelmError
from codelm.train.checkpoint import check_resume_config
from codelm.train.config import load_config

CONFIGS = Path(__file__).parents[2] / "configs" / "train"


def test_compile_is_a_checked_switch_off_by_default():
    assert load_config(CONFIGS / "pretrain-fim.yaml").run.compile is False
    assert load_config(CONFIGS / "pretrain-fim.yaml", ["run.compile=true"]).run.compile is True
    with pytest.raises(CodelmError, match="run.compile"):
        load_config(CONFIGS / "pretrain-fim.yaml", ["run.compile=sometimes"])
    with pytest.raises(CodelmError, match="did you mean 'compile'"):
        load_config(CONFIGS / "pretrain-fim.yaml", ["run.compiled=true"])


def test_checkpoints_from_before_the_switch_resume_and_it_may_be_toggled():
    now = load_config(CONFIGS / "pretrain-fim.yaml", ["run.compile=true"]).to_dict()
    saved = load_config(CONFIGS / "pretrain-fim.yaml").to_dict()
    del saved["run"]["compile"]  # meta.json written before run.compile existed
    check_resume_config(saved, now)
    saved["run"]["precision"] = "bf16"  # what is trained still may not change
    with pytest.raises(CodelmError, match="run.precision"):
        check_resume_config(saved, now)


class Killed(Exception):
    pass


def _kill_after(n: int):
    def hook(step: int, record: dict) -> None:
        if step == n:
            raise Killed

    return hook


@pytest.mark.slow  # inductor compiles the tiny model's forward and backward: ~30-80 s on 2 busy cores
def test_compiled_run_matches_eager_and_resumes_exactly(
    tiny_checkpoint, shards_of, make_config, read_losses, tmp_path
):
    from safetensors import safe_open

    from codelm.train.loop import train

    sets = [
        "model.family=llama",
        f"model.tokenizer={tiny_checkpoint('llama')}",
        f"pretrain.shards=[{shards_of('llama')}]",
        "pretrain.fim_rate=0.5",
        "run.save_every=2",
    ]
    train(make_config("pretrain", *sets, out=tmp_path / "eager"))
    final = train(make_config("pretrain", *sets, "run.compile=true", out=tmp_path / "straight"))
    want = read_losses(tmp_path / "straight")
    assert want == pytest.approx(read_losses(tmp_path / "eager"), rel=1e-4)  # the same math, other kernels
    with safe_open(final / "model.safetensors", "pt") as f:  # the module itself was never wrapped
        assert not [k for k in f.keys() if "_orig_mod" in k]

    broken = make_config("pretrain", *sets, "run.compile=true", out=tmp_path / "broken")
    with pytest.raises(Killed):
        train(broken, on_step=_kill_after(3))
    train(broken, resume=True)
    assert read_losses(tmp_path / "broken") == want  # bit for bit
