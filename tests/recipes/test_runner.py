"""The tiny recipe end to end at its `ci` scale: every step, the report, skipping finished steps."""

import json
from importlib import resources
from pathlib import Path

import pytest

from codelm.cli import main
from codelm.errors import CodelmError
from codelm.recipes.runner import step_names
from codelm.recipes.schema import load_recipe

TINY = str(resources.files("codelm.recipes").joinpath("tiny.yaml"))


def test_tiny_recipe_parses_and_plans(capsys):
    recipe = load_recipe(TINY)
    assert [s.kind for s in recipe.stages] == ["pretrain", "pretrain", "sft", "pretrain", "dpo", "dpo"]
    assert [s.seq_len for s in recipe.stages[:2]] == [256, 1024]  # long context ends pretraining
    assert recipe.stages[3].data == "derive:functions"  # FIM on the documented functions after SFT
    assert recipe.stages[5].self_play and not recipe.stages[5].data  # self-play pairs alone
    names = step_names(recipe)  # the pairs are made from the model DPO left, right before the stage
    assert names[names.index("stage:dpo") :][:4] == [
        "stage:dpo",
        "eval:dpo",
        "self-play:self-play",
        "stage:self-play",
    ]
    assert main(["run", "--dry-run"]) == 0
    assert "recipe tiny" in capsys.readouterr().out


def test_from_a_step_starts_its_evaluations_afresh(tmp_path, monkeypatch):
    """`--from` redoes training stages from scratch, so their evaluations must not resume: the stored
    answers are the old model's (the eval store would accept them, as the checkpoint path is the same)."""
    from codelm.recipes import runner

    recipe = load_recipe(TINY, scale="ci")
    names = step_names(recipe)
    seen = {}

    def fake(ctx, name):
        label = runner.eval_label(name)
        if label:
            seen[name] = sorted(p.name for p in ctx.path("eval").glob(f"{label}*"))
            ctx.path("eval", label).mkdir(parents=True, exist_ok=True)
            ctx.path("eval", f"{label}-chat").mkdir(exist_ok=True)
        return {}

    monkeypatch.setattr(runner, "_STEPS", {n.split(":")[0]: fake for n in names})
    runner.run_recipe(recipe, tmp_path)
    assert seen == {n: [] for n in names if runner.eval_label(n)}
    seen.clear()
    runner.run_recipe(recipe, tmp_path, from_step="stage:functions")
    # nothing of the old model's left to resume
    assert seen == {"eval:functions": [], "eval:dpo": [], "eval-after": []}
    assert sorted(p.name for p in (tmp_path / "eval").iterdir()) == sorted(
        x
        for n in names
        if runner.eval_label(n)
        for x in (runner.eval_label(n), runner.eval_label(n) + "-chat")
    )
    assert [
        runner.eval_label(n) for n in ("eval-before", "eval:sft", "eval-after", "stage:sft", "report")
    ] == ["before", "sft", "after", None, None]


