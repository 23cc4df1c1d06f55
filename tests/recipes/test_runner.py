"""The tiny recipe end to end at its `ci` scale: every step, the report, skipping finished steps."""

import json
from importlib import resources
from pathlib import Path

import pytest

from codelm.cli import main
from codelm.recipes.runner import step_names
from codelm.recipes.schema import load_recipe

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
TINY = str(resources.files("codelm.recipes").joinpath("tiny.yaml"))


def test_tiny_recipe_parses_and_plans(capsys):
    recipe = load_recipe(TINY)
    assert [s.kind for s in recipe.stages] == ["pretrain", "sft", "dpo"]
    assert main(["run", "--dry-run"]) == 0
    assert "recipe tiny" in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.skipif(
    not (DATA / "HumanEval.jsonl.gz").is_file(), reason=f"benchmark files not found in {DATA}"
)
def test_tiny_recipe_runs_end_to_end(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CODELM_BENCHMARKS", str(DATA))
    run = tmp_path / "run"
    argv = ["run", "--scale", "ci", "--run-dir", str(run), "--allow-code-execution", "--data-dir", str(DATA)]
    assert main(argv) == 0
    done = {p.stem for p in (run / "done").glob("*.json")}
    assert done == {n.replace(":", "-") for n in step_names(load_recipe(TINY, scale="ci"))}
    before = json.loads((run / "eval" / "before.json").read_text())
    after = json.loads((run / "eval" / "after.json").read_text())
    for metrics in (before, after):
        assert metrics["humaneval_problems"] == 8 and metrics["humaneval_pass@1"] is not None
        assert 0 <= metrics["fim_exact_match"] <= 1 and metrics["perplexity"] > 0
    assert after["perplexity"] < before["perplexity"]  # it learned something from the corpus
    report = (run / "report.md").read_text()
    assert "## Evaluation" in report and "codelm serve --model" in report and (run / "loss.png").is_file()
    assert (run / "stages" / "dpo" / "final" / "model.safetensors").is_file()
    capsys.readouterr()
    assert main(argv) == 0  # everything is done: nothing runs again
    assert "step " not in capsys.readouterr().out


SEEDS = sorted((Path(__file__).resolve().parents[2] / "recipes").glob("*.yaml"))


@pytest.mark.slow
@pytest.mark.skipif(
    not (DATA / "HumanEval.jsonl.gz").is_file(), reason=f"benchmark files not found in {DATA}"
)
@pytest.mark.parametrize("path", SEEDS, ids=lambda p: p.stem)
def test_seed_recipe_runs_at_tiny_scale(path, tmp_path, monkeypatch):
    """The seed recipe's exact stage structure, end to end, at a CPU-sized model."""
    monkeypatch.setenv("CODELM_BENCHMARKS", str(DATA))
    run = tmp_path / "run"
    argv = [
        "run",
        str(path),
        "--scale",
        "tiny",
        "--run-dir",
        str(run),
        "--allow-code-execution",
        "--data-dir",
        str(DATA),
    ]
    assert main(argv) == 0
    recipe = load_recipe(path, scale="tiny")
    for stage in recipe.stages:
        done = json.loads((run / "done" / f"stage-{stage.name}.json").read_text())
        assert done["steps"] >= 1 and (run / "stages" / stage.name / "final" / "model.safetensors").is_file()
    after = json.loads((run / "eval" / "after.json").read_text())
    assert after["humaneval_problems"] == 4 and ("fim_exact_match" in after) == (
        recipe.model.family != "codegen1"
    )
    assert (run / "report.md").is_file()
