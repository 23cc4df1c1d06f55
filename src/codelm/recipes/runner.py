"""`codelm run RECIPE`: execute a recipe step by step, each step's output the next one's input.

Steps, in order: curate (codelm data curate, and one curation per enabled `data.sources` entry
with a `curate` section, mixed into the same corpus) -> split (a held-out slice of the curated documents)
-> tokenizer (train one, or take the recipe's) -> pack (codelm data pack) -> derive (SFT/DPO data
and function documents from the corpus, when a stage asks for `derive:sft` / `derive:dpo` /
`derive:functions`) -> init (the starting weights, saved so they can be evaluated) -> eval-before
-> one step per training stage (codelm train, each continuing from the previous stage's final
checkpoint) -> eval-after -> report.

Everything lands in one run directory, with `done/<step>.json` markers written after a step's
outputs: a re-run skips finished steps (so a crash resumes where it stopped), `--from STEP` redoes
a step and everything after it (training stages and evaluations from scratch, so no figure of the
model before survives), `--only STEP` runs one step. `run.log` records what ran.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codelm.config import expand
from codelm.errors import CodelmError
from codelm.jsonl import iter_records, read_records, write_records
from codelm.recipes.schema import Recipe, StagePaths, StageSpec


@dataclass
class RunContext:
    recipe: Recipe
    root: Path
    allow_code_execution: bool
    data_dir: Path | None  # benchmark files (default: the copies codelm ships)
    scale: str | None = None  # the recipe's scale applied (--scale, or its auto_scales), for the report

    @property
    def benchmarks(self) -> Path:
        """The benchmark directory: decontamination reads it, evaluation resolves from it."""
        from codelm.eval.tasks.data import BUNDLED

        return (self.data_dir or BUNDLED).resolve()

    @property
    def variables(self) -> dict[str, str]:
        """What `${NAME}` may name in a recipe besides the built-ins and the environment."""
        return {"benchmarks": str(self.benchmarks)}

    def path(self, *parts: str) -> Path:
        return self.root.joinpath(*parts)

    def log(self, message: str) -> None:
        line = f"{time.strftime('%H:%M:%S')} {message}"
        print(line, flush=True)
        with self.path("run.log").open("a") as f:
            f.write(line + "\n")


def step_names(recipe: Recipe) -> list[str]:
    """Every step in order: each stage but the last is evaluated right after it (`eval:NAME`), the
    last one by `eval-after`, so the report shows what each stage moved; a stage with self-play
    pairs makes them from the model it starts from right before it (`self-play:NAME`)."""
    stages: list[str] = []
    for i, s in enumerate(recipe.stages):
        stages += [f"self-play:{s.name}"] if s.self_play else []
        stages += [f"stage:{s.name}"] + ([f"eval:{s.name}"] if i < len(recipe.stages) - 1 else [])
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


def checkpoints(recipe: Recipe) -> list[str]:
    """The evaluated checkpoints, in order: before, each stage but the last, after (the final)."""
    return ["before", *(s.name for s in recipe.stages[:-1]), "after"]


def run_recipe(
    recipe: Recipe,
    root: str | Path,
    *,
    from_step: str | None = None,
    only: str | None = None,
    allow_code_execution: bool = False,
    data_dir: str | Path | None = None,
    scale: str | None = None,
) -> Path:
    """Run the recipe's steps into `root`; `data_dir` holds benchmark files (default: the shipped ones);
    `scale` names the scale the recipe was loaded at (recorded in the log and the report)."""
    from codelm.config import dump

    if data_dir is not None and not Path(data_dir).is_dir():
        raise CodelmError(f"benchmark directory {data_dir} not found")
    ctx = RunContext(recipe, Path(root), allow_code_execution, Path(data_dir) if data_dir else None, scale)
    ctx.root.mkdir(parents=True, exist_ok=True)
    if scale:
        ctx.log(f"scale {scale}")
    (ctx.root / "recipe.yaml").write_text(dump(recipe))
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
        marker_path(ctx, name).unlink(missing_ok=True)
        if name.startswith("stage:"):  # redone from its start, not resumed from its checkpoints
            shutil.rmtree(ctx.path("stages", name.split(":", 1)[1]), ignore_errors=True)
        label = eval_label(name)
        if label:  # an evaluation redone from scratch: resuming it would keep the old model's answers
            for out in (label, f"{label}-chat"):
                shutil.rmtree(ctx.path("eval", out), ignore_errors=True)
    for name in names:
        marker = marker_path(ctx, name)
        if name not in todo or marker.exists():
            continue
        ctx.log(f"step {name}")
        t0 = time.perf_counter()
        info = _STEPS[name.split(":")[0]](ctx, name) or {}
        info["seconds"] = round(time.perf_counter() - t0, 1)
        marker.write_text(json.dumps(info, indent=2, default=str))
        ctx.log(f"step {name} done in {info['seconds']}s")
    return ctx.root


def eval_label(step: str) -> str | None:
    """The output folder (under eval/) of an evaluation step: eval-before -> before, eval:NAME ->
    NAME, eval-after -> after; None for a step that evaluates nothing."""
    if step in ("eval-before", "eval-after"):
        return step.split("-", 1)[1]
    return step.split(":", 1)[1] if step.startswith("eval:") else None


def marker_path(ctx: RunContext, step: str) -> Path:
    """Where a finished step's marker (its info and seconds) lives: done/<step, ':' as '-'>.json."""
    return ctx.path("done", f"{step.replace(':', '-')}.json")