@pytest.mark.slow
def test_tiny_recipe_runs_end_to_end(tmp_path, capsys):
    """The main job at its ci scale with no data directory: the benchmarks it needs ship with the
    package. Its report's figures are `codelm eval`'s on the same checkpoint, to the digit."""
    run = tmp_path / "run"
    argv = ["run", "--scale", "ci", "--run-dir", str(run), "--allow-code-execution"]
    assert main(argv) == 0
    done = {p.stem for p in (run / "done").glob("*.json")}
    assert done == {n.replace(":", "-") for n in step_names(load_recipe(TINY, scale="ci"))}
    before = json.loads((run / "done" / "eval-before.json").read_text())
    after = json.loads((run / "done" / "eval-after.json").read_text())
    for metrics in (before, after):
        assert metrics["humaneval_problems"] == 8 and metrics["humaneval_pass@1"] is not None
        assert 0 <= metrics["fim_exact_match"] <= 1 and metrics["fim_problems"] == 8
        assert metrics["fim_bits_per_byte"] > 0
        assert 0 <= metrics["syntax_valid"] <= 1 and metrics["perplexity"] > 0
    assert after["perplexity"] < before["perplexity"]  # it learned something from the corpus
    report = (run / "report.md").read_text()
    assert "## Evaluation" in report and "codelm serve --model" in report and (run / "loss.png").is_file()
    figures = json.loads((run / "report.json").read_text())
    assert list(figures["checkpoints"]) == [
        "before",
        "pretrain",
        "long-context",
        "sft",
        "functions",
        "dpo",
        "after",
    ]
    for label, metrics in figures["checkpoints"].items():
        for key in (
            "perplexity",
            "unigram_perplexity",
            "fim_exact_match",
            "fim_bits_per_byte",
            "syntax_valid",
            "humaneval_pass@1",
        ):
            assert metrics[key] is not None, (label, key)
        assert metrics["preference_accuracy"] is not None and metrics["docstring_pass@1"] is not None
    assert figures["checkpoints"]["after"]["perplexity"] == after["perplexity"]
    assert all(figures["steps"][step] is not None for step in step_names(load_recipe(TINY, scale="ci"))[:-1])
    assert set(figures["stages"]) == {"pretrain", "long-context", "functions", "sft", "dpo", "self-play"}
    # self-play: the model DPO left infilled function lines; those it got wrong are plain-text pairs
    # beside nothing else (the stage has no data of its own), a share held out for the stage
    made = json.loads((run / "done" / "self-play-self-play.json").read_text())
    pairs = [json.loads(x) for x in (run / "derived" / "self-play-self-play.jsonl").read_text().splitlines()]
    assert made["problems"] == 24 and made["pairs"] == len(pairs) > 0 and made["data_pairs"] == 0
    assert all(p["chat"] is False and p["chosen"] != p["rejected"] for p in pairs)
    assert figures["stages"]["self-play"]["steps"] > 0
    functions = [json.loads(x) for x in (run / "derived" / "functions.jsonl").read_text().splitlines()]
    assert functions and all(f["text"].startswith("def ") for f in functions)
    assert figures["stages"]["pretrain"]["tokens_per_s"]
    assert len(figures["samples"]["after"]) == 5 and figures["samples"]["after"][0]["reference"]
    assert len(figures["infills"]["before"]) == 5 and figures["serve"].startswith("codelm serve --model")
    final = run / "stages" / "self-play" / "final"
    assert (final / "model.safetensors").is_file()

    # the same evaluation through `codelm eval` on the final checkpoint gives the same numbers
    out = tmp_path / "eval"
    argv_eval = [
        "eval",
        "--model",
        str(final),
        "--tasks",
        "humaneval,fim-exact-match,fim-loss,perplexity",
        "--limit",
        "8",
        "--limit-spread",
        "--set",
        "task_limits={fim-exact-match: 8, fim-loss: 8, perplexity: 3}",
        "--data",
        f"perplexity={run / 'split' / 'heldout.jsonl'}",
        "--unigram-corpus",
        str(run / "shards"),
        "--allow-code-execution",
        "--output",
        str(out),
        "--no-progress",
    ]
    assert main(argv_eval) == 0
    from codelm.recipes.runner import headline

    direct = headline(json.loads((out / "summary.json").read_text()))
    assert direct == {k: after[k] for k in direct}
    assert f"{after['perplexity']:.1f}" in report

    capsys.readouterr()
    assert main(argv) == 0  # everything is done: nothing runs again
    assert "step " not in capsys.readouterr().out

    # self-play again at another learning rate: the final evaluation is the new model's, not resumed
    # from the old
    assert main([*argv, "--from", "stage:self-play", "--set", "stages.self-play.train.optim.lr=0.01"]) == 0
    again = json.loads((run / "done" / "eval-after.json").read_text())
    assert (
        again["perplexity"] != after["perplexity"]
        and again["fim_bits_per_byte"] != after["fim_bits_per_byte"]
    )


SEEDS = sorted((Path(__file__).resolve().parents[2] / "recipes").glob("*.yaml"))


@pytest.mark.slow
@pytest.mark.parametrize("path", SEEDS, ids=lambda p: p.stem)
def test_seed_recipe_runs_at_tiny_scale(path, tmp_path, monkeypatch):
    """The seed recipe's exact stage structure, end to end, at a CPU-sized model (offline: the
    recipe's environment variables point at what the run itself makes or ships)."""
    from codelm.eval.tasks.data import BUNDLED

    monkeypatch.setenv("BENCHMARKS_DIR", str(BUNDLED))
    run = tmp_path / "run"
    argv = ["run", str(path), "--scale", "tiny", "--run-dir", str(run), "--allow-code-execution"]
    assert main(argv) == 0
    recipe = load_recipe(path, scale="tiny")
    for stage in recipe.stages:
        done = json.loads((run / "done" / f"stage-{stage.name}.json").read_text())
        assert done["steps"] >= 1 and (run / "stages" / stage.name / "final" / "model.safetensors").is_file()
    after = json.loads((run / "done" / "eval-after.json").read_text())
    assert after["humaneval_problems"] == 4
    assert (after["fim_exact_match"] is not None) == (recipe.model.family != "codegen1")
    assert (run / "report.md").is_file()


