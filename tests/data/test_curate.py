"""The curation YAML, its overrides, the shipped configs, and `curate_from_args` end to end."""

import argparse
import json
from pathlib import Path

import pytest
import yaml

from codelm.config import ConfigError
from codelm.data import DataError
from codelm.data.curate import add_curate_args, curate_from_args
from codelm.data.curate_config import CurateConfig, load_config, set_override

from .executors.conftest import make_crawl

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs" / "data").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_configs_parse_and_build(path):
    raw = yaml.safe_load(path.read_text())
    if "oracle" in raw or "labels" in raw:  # a quality-training config
        from codelm.data.quality.train import QualityTrainConfig

        QualityTrainConfig.from_dict(raw)
        return
    config = load_config(path)
    for name, settings in config.steps:
        if name == "decontaminate":
            continue  # needs the benchmark files; built in its own tests
        from codelm.data.registry import build_step

        build_step(name, settings)
    assert config.readers


def test_at_least_the_stdlib_config_ships():
    assert "stdlib.yaml" in {p.name for p in CONFIGS}
    config = load_config(CONFIGS[[p.name for p in CONFIGS].index("stdlib.yaml")])
    assert Path(config.readers[0][1]["root"]).is_dir()  # ${stdlib} expanded


def test_the_stdlib_config_runs_on_one_package(tmp_path):
    from codelm.data.curate import curate

    root = str(
        Path(load_config(CONFIGS[[p.name for p in CONFIGS].index("stdlib.yaml")]).readers[0][1]["root"])
    )
    cfg = load_config(
        CONFIGS[[p.name for p in CONFIGS].index("stdlib.yaml")],
        [
            f"readers.0.root={root}/json",
            f"output_dir={tmp_path / 'o'}",
            "executor.workers=1",
            "executor.shards=2",
            "report=false",
        ],
    )
    stats, skipped = curate(cfg)
    assert stats["directory_reader"].docs_in >= 4 and not skipped
    stats.check()


def test_overrides():
    raw = {
        "output_dir": "o",
        "readers": [{"directory": {"root": "."}}],
        "steps": ["exact_dedup", {"near_dedup": {"threshold": 0.7}}],
    }
    for assignment in [
        "executor.workers=4",
        "steps.near_dedup.threshold=0.85",
        "steps.exact_dedup.name=x",
        "readers.0.layout=single",
        "output_format=parquet",
    ]:
        set_override(raw, assignment)
    cfg = CurateConfig.from_dict(raw)
    assert cfg.executor.workers == 4 and cfg.output_format == "parquet"
    assert cfg.steps == [("exact_dedup", {"name": "x"}), ("near_dedup", {"threshold": 0.85})]
    assert cfg.readers == [("directory", {"root": ".", "layout": "single"})]
    with pytest.raises(ConfigError, match="no entry 'pii'"):
        set_override(raw, "steps.pii.emails=false")
    with pytest.raises(ConfigError, match="key=value"):
        set_override(raw, "executor.workers")


def test_config_errors_are_clear(monkeypatch):
    with pytest.raises(ConfigError, match="unknown key 'step'.*did you mean 'steps'"):
        CurateConfig.from_dict({"output_dir": "o", "readers": ["directory"], "step": []})
    with pytest.raises(DataError, match="at least one reader"):
        CurateConfig.from_dict({"output_dir": "o"})
    with pytest.raises(DataError, match="executor.kind"):
        CurateConfig.from_dict({"output_dir": "o", "readers": ["jsonl"], "executor": {"kind": "spark"}})
    monkeypatch.delenv("NOPE_DIR", raising=False)
    with pytest.raises(ConfigError, match="NOPE_DIR is not set"):
        CurateConfig.from_dict({"output_dir": "${NOPE_DIR}/x", "readers": ["jsonl"]})


def test_curate_from_args_writes_output_stats_and_report(tmp_path, capsys):
    crawl = make_crawl(tmp_path / "crawl", n_repos=4)
    config = tmp_path / "c.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "output_dir": str(tmp_path / "unused"),
                "readers": [{"directory": {"root": str(crawl)}}],
                "steps": [
                    {"language_filter": {"languages": ["python"]}},
                    "heuristic_filter",
                    "exact_dedup",
                    "quality_scorer",
                    {"pack_repos": {"family": "codegemma"}},
                ],
            }
        )
    )
    parser = argparse.ArgumentParser()
    add_curate_args(parser)
    out = tmp_path / "out"
    args = parser.parse_args(
        [
            str(config),
            "--workers",
            "1",
            "--shards",
            "2",
            "--output-dir",
            str(out),
            "--set",
            "steps.heuristic_filter.min_chars=10",
            "--no-progress",
        ]
    )
    assert curate_from_args(args) == out
    printed = capsys.readouterr().out
    assert "pack_repos:" in printed and "report.html" in printed
    stats = json.loads((out / "stats.json").read_text())
    assert [s["name"] for s in stats["steps"]][-1] == "pack_repos"
    # one packed document per repository with files left: repo00-03 and repo05 (repo09 held only a copy)
    assert stats["profile"]["output"]["docs"] == 5
    md = (out / "report.md").read_text()
    assert "| pack_repos |" in md and "merged_into_repo" in md and "## Languages" in md
    html = (out / "report.html").read_text()
    for png in ("funnel", "reasons", "languages", "sizes", "quality"):
        assert (out / "plots" / f"{png}.png").stat().st_size > 1000
        assert f"plots/{png}.png" in html
    with pytest.raises(DataError, match="already holds a run"):
        curate_from_args(args)
    args.overwrite = True
    curate_from_args(args)