def serve_line(ctx: RunContext) -> str:
    """The `codelm serve` line for the run's final checkpoint, with the recipe's serve settings."""
    import dataclasses

    return dataclasses.replace(ctx.recipe.serve, model=str(final_checkpoint(ctx))).command()


# -- data ------------------------------------------------------------------------------------------
def step_curate(ctx: RunContext, name: str) -> dict[str, Any]:
    from codelm.data.curate import curate

    if not ctx.recipe.data.curate:
        raise CodelmError(f"recipe {ctx.recipe.name} has no data.curate section")

    def kept(config: Any) -> int:  # documents the curation keeps
        stats, _ = curate(config, overwrite=True, progress=sys.stderr.isatty())
        return list(stats.steps.values())[-1].kept if stats.steps else 0

    data = ctx.recipe.data
    info: dict[str, Any] = {"documents": kept(data.curate_config(ctx.path("data"), ctx.variables))}
    for source in curated_sources(ctx):  # other parts of the data, each its own curation
        config = data.source_config(source, source_dir(ctx, source.name), ctx.variables)
        info[f"documents:{source.name}"] = kept(config)
    return info


def curated_sources(ctx: RunContext, use: str | None = None) -> list[Any]:
    """The recipe's `data.sources` that this run curates (those with `use` only, when given)."""
    return [s for s in ctx.recipe.data.sources if s.curated and use in (None, s.use)]


def mixed_sources(ctx: RunContext) -> list[Any]:
    """The recipe's `data.sources` that this run curates and mixes into the corpus."""
    return curated_sources(ctx, "corpus")


def source_dir(ctx: RunContext, name: str) -> Path:
    """Where a mixed-in source's curation lands (its data, stats.json and report)."""
    return ctx.path(f"data-{name}")


def _curated_files(ctx: RunContext) -> list[Path]:
    from codelm.data.pack import input_files

    return input_files([ctx.path("data"), *(source_dir(ctx, s.name) for s in mixed_sources(ctx))])


def _source_texts(ctx: RunContext, source: Any) -> list[str]:
    """The texts a curated source kept, in the curation's order."""
    from codelm.data.pack import input_files, read_documents

    return [d.text for d in read_documents(input_files([source_dir(ctx, source.name)]), [])]


