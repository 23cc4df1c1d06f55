"""Every shipped recipe parses (at full and tiny scale) and plans to its published size."""

from pathlib import Path

import pytest

from codelm.cli import main
from codelm.errors import CodelmError
from codelm.models import get_family
from codelm.recipes.plan import plan
from codelm.recipes.schema import load_recipe, parse_recipe

RECIPES = sorted((Path(__file__).resolve().parents[2] / "recipes").glob("*.yaml"))


def test_the_four_seed_recipes_ship():
    assert [p.stem for p in RECIPES] == [
        "codegemma-2b",
        "codegen1-mono-2b",
        "seed-coder-8b",
        "stable-code-instruct-3b",
    ]


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_recipe_plans_to_the_published_parameter_count(path):
    recipe = load_recipe(path)
    spec = get_family(recipe.model.family).size(recipe.model.size)
    p = plan(recipe)
    assert abs(p.params / spec.published_params - 1) < 0.01
    assert recipe.sources, "every recipe cites where its numbers come from"
    for s in p.stages:
        assert s.flops == 0 if s.stage.tokens is None else s.flops > 6 * 1e8 * s.tokens


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_tiny_scale_keeps_the_stage_structure(path):
    full, tiny = load_recipe(path), load_recipe(path, scale="tiny")
    assert [(s.name, s.kind) for s in tiny.stages] == [(s.name, s.kind) for s in full.stages]
    assert tiny.model.size == "tiny" and plan(tiny).params < 1_000_000


def test_seed_coder_plan_numbers():
    p = plan(load_recipe(RECIPES[2]))
    assert p.params == 8_250_462_208
    pre = p.stages[0]
    # 6 N D with N excluding the untied input embedding, plus attention (12 L d s per token)
    n = 8_250_462_208 - 155136 * 4096
    assert pre.flops == pytest.approx((6 * n + 12 * 32 * 4096 * 8192) * 6e12)
    assert pre.gpu_hours == pytest.approx(pre.flops / (989.4e12 * 0.45) / 3600)


def test_seed_coder_plan_lists_its_three_data_sources(capsys):
    """Seed-Coder report 2.2.1-2.2.3: ~1T code, ~100B commit and ~1.2T web tokens."""
    from codelm.recipes.plan import data_sources

    recipe = load_recipe(RECIPES[2])
    sizes = {s.name: s.tokens for s in recipe.data.sources}
    assert sizes == {"github-code": 1.0e12, "github-commits": 1.0e11, "code-related-web": 1.2e12}
    rows = {line.split()[0]: line.split()[1:4] for line in data_sources(recipe)[2:]}
    assert rows["github-commits"] == ["100.00B", "4.3%", "listed"]
    assert rows["code-related-web"][1] == "52.2%" and rows["github-code"][1] == "43.5%"
    assert main(["run", str(RECIPES[2]), "--dry-run"]) == 0
    assert "github-commits" in capsys.readouterr().out
    with pytest.raises(CodelmError, match="names must be unique"):
        parse_recipe(
            {
                "model": {"family": "llama"},
                "stages": [{"name": "a", "kind": "pretrain"}],
                "data": {"sources": [{"name": "web"}, {"name": "web"}]},
            }
        )