def test_a_mixed_in_source_is_curated_split_and_reported(tmp_path):
    """`data.sources` with a `curate` section: its own curation, mixed into the split (a
    formatter's special_spans kept), its funnel in the report; off, it is not curated."""
    from codelm.recipes.report import _funnel
    from codelm.recipes.runner import RunContext, run_recipe
    from codelm.recipes.schema import parse_recipe

    code = tmp_path / "code" / "proj"
    code.mkdir(parents=True)
    for i in range(6):
        (code / f"m{i}.py").write_text(f"def f{i}(x):\n    return x + {i}\n")
    docs = tmp_path / "docs.jsonl"
    spans = {"special_spans": [[0, 10]]}
    rows = [
        {"id": f"doc{i}", "text": f"<file_sep>guide {i}\nUse f{i}(x) to add {i}.\n", **spans}
        for i in range(4)
    ]
    docs.write_text("".join(json.dumps(r) + "\n" for r in rows + rows[:1]))  # one exact duplicate
    source = {
        "name": "guides",
        "curate": {"readers": [{"jsonl": {"paths": [str(docs)]}}], "steps": ["exact_dedup"]},
    }
    raw = {
        "model": {"family": "llama"},
        "stages": [{"name": "pretrain", "kind": "pretrain", "tokens": 1e3}],
        "data": {
            "curate": {"readers": [{"directory": {"root": str(tmp_path / "code"), "layout": "multi"}}]},
            "heldout_fraction": 0.1,
            "sources": [source],
        },
    }
    recipe = parse_recipe(raw)
    for step in ("curate", "split"):
        run_recipe(recipe, tmp_path / "run", only=step)
    split = [
        json.loads(line)
        for f in ("train", "heldout")
        for line in (tmp_path / "run" / "split" / f"{f}.jsonl").open()
    ]
    assert sorted(r["id"] for r in split) == sorted(
        [f"proj/m{i}.py" for i in range(6)] + [f"doc{i}" for i in range(4)]
    )
    assert all(r["special_spans"] == [[0, 10]] for r in split if r["id"].startswith("doc"))
    funnel = _funnel(RunContext(recipe, tmp_path / "run", False, None), {})
    assert {
        "name": "guides: exact_dedup",
        "docs_in": 5,
        "kept": 4,
        "dropped": {"exact_duplicate": 1},
    } in funnel
    off = parse_recipe(raw, overrides=["data.sources.guides.enabled=false"])
    run_recipe(off, tmp_path / "off", only="curate")
    assert not (tmp_path / "off" / "data-guides").exists() and (tmp_path / "off" / "data").is_dir()