def step_split(ctx: RunContext, name: str) -> dict[str, Any]:
    """Hold out a fixed share of documents (by a hash of their id, at least one) for perplexity."""
    from codelm.data.pack import read_documents

    share = ctx.recipe.data.heldout_fraction
    docs = sorted(
        ((_bucket(d.id), d.id, d.text, _spans(d)) for d in read_documents(_curated_files(ctx), [])),
    )
    cut = max(1, sum(1 for bucket, *_ in docs if bucket < share))
    heldout, train = docs[:cut], docs[cut:]
    if not train:
        raise CodelmError(f"the curated corpus has only {len(docs)} document(s): nothing left to train on")
    order = sorted(train, key=lambda d: d[1])  # training text in a stable, readable order
    n_train = write_records((_record(*d[1:]) for d in order), ctx.path("split", "train.jsonl"))
    n_held = write_records((_record(*d[1:]) for d in heldout), ctx.path("split", "heldout.jsonl"))
    return {"train": n_train, "heldout": n_held}


def _spans(doc: Any) -> list[list[int]] | None:
    from codelm.data.specials import SPANS_KEY

    return doc.metadata.get(SPANS_KEY)


def _record(doc_id: str, text: str, spans: list[list[int]] | None) -> dict[str, Any]:
    """A split record; a formatter's file separators keep their spans, so pack gives them ids."""
    return {"id": doc_id, "text": text, **({"special_spans": spans} if spans else {})}


def _texts(path: Path) -> list[str]:
    return [record["text"] for record in iter_records(path)]


def step_tokenizer(ctx: RunContext, name: str) -> dict[str, Any]:
    from codelm.models import get_family
    from codelm.train.tokenizer import train_and_save

    spec = ctx.recipe.tokenizer
    if spec.from_:
        return {"tokenizer": spec.from_}
    assert spec.train is not None
    fam = get_family(ctx.recipe.model.family)
    corpus = ctx.path("split", "train.jsonl")
    tok = train_and_save(
        _texts(corpus), fam, spec.train, ctx.path("tokenizer"), lambda: {"inputs": [str(corpus)]}
    )
    return {"tokenizer": str(ctx.path("tokenizer")), "vocab_size": len(tok)}


def tokenizer_path(ctx: RunContext) -> str:
    return ctx.recipe.tokenizer.from_ or str(ctx.path("tokenizer"))


def step_pack(ctx: RunContext, name: str) -> dict[str, Any]:
    out = _pack(ctx, ctx.path("split", "train.jsonl"), ctx.path("shards"))
    # the held-out split as shards too, without FIM: pretraining's held-out loss curve reads them
    heldout = _pack(ctx, ctx.path("split", "heldout.jsonl"), ctx.path("shards-heldout"), fim=False)
    return {"shards": str(out), "heldout_shards": str(heldout)}


def _pack(ctx: RunContext, source: Path, out: Path, fim: bool = True) -> Path:
    """`source` (JSONL of {"id", "text"}) packed into shards with the recipe's pack settings."""
    import dataclasses

    from codelm.data.pack import pack

    settings = dataclasses.asdict(ctx.recipe.data.pack)
    if not fim:
        settings |= {"fim_rate": 0.0, "fim_spm_rate": None, "fim_line_rate": 0.0}
    return pack(
        [source], tokenizer_path(ctx), out, family=ctx.recipe.model.family, overwrite=True, **settings
    )


HELDOUT_SHARE = 0.2  # derived problems and pairs held out from SFT/DPO training for evaluation
SFT_HELDOUT_SHARE = 0.05  # SFT pairs held out for the SFT stage's held-out loss (~65 of the tiny run's)


def _bucket(key: str) -> float:
    """A stable number in [0, 1] from `key`: what decides held-out shares, run after run."""
    return int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF


def _held_out(key: str, share: float = HELDOUT_SHARE) -> bool:
    return _bucket(key) < share


def _partition(items: list[Any], held: Callable[[Any], bool]) -> tuple[list[Any], list[Any]]:
    """(kept for training, held out) in their order."""
    flags = [held(item) for item in items]
    return [i for i, f in zip(items, flags, strict=True) if not f], [
        i for i, f in zip(items, flags, strict=True) if f
    ]


def _function_name(prompt: str) -> str:
    """`name` from "Write a Python function `name(args)` that: ..." (the derived prompts)."""
    return prompt.split("`", 2)[1].split("(", 1)[0] if prompt.count("`") >= 2 else ""