def test_zero_stages_shard_model_states():
    raw = {
        "name": "x",
        "model": {"family": "seedcoder", "size": "8b"},
        "stages": [{"name": "a", "kind": "pretrain", "tokens": 1e9}],
        "hardware": {"gpus": 8, "zero": 1},
    }
    one = plan(parse_recipe(raw)).memory_gib
    three = plan(parse_recipe({**raw, "hardware": {"gpus": 8, "zero": 3}})).memory_gib
    assert three["weights"] == pytest.approx(one["weights"] / 8) and three["optimizer"] == one["optimizer"]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            {"model": {"family": "llama"}, "stages": [{"name": "a", "kind": "pretrain"}], "stagez": []},
            "did you mean 'stages'",
        ),
        ({"model": {"family": "llama"}, "stages": [{"name": "a", "kind": "rlhf"}]}, "kind must be one of"),
        ({"model": {"family": "llama"}, "stages": []}, "at least one stage"),
        (
            {"model": {"family": "llama"}, "stages": [{"name": "a", "kind": "sft", "tokens": "many"}]},
            "tokens = 'many': expected float",
        ),
        (  # a misspelt key in a stage's training sections fails at load, not an hour into the run
            {
                "model": {"family": "llama"},
                "stages": [{"name": "a", "kind": "pretrain", "train": {"optim": {"lrr": 1}}}],
            },
            "unknown key 'lrr'.*did you mean 'lr'",
        ),
        (
            {
                "model": {"family": "llama"},
                "stages": [{"name": "a", "kind": "pretrain"}],
                "eval": {"task": []},
            },
            "unknown key 'task' in recipe.eval; did you mean 'tasks'",
        ),
        (
            {
                "model": {"family": "llama"},
                "stages": [{"name": "a", "kind": "pretrain"}],
                "eval": {"tasks": ["humaneva"]},
            },
            "did you mean 'humaneval'",
        ),
        (
            {
                "model": {"family": "llama"},
                "stages": [{"name": "a", "kind": "pretrain"}],
                "serve": {"prot": 1},
            },
            "did you mean 'port'",
        ),
        (
            {
                "model": {"family": "llama"},
                "stages": [{"name": "a", "kind": "pretrain"}],
                "data": {"curate": {"readers": ["jsonl"], "steps": [{"near_dedup": {"treshold": 0.7}}]}},
            },
            "treshold",
        ),
        (
            {
                "model": {"family": "llama"},
                "stages": [{"name": "a", "kind": "pretrain"}],
                "data": {"pack": {"fim_rat": 1}},
            },
            "did you mean 'fim_rate'",
        ),
        (
            {
                "model": {"family": "llama"},
                "stages": [{"name": "a", "kind": "sft", "data": "derive:functions"}],
            },
            "derive:functions is data for a pretrain stage, not sft",
        ),
        (
            {"model": {"family": "llama"}, "stages": [{"name": "a", "kind": "sft", "data": "derive:rl"}]},
            "unknown derivation derive:rl",
        ),
        (
            {
                "model": {"family": "llama"},
                "stages": [{"name": "a", "kind": "pretrain"}],
                "data": {"sources": [{"name": "deps", "use": "function"}]},
            },
            "data.sources deps: use must be one of corpus, functions, got 'function'",
        ),
        (
            {
                "model": {"family": "llama"},
                "stages": [{"name": "a", "kind": "pretrain"}],
                "data": {"sources": [{"name": "deps", "use": "functions", "curate": {"readers": ["jsonl"]}}]},
            },
            "data.sources deps has use: functions but no stage trains on derive:functions",
        ),
        (
            {"model": {"family": "llama"}, "stages": [{"name": "a", "kind": "sft", "self_play": 10}]},
            "stage a: self_play is for dpo stages",
        ),
        (
            {"model": {"family": "llama"}, "stages": [{"name": "a", "kind": "dpo", "self_play": 10}]},
            "self_play infills the function documents, which need a stage on derive:functions",
        ),
    ],
)
def test_bad_recipes_say_what_is_wrong(raw, message):
    with pytest.raises(CodelmError, match=message):
        parse_recipe(raw)


def test_cli_rejects_impossible_plans(capsys):
    assert main(["run", str(RECIPES[2]), "--dry-run", "--set", "hardware.gpu=v100"]) == 1
    assert "hardware.gpu 'v100' is not known" in capsys.readouterr().err
    assert main(["run", str(RECIPES[2]), "--dry-run", "--gpus", "0"]) == 1
    assert "--gpus must be positive" in capsys.readouterr().err
    assert main(["run", str(RECIPES[2]), "--dry-run", "--mfu", "1.5"]) == 1
    assert "mfu in (0, 1]" in capsys.readouterr().err


