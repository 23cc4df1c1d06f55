"""`codelm run RECIPE`: execute a recipe step by step, each step's output the next one's input.

Steps, in order: curate (codelm data curate) -> split (a held-out slice of the curated documents)
-> tokenizer (train one, or take the recipe's) -> pack (codelm data pack) -> derive (SFT/DPO data
from the corpus, when a stage asks for `derive:sft` / `derive:dpo`) -> init (the starting weights,
saved so they can be evaluated) -> eval-before -> one step per training stage (codelm train,
each continuing from the previous stage's final checkpoint) -> eval-after -> report.

Everything lands in one run directory, with `done/<step>.json` markers written after a step's
outputs: a re-run skips finished steps (so a crash resumes where it stopped), `--from STEP` redoes
a step and everything after it, `--only STEP` runs one step. `run.log` records what ran.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from codelm.errors import CodelmError
from codelm.recipes.schema import Recipe, StageSpec


@dataclass
class RunContext:
    recipe: Recipe
    root: Path
    allow_code_execution: bool
    data_dir: Path  # benchmark files (HumanEval, infilling) for the evaluation steps

    def path(self, *parts: str) -> Path:
        return self.root.joinpath(*parts)

    def log(self, message: str) -> None:
        line = f"{time.strftime('%H:%M:%S')} {message}"
        print(line, flush=True)
        with self.path("run.log").open("a") as f:
            f.write(line + "\n")


def step_names(recipe: Recipe) -> list[str]:
    stages = [f"stage:{s.name}" for s in recipe.stages]
    return [
        "curate",
        "split",
        "tokenizer",
        "pack",
        "derive",
        "init",
        "eval-before",
        *stages,
        "eval-after",
        "report",
    ]


def run_recipe(
    recipe: Recipe,
    root: str | Path,
    *,
    from_step: str | None = None,
    only: str | None = None,
    allow_code_execution: bool = False,
    data_dir: str | Path = "../shared/data",
) -> Path:
    ctx = RunContext(recipe, Path(root), allow_code_execution, Path(data_dir))
    ctx.root.mkdir(parents=True, exist_ok=True)
    (ctx.root / "recipe.yaml").write_text(yaml.safe_dump(_recipe_dict(recipe), sort_keys=False))
    names = step_names(recipe)
    for wanted in (from_step, only):
        if wanted is not None and wanted not in names:
            raise CodelmError(f"unknown step {wanted!r}; steps: {', '.join(names)}")
    todo = names[names.index(from_step) :] if from_step else names
    if only:
        todo = [only]
    done_dir = ctx.path("done")
    done_dir.mkdir(exist_ok=True)
    for name in todo if (from_step or only) else []:
        (done_dir / f"{_slug(name)}.json").unlink(missing_ok=True)
    for name in names:
        marker = done_dir / f"{_slug(name)}.json"
        if name not in todo or marker.exists():
            continue
        ctx.log(f"step {name}")
        t0 = time.perf_counter()
        info = _STEPS[name.split(":")[0]](ctx, name) or {}
        info["seconds"] = round(time.perf_counter() - t0, 1)
        marker.write_text(json.dumps(info, indent=2, default=str))
        ctx.log(f"step {name} done in {info['seconds']}s")
    return ctx.root


def _slug(name: str) -> str:
    return name.replace(":", "-")


def _recipe_dict(recipe: Recipe) -> dict[str, Any]:
    import dataclasses

    return dataclasses.asdict(recipe)


# -- data ------------------------------------------------------------------------------------------
def step_curate(ctx: RunContext, name: str) -> dict[str, Any]:
    from codelm.data.curate import curate
    from codelm.data.curate_config import CurateConfig

    raw = dict(ctx.recipe.data.get("curate") or {})
    if not raw:
        raise CodelmError(f"recipe {ctx.recipe.name} has no data.curate section")
    raw["output_dir"] = str(ctx.path("data"))
    stats, _ = curate(CurateConfig.from_dict(raw), overwrite=True, progress=sys.stderr.isatty())
    last = list(stats.steps.values())[-1] if stats.steps else None
    return {"documents": last.kept if last else 0}


def _curated_files(ctx: RunContext) -> list[Path]:
    from codelm.data.pack import input_files

    return input_files([ctx.path("data")])


def step_split(ctx: RunContext, name: str) -> dict[str, Any]:
    """Hold out a fixed share of documents (by a hash of their id, at least one) for perplexity."""
    from codelm.data.pack import read_documents
    from codelm.recipes.derive import write_jsonl

    share = float(ctx.recipe.data.get("heldout_fraction", 0.02))
    docs = sorted(
        (
            (int(hashlib.sha256(d.id.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF, d.id, d.text)
            for d in read_documents(_curated_files(ctx), [])
        ),
    )
    cut = max(1, sum(1 for bucket, _, _ in docs if bucket < share))
    heldout, train = docs[:cut], docs[cut:]
    if not train:
        raise CodelmError(f"the curated corpus has only {len(docs)} document(s): nothing left to train on")
    order = sorted(train, key=lambda d: d[1])  # training text in a stable, readable order
    n_train = write_jsonl(({"id": i, "text": t} for _, i, t in order), ctx.path("split", "train.jsonl"))
    n_held = write_jsonl(({"id": i, "text": t} for _, i, t in heldout), ctx.path("split", "heldout.jsonl"))
    return {"train": n_train, "heldout": n_held}


def _texts(path: Path) -> list[str]:
    return [json.loads(line)["text"] for line in path.read_text().splitlines() if line.strip()]


def step_tokenizer(ctx: RunContext, name: str) -> dict[str, Any]:
    from codelm.models import get_family
    from codelm.models.tokenizer import save_tokenizer
    from codelm.train.tokenizer import default_max_len, train_code_tokenizer

    spec = ctx.recipe.tokenizer
    out = ctx.path("tokenizer")
    if spec.get("from"):
        return {"tokenizer": spec["from"]}
    fam = get_family(ctx.recipe.model.family)
    settings = dict(spec.get("train") or {})
    tok = train_code_tokenizer(
        _texts(ctx.path("split", "train.jsonl")), fam, int(settings.get("vocab_size", 4096))
    )
    save_tokenizer(tok, fam, out, int(settings.get("max_len", default_max_len(fam))))
    return {"tokenizer": str(out), "vocab_size": len(tok)}


def tokenizer_path(ctx: RunContext) -> str:
    return ctx.recipe.tokenizer.get("from") or str(ctx.path("tokenizer"))


def step_pack(ctx: RunContext, name: str) -> dict[str, Any]:
    from codelm.data.pack import pack

    settings = dict(ctx.recipe.data.get("pack") or {})
    out = pack(
        [ctx.path("split", "train.jsonl")],
        tokenizer_path(ctx),
        ctx.path("shards"),
        family=ctx.recipe.model.family,
        overwrite=True,
        **settings,
    )
    return {"shards": str(out)}


def step_derive(ctx: RunContext, name: str) -> dict[str, Any]:
    from codelm.recipes.derive import dpo_pairs, sft_pairs, write_jsonl

    wanted = {s.data for s in ctx.recipe.stages if s.data and s.data.startswith("derive:")}
    texts = _texts(ctx.path("split", "train.jsonl"))
    info: dict[str, Any] = {}
    if "derive:sft" in wanted:
        info["sft_pairs"] = write_jsonl(sft_pairs(texts), ctx.path("derived", "sft.jsonl"))
    if "derive:dpo" in wanted:
        if not ctx.allow_code_execution:
            raise CodelmError("deriving DPO pairs runs the corpus's doctests: pass --allow-code-execution")
        from codelm.eval.execution import ExecutionPool

        with ExecutionPool(2, allow_code_execution=True) as pool:
            info["dpo_pairs"] = write_jsonl(dpo_pairs(texts, pool=pool), ctx.path("derived", "dpo.jsonl"))
    for key, n in info.items():
        if n == 0:
            raise CodelmError(f"derived no {key} from the corpus")
    return info


# -- model and training ----------------------------------------------------------------------------
def step_init(ctx: RunContext, name: str) -> dict[str, Any]:
    """The starting weights, saved: what eval-before measures and the first stage starts from."""
    import torch

    from codelm.models import get_family
    from codelm.models.tokenizer import save_tokenizer
    from codelm.train.config import ModelConfig
    from codelm.train.init import build_model, load_tokenizer

    m = ctx.recipe.model
    if m.init_from:
        return {"init": m.init_from}
    fam = get_family(m.family)
    cfg = ModelConfig(
        family=m.family, size=m.size, tokenizer=tokenizer_path(ctx), overrides=dict(m.overrides)
    )
    tok = load_tokenizer(cfg)
    torch.manual_seed(int(ctx.recipe.serve.get("seed", 0)))
    model = build_model(cfg, tok, fam, ctx.recipe.stages[0].seq_len)
    out = ctx.path("init")
    model.save_pretrained(str(out))
    save_tokenizer(
        tok, fam, out, int(getattr(model.config, "max_position_embeddings", 0) or model.config.n_positions)
    )
    return {"init": str(out), "parameters": sum(p.numel() for p in model.parameters())}


def _previous_checkpoint(ctx: RunContext, stage: StageSpec) -> str:
    i = [s.name for s in ctx.recipe.stages].index(stage.name)
    if i == 0:
        return ctx.recipe.model.init_from or str(ctx.path("init"))
    return str(ctx.path("stages", ctx.recipe.stages[i - 1].name, "final"))


def _context_of(checkpoint: str) -> int:
    """The context length a local checkpoint was saved with (0 when it is not a local directory)."""
    cfg = Path(checkpoint) / "config.json"
    if not cfg.is_file():
        return 0
    raw = json.loads(cfg.read_text())
    return int(raw.get("max_position_embeddings") or raw.get("n_positions") or 0)


def _records(path: str) -> int:
    return sum(1 for line in Path(path).read_text().splitlines() if line.strip())


def stage_config(ctx: RunContext, stage: StageSpec) -> dict[str, Any]:
    """The `codelm train` YAML of one stage: planning fields turned into steps, plus its `train`."""
    train = json.loads(json.dumps(stage.train))  # a deep copy of plain data
    batch = {"seq_len": stage.seq_len, **train.pop("batch", {})}
    batch.setdefault("micro_batch_size", 8)
    batch.setdefault("global_batch_size", 16)
    seqs = batch["global_batch_size"] // (stage.seq_len if batch.get("unit") == "tokens" else 1)
    model = {
        "init_from": _previous_checkpoint(ctx, stage),
        "tokenizer": tokenizer_path(ctx),
        **train.pop("model", {}),
    }
    if stage.rope_theta:  # long context: a new RoPE base, and room for the longer rows
        model["rope_theta"] = stage.rope_theta
        model["max_position_embeddings"] = max(stage.seq_len, _context_of(model["init_from"]))
    run = {"out_dir": str(ctx.path("stages", stage.name)), **train.pop("run", {})}
    if stage.kind == "pretrain":
        section = {
            "shards": [str(ctx.path("shards"))],
            "fim_rate": stage.fim_rate,
            "fim_spm_rate": stage.fim_spm_rate,
        }
        steps = math.ceil((stage.tokens or 0) / (seqs * stage.seq_len)) if stage.tokens else None
    else:
        data = stage.data or ""
        if data.startswith("derive:"):
            data = str(ctx.path("derived", f"{data.split(':', 1)[1]}.jsonl"))
        section = {"data": data}
        rows = _records(data) * (2 if stage.kind == "dpo" else 1)
        steps = (
            math.ceil((stage.epochs or 1) * rows / seqs)
            if stage.kind == "sft"
            else math.ceil((stage.epochs or 1) * _records(data) / seqs)
        )
    run.setdefault("max_steps", max(1, steps or 1))
    optim = train.pop("optim", {})
    if stage.warmup_fraction is not None:
        optim.setdefault("warmup_steps", int(stage.warmup_fraction * run["max_steps"]))
    section.update(train.pop(stage.kind, {}))
    cfg = {
        "stage": stage.kind,
        "model": model,
        stage.kind: section,
        "batch": batch,
        "optim": optim,
        "run": run,
    }
    cfg.update(train)
    return cfg


def step_stage(ctx: RunContext, name: str) -> dict[str, Any]:
    from codelm.train.config import load_config
    from codelm.train.loop import train

    stage = ctx.recipe.stage(name.split(":", 1)[1])
    out = ctx.path("stages", stage.name)
    if out.exists():  # a crashed attempt: codelm train refuses to start over its checkpoints
        shutil.rmtree(out)
    out.mkdir(parents=True)
    config_file = out.parent / f"{stage.name}.yaml"
    config_file.write_text(yaml.safe_dump(stage_config(ctx, stage), sort_keys=False))
    final = train(load_config(config_file))
    metrics = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines() if x.strip()]
    losses = [m["loss"] for m in metrics if "loss" in m]
    return {
        "final": str(final),
        "steps": max((m.get("step", 0) for m in metrics), default=0),
        "first_loss": losses[0] if losses else None,
        "last_loss": losses[-1] if losses else None,
    }


def final_checkpoint(ctx: RunContext) -> Path:
    return ctx.path("stages", ctx.recipe.stages[-1].name, "final")


# -- evaluation and report -------------------------------------------------------------------------
def _evaluate(ctx: RunContext, checkpoint: str | Path, out: str) -> dict[str, Any]:
    from codelm.recipes.evaluate import evaluate_checkpoint, unigram_log_probs
    from codelm.train.shards import read_index

    settings = ctx.recipe.eval
    vocab = read_index(ctx.path("shards"))["tokenizer"]["vocab_size"]
    heldout = _texts(ctx.path("split", "heldout.jsonl"))[: int(settings.get("heldout_documents", 50))]
    metrics = evaluate_checkpoint(
        checkpoint,
        data_dir=settings.get("data_dir", ctx.data_dir),
        heldout=heldout,
        unigram=unigram_log_probs([ctx.path("shards")], vocab),
        limit=settings.get("limit"),
        fim_limit=settings.get("fim_limit"),
        allow_code_execution=ctx.allow_code_execution,
        workers=int(settings.get("workers", 2)),
    )
    ctx.path("eval").mkdir(exist_ok=True)
    ctx.path("eval", f"{out}.json").write_text(json.dumps(metrics, indent=2))
    return {k: v for k, v in metrics.items() if k != "samples"}


def step_eval_before(ctx: RunContext, name: str) -> dict[str, Any]:
    return _evaluate(ctx, ctx.recipe.model.init_from or ctx.path("init"), "before")


def step_eval_after(ctx: RunContext, name: str) -> dict[str, Any]:
    return _evaluate(ctx, final_checkpoint(ctx), "after")


def step_report(ctx: RunContext, name: str) -> dict[str, Any]:
    from codelm.recipes.report import write_report

    paths = write_report(ctx)
    print(f"\nserve the trained model:\n  codelm serve --model {final_checkpoint(ctx)}\n")
    return {"report": [str(p) for p in paths]}


_STEPS: dict[str, Callable[[RunContext, str], dict[str, Any] | None]] = {
    "curate": step_curate,
    "split": step_split,
    "tokenizer": step_tokenizer,
    "pack": step_pack,
    "derive": step_derive,
    "init": step_init,
    "eval-before": step_eval_before,
    "stage": step_stage,
    "eval-after": step_eval_after,
    "report": step_report,
}