def _eval_tasks(ctx: RunContext) -> set[str]:
    from codelm.eval.tasks import task_names

    configs = [ctx.recipe.eval, *([ctx.recipe.eval_chat] if ctx.recipe.eval_chat else [])]
    return {t for c in configs if c.tasks for t in task_names(c.tasks)}


def _source_functions(
    ctx: RunContext, known: set[str], kept_out: set[str]
) -> Iterator[tuple[str, list[str]]]:
    """(source name, its function documents) for each `use: functions` source: the documented
    functions its curation kept (usually already cut out of their modules), minus names in
    `kept_out`, texts in `known` (the corpus's function documents), repeats, and the functions of the
    held-out split (its perplexity must stay unseen)."""
    from codelm.data.functions import documented_sources

    sources = curated_sources(ctx, "functions")
    if not sources:  # the held-out split is read only when something is checked against it
        return
    heldout_split = _texts(ctx.path("split", "heldout.jsonl"))
    seen = known | {f"{code}\n" for text in heldout_split for _, code in documented_sources(text)}
    for source in sources:
        found = [
            f"{code}\n"
            for text in _source_texts(ctx, source)
            for name, code in documented_sources(text)
            if name not in kept_out
        ]
        extra = [text for text in dict.fromkeys(found) if text not in seen]
        seen.update(extra)
        yield source.name, extra


def step_derive(ctx: RunContext, name: str) -> dict[str, Any]:
    """SFT and DPO data from the corpus, and the held-out problems that measure what they teach:
    docstring -> function problems (functions whose doctest passes) from the held-out split plus a
    hashed share of the rest, and a hashed share of the DPO pairs. Held-out functions are kept out
    of the SFT and DPO training data (pretraining did see the modules of those not from the split)."""
    from codelm.recipes.derive import doctest_problems, documented_functions, dpo_pairs

    wanted = {s.data for s in ctx.recipe.stages if s.data and s.data.startswith("derive:")}
    evals = _eval_tasks(ctx)
    texts = _texts(ctx.path("split", "train.jsonl"))
    info: dict[str, Any] = {}
    needs_sandbox = "derive:dpo" in wanted or "docstring-to-function" in evals or "preference" in evals
    if needs_sandbox and not ctx.allow_code_execution:
        raise CodelmError(
            "deriving doctest-checked data runs the corpus's doctests: pass --allow-code-execution"
        )
    pool = None
    if needs_sandbox:
        from codelm.eval.execution import ExecutionPool

        pool = ExecutionPool(2, allow_code_execution=True)
        pool.start()
    try:
        held_names: set[str] = set()
        if "docstring-to-function" in evals:
            heldout_texts = _texts(ctx.path("split", "heldout.jsonl"))
            problems = doctest_problems(heldout_texts, pool=pool) + doctest_problems(
                texts, pool=pool, keep=_held_out
            )
            held_names = {p["name"] for p in problems}
            for i, p in enumerate(problems):
                p["task_id"] = f"doctest/{i}/{p['name']}"
            info["heldout_doctest_problems"] = write_records(
                problems, ctx.path("derived", "heldout-doctests.jsonl")
            )
        if wanted & {"derive:sft", "derive:functions"}:  # one pass over the corpus for both
            found = [f for f in documented_functions(texts) if _function_name(f.prompt) not in held_names]
            # a hashed share never trained on: the SFT stage's held-out loss (what SFT should lower);
            # the function documents leave it out too
            train, held = _partition(found, lambda f: _held_out(f.prompt, SFT_HELDOUT_SHARE))
            if "derive:sft" in wanted:
                info["sft_pairs"] = write_records(
                    (f.sft_pair() for f in train), ctx.path("derived", "sft.jsonl")
                )
                info["heldout_sft_pairs"] = write_records(
                    (f.sft_pair() for f in held), ctx.path("derived", "heldout-sft.jsonl")
                )
            if "derive:functions" in wanted:
                docs = [{"id": f"function/{i}", "text": f.document()} for i, f in enumerate(train)]
                info["function_documents"] = len(docs)
                kept_out = held_names | {_function_name(f.prompt) for f in held}
                for source, extra in _source_functions(ctx, {d["text"] for d in docs}, kept_out):
                    docs += [{"id": f"function/{source}/{i}", "text": t} for i, t in enumerate(extra)]
                    info[f"function_documents:{source}"] = len(extra)
                write_records(docs, ctx.path("derived", "functions.jsonl"))
                if docs:  # FIM comes from the stage that trains on them, on the fly
                    path = ctx.path("derived", "functions.jsonl")
                    _pack(ctx, path, ctx.path("derived", "functions"), fim=False)
        if "derive:dpo" in wanted or "preference" in evals:
            derived = [
                p for p in dpo_pairs(texts, pool=pool) if _function_name(p["prompt"]) not in held_names
            ]
            keep_out = "preference" in evals  # hold pairs out only when something evaluates them
            train, held = _partition(derived, lambda p: keep_out and _held_out(p["prompt"] + p["rejected"]))
            info["dpo_pairs"] = write_records(train, ctx.path("derived", "dpo.jsonl"))
            if held:
                info["heldout_dpo_pairs"] = write_records(held, ctx.path("derived", "heldout-dpo.jsonl"))
    finally:
        if pool is not None:
            pool.close()
    for key, n in info.items():
        if n == 0:
            what, _, source = key.partition(":")
            where = f"data source {source}" if source else "the corpus"
            raise CodelmError(f"derived no {what} from {where}")
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
    torch.manual_seed(m.seed)
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