def test_cli_set_and_print_config(capsys):
    argv = [
        "run",
        str(RECIPES[2]),
        "--set",
        "stages.pretrain.tokens=1e9",
        "--set",
        "eval.n=5",
        "--print-config",
    ]
    assert main(argv) == 0
    import yaml

    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["stages"][0]["tokens"] == 1e9 and printed["eval"]["n"] == 5
    assert printed["tokenizer"]["from"] == "ByteDance-Seed/Seed-Coder-8B-Base"
    assert main(["run", str(RECIPES[2]), "--set", "eval.nn=5", "--print-config"]) == 1
    assert "did you mean 'n'" in capsys.readouterr().err


def test_cli_dry_run(capsys):
    assert main(["run", str(RECIPES[2]), "--dry-run", "--gpus", "1024"]) == 0
    out = capsys.readouterr().out
    assert "8.25B parameters" in out and "1024 x H100" in out and "GPU-hours" in out


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_recipe_eval_tasks_are_registered(path):
    from codelm.eval.tasks import task_names

    tasks = load_recipe(path).eval.tasks
    assert task_names(tasks) == tasks


@pytest.mark.parametrize("scale", [None, "ci"])
def test_tiny_plan_counts_the_model_the_run_builds(scale, tmp_path):
    """The dry-run's parameter count is the built model's: same config function, padded vocabulary,
    untied output layer (it used to plan 2.36M for a 3.17M model)."""
    import sysconfig
    from importlib import resources

    from codelm.models import get_family
    from codelm.train.config import ModelConfig
    from codelm.train.init import build_model
    from codelm.train.tokenizer import train_code_tokenizer

    recipe = load_recipe(str(resources.files("codelm.recipes") / "tiny.yaml"), scale=scale)
    fam = get_family(recipe.model.family)
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    texts = [p.read_text(encoding="utf-8") for p in sorted(stdlib.glob("[a-k]*.py"))]
    tok = train_code_tokenizer(texts, fam, recipe.tokenizer.train.vocab_size)
    assert len(tok) == recipe.tokenizer.train.expected_size(fam)
    m = recipe.model
    cfg = ModelConfig(family=m.family, size=m.size, overrides=dict(m.overrides), tokenizer=str(tmp_path))
    model = build_model(cfg, tok, fam, recipe.stages[0].seq_len)
    assert plan(recipe).params == sum(p.numel() for p in model.parameters())


def test_plan_says_when_it_does_not_fit(capsys):
    assert main(["run", str(RECIPES[2]), "--dry-run"]) == 0
    assert "does not fit" in capsys.readouterr().out  # 8B at 32K context on 80 GB without ZeRO-3
    assert (
        main(
            [
                "run",
                str(RECIPES[2]),
                "--dry-run",
                "--set",
                "stages.long-context.seq_len=4096",
                "--set",
                "stages.pretrain.seq_len=4096",
                "--set",
                "stages.reasoning.seq_len=4096",
                "--set",
                "hardware.zero=3",
            ]
        )
        == 0
    )
    assert "does not fit" not in capsys.readouterr().out


@pytest.mark.parametrize(("replay", "steps"), [(0, 125), (0.25, 167), (0.5, 250)])
def test_sft_epochs_count_passes_over_the_pairs_with_replay_on_top(replay, steps):
    """1,000 pairs, 8 rows a step: one pass over the pairs is 125 steps; replayed rows add steps."""
    import dataclasses
    from importlib import resources

    from codelm.recipes.schema import StagePaths

    recipe = load_recipe(Path(str(resources.files("codelm.recipes") / "tiny.yaml")))
    stage = recipe.stage("sft")
    train = {**stage.train, "sft": {**stage.train["sft"], "replay_fraction": replay}}
    stage = dataclasses.replace(stage, epochs=1, train=train)
    paths = StagePaths("<init>", "<tok>", "<run>/shards", "<run>/stages/sft", "<sft.jsonl>", records=1000)
    assert recipe.train_config(stage, paths).run.max_steps == steps