def test_a_functions_source_feeds_only_the_function_documents(tmp_path):
    """`use: functions`: the source is curated and in the funnel, but not in the split (nor so the
    tokenizer, shards or perplexity); its documented functions join the corpus's function documents,
    without the corpus's own functions again, private ones or held-out names."""
    from codelm.recipes.report import _funnel
    from codelm.recipes.runner import RunContext, run_recipe
    from codelm.recipes.schema import parse_recipe

    doc = '"""Add {n} to x and return the sum of the two."""'
    code = tmp_path / "code" / "proj"
    code.mkdir(parents=True)
    for i in range(6):
        (code / f"m{i}.py").write_text(f"def f{i}(x):\n    {doc.format(n=i)}\n    return x + {i}\n")
    lib = tmp_path / "deps" / "lib"
    lib.mkdir(parents=True)
    (lib / "a.py").write_text(
        "".join(f"def g{j}(x):\n    {doc.format(n=10 + j)}\n    return x + {10 + j}\n\n\n" for j in range(3))
        + f"def _hidden(x):\n    {doc.format(n=99)}\n    return x\n"
    )
    (lib / "b.py").write_text((code / "m0.py").read_text())  # a copy of a corpus function
    (lib / "c.py").write_text("def g0(x):\n    " + doc.format(n=10) + "\n    return x + 10\n")  # a repeat
    source = {
        "name": "deps",
        "use": "functions",
        "curate": {
            "readers": [{"directory": {"root": str(tmp_path / "deps"), "layout": "multi"}}],
            "steps": ["function_documents"],
        },
    }
    raw = {
        "model": {"family": "llama"},
        "tokenizer": {"train": {"vocab_size": 400}},
        "stages": [
            {"name": "pretrain", "kind": "pretrain", "tokens": 1e3},
            {"name": "functions", "kind": "pretrain", "data": "derive:functions", "tokens": 1e3},
        ],
        "data": {
            "curate": {"readers": [{"directory": {"root": str(tmp_path / "code"), "layout": "multi"}}]},
            "heldout_fraction": 0.1,
            "sources": [source],
        },
    }
    recipe = parse_recipe(raw)
    for step in ("curate", "split", "tokenizer", "derive"):
        run_recipe(recipe, tmp_path / "run", only=step)
    run = tmp_path / "run"
    split = [json.loads(line) for f in ("train", "heldout") for line in (run / "split" / f"{f}.jsonl").open()]
    assert sorted(r["id"] for r in split) == [f"proj/m{i}.py" for i in range(6)]
    functions = [json.loads(x) for x in (run / "derived" / "functions.jsonl").read_text().splitlines()]
    extra = {f["id"]: f["text"] for f in functions if f["id"].startswith("function/deps/")}
    assert sorted(t.split("(")[0] for t in extra.values()) == ["def g0", "def g1", "def g2"]
    corpus = [f["text"] for f in functions if f["id"].count("/") == 1]
    assert corpus and all(t.startswith("def f") for t in corpus)
    info = json.loads((run / "done" / "derive.json").read_text())
    assert info["function_documents"] == len(corpus) and info["function_documents:deps"] == 3
    assert (run / "derived" / "functions" / "index.json").is_file()  # packed with both
    funnel = _funnel(RunContext(recipe, run, False, None), {})
    cut = next(row for row in funnel if row["name"] == "deps: function_documents")
    assert (cut["docs_in"], cut["kept"]) == (3, 5)  # a.py's 3 (not _hidden), b.py's and c.py's 1 each
    bare = parse_recipe(raw, overrides=["data.sources.deps.curate.steps=[]"])  # modules, not functions
    for step in ("curate", "derive"):
        run_recipe(bare, tmp_path / "run", only=step)
    again = [json.loads(x) for x in (run / "derived" / "functions.jsonl").read_text().splitlines()]
    assert again == functions  # derive cuts the functions out itself
    (tmp_path / "bare" / "lib").mkdir(parents=True)
    (tmp_path / "bare" / "lib" / "x.py").write_text("x = 1\n")
    reader = f"[{{directory: {{root: {tmp_path / 'bare'}, layout: multi}}}}]"
    empty = parse_recipe(raw, overrides=[f"data.sources.deps.curate.readers={reader}"])
    with pytest.raises(CodelmError, match="derived no function_documents from data source deps"):
        for step in ("curate", "split", "tokenizer", "derive"):
            run_recipe(empty, tmp_path / "empty", only=step)


@pytest.mark.slow
def test_kill_9_mid_pretraining_then_resume(tmp_path):
    """The main job killed mid-stage (kill -9: no cleanup runs) continues from the stage's newest
    checkpoint: finished steps are not redone, and the stage's step count and log are those of one
    uninterrupted run."""
    import os
    import signal
    import subprocess
    import sys
    import time

    run = tmp_path / "run"
    argv = ["run", "--scale", "ci", "--run-dir", str(run), "--allow-code-execution"]
    codelm = [sys.executable, "-c", "import sys; from codelm.cli import main; sys.exit(main(sys.argv[1:]))"]
    proc = subprocess.Popen(
        [*codelm, *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    latest = run / "stages" / "pretrain" / "checkpoints" / "latest"
    deadline = time.monotonic() + 600
    while not latest.is_file():
        assert proc.poll() is None, proc.stdout.read().decode()
        assert time.monotonic() < deadline, "no pretraining checkpoint within 10 minutes"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the run and its workers, as a crash or an OOM kill would
    proc.wait()
    assert not (run / "done" / "stage-pretrain.json").exists(), "the kill should land mid-stage"
    kept = {
        p.name: p.stat().st_mtime_ns
        for p in latest.parent.glob("step-*")
        if (p / "trainer_state.json").is_file()
    }
    assert kept

    resumed = subprocess.run([*codelm, *argv], capture_output=True, text=True, timeout=900)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "stage:pretrain: resuming from" in resumed.stdout + resumed.stderr
    assert "step curate\n" not in resumed.stdout  # finished steps are skipped
    for name, mtime in kept.items():  # checkpoints written before the kill were not rewritten
        path = latest.parent / name
        assert not path.exists() or path.stat().st_mtime_ns == mtime
    steps = [
        json.loads(line)["step"]
        for line in (run / "stages" / "pretrain" / "metrics.jsonl").read_text().splitlines()
        if line.strip()
    ]
    assert steps == sorted(set(steps)), "each step is logged once, in order"
    recipe = load_recipe(TINY, scale="ci")
    done = json.loads((run / "done" / "stage-pretrain.json").read_text())
    assert done["steps"] == steps[-1] and (run / "report.json").is_file()
    assert {p.stem for p in (run / "done").glob("*.json")} == {
        n.replace(":", "-") for n in step_names(recipe)
    }