def _stage_data(ctx: RunContext, stage: StageSpec) -> str | None:
    """The stage's `data` as a path (a derivation's file in derived/), before any self-play pairs."""
    data = stage.data
    if data and data.startswith("derive:"):
        data = str(ctx.path("derived", f"{data.split(':', 1)[1]}.jsonl"))
    return expand(data, ctx.variables) if data else None


def stage_paths(ctx: RunContext, stage: StageSpec) -> StagePaths:
    """Where this run's stage reads and writes (filled into its training config)."""
    init_from = _previous_checkpoint(ctx, stage)
    shards = ctx.path("derived", "functions") if stage.data == "derive:functions" else ctx.path("shards")
    data = (
        str(ctx.path("derived", f"self-play-{stage.name}.jsonl"))
        if stage.self_play
        else _stage_data(ctx, stage)
    )
    records = _records(data) if stage.kind != "pretrain" and data else 1
    # derived data's held-out share: the stage's held-out loss (DPO: rewards too)
    derived = f"self-play-{stage.name}" if stage.self_play else None
    if not derived and stage.data in ("derive:sft", "derive:dpo"):
        derived = stage.data.split(":", 1)[1]
    heldout = None
    if derived:
        path = ctx.path("derived", f"heldout-{derived}.jsonl")
        heldout = str(path) if path.is_file() and _records(str(path)) else None
    return StagePaths(
        init_from=init_from,
        tokenizer=tokenizer_path(ctx),
        shards=str(shards),
        heldout_shards=str(ctx.path("shards-heldout")) if ctx.path("shards-heldout").is_dir() else None,
        out_dir=str(ctx.path("stages", stage.name)),
        data=data,
        records=records,
        context=_context_of(init_from),
        heldout=heldout,
        corpus_shards=str(ctx.path("shards")),
    )


