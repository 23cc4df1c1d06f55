"""Argument wiring for `codelm run`; light to import (the planner and runner load torch only when used).

codelm run [RECIPE] [--scale tiny | --no-auto-scale] [--dry-run] [--set key=value ...] [--print-config]
codelm run --allow-code-execution --run-dir runs/tiny          # the main job
"""

from __future__ import annotations


def add_run_args(p) -> None:
    p.add_argument(
        "recipe", nargs="?", help="recipe YAML (recipes/*.yaml; default: the built-in tiny recipe)"
    )
    p.add_argument(
        "--dry-run", action="store_true", help="print the plan: parameters, tokens, FLOPs, GPU-hours"
    )
    p.add_argument("--scale", help="apply the recipe's named scale first (e.g. tiny)")
    p.add_argument(
        "--no-auto-scale",
        action="store_true",
        help="without --scale, run the recipe as written even where its auto_scales picks a scale",
    )
    p.add_argument("--gpus", type=int, help="plan for this many GPUs")
    p.add_argument("--mfu", type=float, help="plan at this model FLOPs utilization")
    p.add_argument("--run-dir", help="where every artifact and the log go (default: runs/<recipe name>)")
    p.add_argument("--from", dest="from_step", help="redo this step and every one after it")
    p.add_argument("--only", help="run only this step")
    p.add_argument(
        "--allow-code-execution",
        action="store_true",
        help="let the run execute code in the sandbox (doctest-derived DPO data, HumanEval)",
    )
    p.add_argument(
        "--data-dir", help="benchmark files for decontamination and evaluation (default: the bundled ones)"
    )
    from codelm.config import add_config_args

    add_config_args(p, "recipe", file=False)  # e.g. --set stages.pretrain.tokens=2e6


def run_from_args(args) -> None:
    import sys
    from dataclasses import replace
    from importlib import resources

    from codelm.config import ConfigError, dump, read_yaml
    from codelm.recipes.schema import auto_scale, parse_recipe

    path = args.recipe or str(resources.files("codelm.recipes").joinpath("tiny.yaml"))
    raw = read_yaml(path, "recipe")
    scale = args.scale
    if scale is None and not args.no_auto_scale:
        scale = auto_scale(raw)
        if scale:
            print(
                f"codelm run: bf16 is native here: the recipe's scale {scale!r} (its auto_scales; "
                "--no-auto-scale runs the recipe as written)",
                file=sys.stderr,
            )
    recipe = parse_recipe(raw, scale=scale, overrides=args.overrides)
    if args.print_config:
        print(dump(recipe), end="")
        return
    hw = recipe.hardware
    for flag, value in (("--gpus", args.gpus), ("--mfu", args.mfu)):
        if value is not None and value <= 0:
            raise ConfigError(f"{flag} must be positive, got {value}")
    recipe.hardware = replace(
        hw,
        gpus=args.gpus if args.gpus is not None else hw.gpus,
        mfu=args.mfu if args.mfu is not None else hw.mfu,
    )
    if args.dry_run:
        from codelm.recipes.plan import plan, render

        print(render(plan(recipe)))
        return
    from codelm.recipes.runner import run_recipe

    run_recipe(
        recipe,
        args.run_dir or f"runs/{recipe.name}",
        from_step=args.from_step,
        only=args.only,
        allow_code_execution=args.allow_code_execution,
        data_dir=args.data_dir,
        scale=scale,
    )