def test_a_pretraining_stage_on_derived_data_replays_the_runs_corpus():
    """The functions stage trains on its own shards and replays the corpus shards, not its own."""
    from importlib import resources

    from codelm.recipes.schema import StagePaths

    recipe = load_recipe(Path(str(resources.files("codelm.recipes") / "tiny.yaml")))
    stage = recipe.stage("functions")
    paths = StagePaths(
        "<init>", "<tok>", "<run>/derived/functions", "<run>/stages/functions", corpus_shards="<run>/shards"
    )
    config = recipe.train_config(stage, paths)
    assert config.data.shards == ["<run>/derived/functions"]
    assert config.data.replay_shards == ["<run>/shards"]
    assert 0 < config.data.replay_fraction < 1


def test_a_scale_patches_a_data_source_by_name():
    """The tiny recipe's ci scale reads one small package for its functions source, the rest of the
    source as the full recipe has it; a scale naming no such source fails."""
    from importlib import resources

    path = str(resources.files("codelm.recipes") / "tiny.yaml")
    full = {s.name: s for s in load_recipe(path).data.sources}["dependency-functions"]
    ci = {s.name: s for s in load_recipe(path, scale="ci").data.sources}["dependency-functions"]
    assert ci.use == full.use == "functions" and ci.curate["steps"] == full.curate["steps"]
    assert ci.curate["readers"][0]["packages"]["names"] == ["mpmath"]
    assert "torch" in full.curate["readers"][0]["packages"]["names"]
    raw = {
        "model": {"family": "llama"},
        "stages": [{"name": "a", "kind": "pretrain"}],
        "data": {"sources": [{"name": "web"}]},
        "scales": {"small": {"data": {"sources": {"wbe": {"enabled": False}}}}},
    }
    with pytest.raises(CodelmError, match="scale overrides unknown data source 'wbe'"):
        parse_recipe(raw, scale="small")


def test_auto_scales_pick_a_scale_where_bf16_is_native(monkeypatch, capsys):
    """Without --scale, `codelm run` applies the scale the recipe's auto_scales names when the machine
    meets its condition, and says so; --scale and --no-auto-scale win; bad entries fail at load."""
    from importlib import resources

    from codelm.config import read_yaml
    from codelm.recipes import schema

    path = str(resources.files("codelm.recipes") / "tiny.yaml")
    raw = read_yaml(path, "recipe")
    assert schema.auto_scale(raw, lambda condition: condition == "native-bf16") == "wide"
    assert schema.auto_scale(raw, lambda condition: False) is None

    def hidden(*argv):
        assert main(["run", "--print-config", *argv]) == 0
        out, err = capsys.readouterr()
        return int(out.split("hidden_size:", 1)[1].split()[0]), err

    monkeypatch.setattr(schema, "trains_in_bf16", lambda: True)
    size, said = hidden()
    assert size == 192 and "the recipe's scale 'wide'" in said
    assert hidden("--no-auto-scale") == (128, "") and hidden("--scale", "ci") == (64, "")
    monkeypatch.setattr(schema, "trains_in_bf16", lambda: False)
    assert hidden() == (128, "")

    base = {"model": {"family": "llama"}, "stages": [{"name": "a", "kind": "pretrain"}], "scales": {"w": {}}}
    with pytest.raises(CodelmError, match="auto_scales: unknown condition 'avx2'"):
        parse_recipe(base | {"auto_scales": {"avx2": "w"}})
    with pytest.raises(CodelmError, match="auto_scales: no scale 'wide'"):
        parse_recipe(base | {"auto_scales": {"native-bf16": "wide"}})
    with pytest.raises(CodelmError, match=r"auto_scales: no scale \['w'\]"):
        parse_recipe(base | {"auto_scales": {"native-bf16": ["w"]}})
    assert parse_recipe(base | {"auto_scales": {"native-bf16": "w"}}).model.family == "llama"