def step_self_play(ctx: RunContext, name: str) -> dict[str, Any]:
    """A DPO stage's self-play pairs (recipes/derive.py, SPIN): the model the stage starts from
    infills single lines of the function documents through `codelm eval`'s `fim-exact-match` (the
    evaluation path, so the prompts are the ones evaluation uses); each line it gets wrong gives a
    plain-text pair, the line as written over the model's. Written with the stage's own `data` to
    derived/self-play-STAGE.jsonl, which the stage trains on; only problems whose pair fits the
    stage's rows are asked (a cut pair teaches nothing)."""
    from codelm.eval.backends.engine import EngineBackend
    from codelm.eval.runner import EvalOptions, run_eval
    from codelm.models.formats import render_fim
    from codelm.recipes.derive import infill_problems, self_play_pairs

    stage = ctx.recipe.stage(name.split(":", 1)[1])
    backend = EngineBackend.from_pretrained(_previous_checkpoint(ctx, stage))
    family, tokenizer = backend.engine.family, backend.tokenizer
    try:

        def fits(prefix: str, suffix: str, line: str) -> bool:  # + BOS and EOS
            text = render_fim(family, prefix, suffix) + line
            return (
                len(tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]) + 2
                <= stage.seq_len
            )

        seed = int(stage.train.get("run", {}).get("seed", 0))
        texts = _texts(ctx.path("derived", "functions.jsonl"))
        problems = infill_problems(texts, max_problems=stage.self_play, seed=seed, fits=fits)
        if not problems:
            raise CodelmError(f"stage {stage.name}: no function document line fits seq_len {stage.seq_len}")
        path = ctx.path("derived", f"self-play-{stage.name}-problems.jsonl")
        write_records(problems, path)
        output = ctx.path("self-play", stage.name)
        shutil.rmtree(output, ignore_errors=True)  # a redone step asks the model again
        task = "fim-exact-match"
        options = EvalOptions(
            tasks=(task,), output=output, data={task: str(path)}, workers=1, progress=sys.stderr.isatty()
        )
        summary = run_eval(options, backend)
    finally:
        backend.close()
    samples = [s for s in read_records(output / "samples.jsonl") if s["task"] == task]
    pairs = self_play_pairs(problems, samples, lambda prefix, suffix: render_fim(family, prefix, suffix))
    # a hashed share held out: the stage's held-out DPO loss, reward accuracy and margin
    train, held = _partition(pairs, lambda p: _held_out(p["prompt"] + p["rejected"], SFT_HELDOUT_SHARE))
    base = _stage_data(ctx, stage)
    records = read_records(base) if base else []
    if not records + train:
        raise CodelmError(
            f"stage {stage.name}: the model infilled {len(problems) - len(pairs)} of {len(problems)} "
            "lines as written or with nothing, which leaves no self-play pairs to train on"
        )
    write_records(records + train, ctx.path("derived", f"self-play-{stage.name}.jsonl"))
    write_records(held, ctx.path("derived", f"heldout-self-play-{stage.name}.jsonl"))
    return {
        "problems": len(problems),
        "exact_match": summary[task]["pass@1"],
        "pairs": len(train),
        "heldout_pairs": len(held),
        "data_pairs": len(records),
    }


def step_stage(ctx: RunContext, name: str) -> dict[str, Any]:
    from codelm.config import dump
    from codelm.train.checkpoint import latest_checkpoint
    from codelm.train.loop import train

    stage = ctx.recipe.stage(name.split(":", 1)[1])
    out = ctx.path("stages", stage.name)
    config = ctx.recipe.train_config(stage, stage_paths(ctx, stage))
    if stage.kind == "rl" and ctx.allow_code_execution:  # the run's opt-in covers the rewards' sandbox
        config.data.allow_code_execution = True
    # an attempt killed mid-stage (Ctrl-C, kill -9, power) continues from its newest checkpoint, as
    # `codelm train --resume` would (the loop refuses a checkpoint of another config); one killed
    # before its first checkpoint starts over
    found = latest_checkpoint(out)
    if found is not None:
        ctx.log(f"{name}: resuming from {found}")
    elif out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out.parent / f"{stage.name}.yaml").write_text(dump(config))  # `codelm train` runs it the same way
    final = train(config, resume=found is not None)
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
def _run_data(ctx: RunContext) -> dict[str, Path]:
    """Data the run makes for evaluation tasks that have no public benchmark file."""
    return {
        "perplexity": ctx.path("split", "heldout.jsonl"),
        "docstring-to-function": ctx.path("derived", "heldout-doctests.jsonl"),
        "preference": ctx.path("derived", "heldout-dpo.jsonl"),
    }


