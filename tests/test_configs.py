"""Every YAML the project ships loads in strict mode through the one config layer, and a misspelt key
in any of them is rejected with its closest match (litgpt's test_config_hub, torchtune's test_configs)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest

from codelm.config import ConfigError, parse_yaml, read_yaml
from codelm.data.curate_config import CurateConfig
from codelm.recipes.schema import load_recipe, parse_recipe
from codelm.train.config import config_from_dict, load_config

ROOT = Path(__file__).resolve().parents[1]
RECIPES = [
    *sorted((ROOT / "recipes").glob("*.yaml")),
    Path(str(resources.files("codelm.recipes") / "tiny.yaml")),
]
TRAIN = sorted((ROOT / "configs" / "train").glob("*.yaml"))
CURATE = [p for p in sorted((ROOT / "configs" / "data").glob("*.yaml")) if p.stem != "quality-scorer"]


def _scales(path: Path) -> list[str | None]:
    return [None, *sorted(read_yaml(path).get("scales") or {})]


@pytest.mark.parametrize(
    ("path", "scale"), [(p, s) for p in RECIPES for s in _scales(p)], ids=lambda v: getattr(v, "stem", v)
)
def test_recipes_load_strictly(path, scale):
    recipe = load_recipe(path, scale=scale)
    recipe.validate()  # every stage's complete training config, with placeholder paths


@pytest.mark.parametrize("path", TRAIN, ids=lambda p: p.stem)
def test_train_configs_load_strictly(path):
    raw = read_yaml(path)
    assert config_from_dict(raw).stage == raw["stage"]
    section = next(k for k in ("batch", "optim", "run") if k in raw)
    key = next(iter(raw[section]))
    with pytest.raises(ConfigError, match=f"did you mean '{key}'"):
        load_config(path, [f"{section}.{key}x=1"])


def test_a_dumped_stage_config_loads_back(tmp_path):
    """What the recipe runner writes beside each stage (`dump`) is a config `codelm train` runs:
    the stage's section under its own name, every value as it was."""
    from codelm.config import dump
    from codelm.recipes.schema import StagePaths

    recipe = load_recipe(RECIPES[-1])  # the tiny recipe: pretrain, sft (with replay), dpo
    for stage in recipe.stages:
        paths = StagePaths("init", "tok", "shards", "stages", "data.jsonl", heldout_shards="heldout")
        config = recipe.train_config(stage, paths)
        path = tmp_path / f"{stage.name}.yaml"
        path.write_text(dump(config))
        assert stage.kind in read_yaml(path) and "data" not in read_yaml(path)
        assert load_config(path).to_dict() == config.to_dict()


@pytest.mark.parametrize("path", CURATE, ids=lambda p: p.stem)
def test_curation_configs_load_strictly(path, monkeypatch):
    for name in ("CODE_CORPUS", "BENCHMARKS_DIR", "QUALITY_MODEL", "REPOS"):
        monkeypatch.setenv(name, str(path.parent))
    raw = read_yaml(path)
    config = CurateConfig.from_dict(raw)
    assert config.readers
    raw["executor"] = {**(raw.get("executor") or {}), "wrokers": 2}
    with pytest.raises(ConfigError, match="did you mean 'workers'"):
        CurateConfig.from_dict(raw)


def test_yaml_numbers_are_yaml_1_2():
    """PyYAML alone reads `6.0e12` and `3e-4` as strings (YAML 1.1); every config reads them as floats."""
    assert parse_yaml("a: 6.0e12\nb: 3e-4\nc: 1_000\nd: .5") == {"a": 6e12, "b": 3e-4, "c": 1000, "d": 0.5}


def test_a_misspelt_recipe_key_anywhere_is_rejected():
    raw = read_yaml(RECIPES[-1])
    raw["stages"][0]["train"]["run"]["save_evry"] = 5
    with pytest.raises(ConfigError, match="did you mean 'save_every'"):
        parse_recipe(raw)


def test_every_config_verb_prints_its_resolved_config(tmp_path, capsys):
    """`--set` and `--print-config` behave the same on every verb that takes a config."""
    import yaml

    from codelm.cli import main

    (tmp_path / "pack.yaml").write_text("fim_rate: 0.5\nseed: 3\n")
    pack = [
        "data",
        "pack",
        "in.jsonl",
        "--tokenizer",
        "tok",
        "--out",
        "o",
        "--config",
        str(tmp_path / "pack.yaml"),
    ]
    assert main([*pack, "--fim-rate", "0.25", "--print-config"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["fim_rate"] == 0.25 and printed["seed"] == 3  # a given flag wins over the file
    assert main([*pack, "--set", "seed=7", "--print-config"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["seed"] == 7  # --set wins over both
    assert main([*pack, "--set", "fim_rat=1", "--print-config"]) == 1
    assert "did you mean 'fim_rate'" in capsys.readouterr().err

    curate = ["data", "curate", str(ROOT / "configs" / "data" / "stdlib.yaml"), "--print-config"]
    assert main([*curate, "--set", "executor.workers=3"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["executor"]["workers"] == 3

    train = ["train", str(TRAIN[0]), "--print-config", "--set", "optim.lr=1e-5"]
    assert main(train) == 0
    assert yaml.safe_load(capsys.readouterr().out)["optim"]["lr"] == 1e-5


def test_serve_takes_a_config_file(tmp_path, capsys):
    import yaml

    from codelm.cli import main

    cfg = tmp_path / "serve.yaml"
    cfg.write_text("model: /models/x\nport: 9001\nmax_queue: 7\n")
    assert main(["serve", "--config", str(cfg), "--port", "9002", "--print-config"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["model"] == "/models/x" and printed["port"] == 9002 and printed["max_queue"] == 7
    assert main(["serve", "--config", str(cfg), "--set", "prot=1", "--print-config"]) == 1
    assert "did you mean 'port'" in capsys.readouterr().err
    assert main(["serve", "--port", "9003"]) == 1
    assert "give --model" in capsys.readouterr().err