def _evaluate(ctx: RunContext, checkpoint: str | Path, out: str) -> dict[str, Any]:
    """The recipe's `eval` section (and `eval_chat`, in chat mode) through `codelm eval`'s runner, on
    one checkpoint: the same numbers `codelm eval --model CHECKPOINT` gives. Tasks without a public
    benchmark read what the run made: perplexity the held-out split (its unigram baseline fitted on
    the training shards), docstring -> function and preference the held-out derived data."""
    import dataclasses

    from codelm.eval.backends.engine import EngineBackend
    from codelm.eval.runner import run_eval
    from codelm.eval.tasks import task_names

    runs = [(ctx.recipe.eval, out)]
    if ctx.recipe.eval_chat is not None:
        runs.append((dataclasses.replace(ctx.recipe.eval_chat, mode="chat"), f"{out}-chat"))
    backend = EngineBackend.from_pretrained(str(checkpoint))
    merged: dict[str, Any] = {}
    try:
        for section, label in runs:
            config = dataclasses.replace(section, data=dict(section.data))
            if config.data_dir is None and ctx.data_dir is not None:
                config.data_dir = str(ctx.data_dir)
            tasks = task_names(config.tasks)
            for task, path in _run_data(ctx).items():
                if task in tasks:
                    config.data.setdefault(task, str(path))
            if "perplexity" in tasks:
                config.unigram_corpus = config.unigram_corpus or str(ctx.path("shards"))
            if not ctx.allow_code_execution:
                config.generate_only = True  # pass@k needs the sandbox; the local metrics still count
            output = ctx.path("eval", label)
            options = config.options(
                output,
                allow_code_execution=ctx.allow_code_execution,
                resume=output.exists(),
                progress=sys.stderr.isatty(),
            )
            merged |= run_eval(options, backend)
    finally:
        backend.close()
    return {"summary": str(ctx.path("eval", out, "summary.json")), **headline(merged)}


def headline(summary: dict[str, Any]) -> dict[str, Any]:
    """The report's key figures from a `codelm eval` summary (None where a task did not run)."""
    he, fim, ppl, fim_loss = (
        summary.get(k) or {} for k in ("humaneval", "fim-exact-match", "perplexity", "fim-loss")
    )
    return {
        "humaneval_pass@1": he.get("pass@1"),
        "humaneval_problems": he.get("problems"),
        "syntax_valid": he.get("syntax_valid"),
        "fim_exact_match": fim.get("pass@1"),
        "fim_problems": fim.get("problems"),
        "fim_loss": fim_loss.get("fim_loss"),
        "fim_bits_per_byte": fim_loss.get("bits_per_byte"),
        "perplexity": ppl.get("perplexity"),
        "unigram_perplexity": ppl.get("unigram_perplexity"),
        "bits_per_byte": ppl.get("bits_per_byte"),
        "unigram_bits_per_byte": ppl.get("unigram_bits_per_byte"),
        "heldout_tokens": ppl.get("tokens"),
    }


def step_eval_before(ctx: RunContext, name: str) -> dict[str, Any]:
    return _evaluate(ctx, ctx.recipe.model.init_from or ctx.path("init"), eval_label(name))


def step_eval_stage(ctx: RunContext, name: str) -> dict[str, Any]:
    stage = ctx.recipe.stage(eval_label(name))
    return _evaluate(ctx, ctx.path("stages", stage.name, "final"), stage.name)


def step_eval_after(ctx: RunContext, name: str) -> dict[str, Any]:
    return _evaluate(ctx, final_checkpoint(ctx), eval_label(name))


def step_report(ctx: RunContext, name: str) -> dict[str, Any]:
    from codelm.recipes.report import write_report

    paths = write_report(ctx)
    print(f"\nserve the trained model:\n  {serve_line(ctx)}\n")
    return {"report": [str(p) for p in paths]}


_STEPS: dict[str, Callable[[RunContext, str], dict[str, Any] | None]] = {
    "curate": step_curate,
    "split": step_split,
    "tokenizer": step_tokenizer,
    "pack": step_pack,
    "derive": step_derive,
    "init": step_init,
    "eval-before": step_eval_before,
    "self-play": step_self_play,
    "stage": step_stage,
    "eval": step_eval_stage,
    "eval-after": step_eval_after,
    "report": step_report,
}
