"""`codelm data curate CONFIG.yaml`: run a whole curation from one YAML file.

    codelm data curate configs/data/stdlib.yaml --workers 2
    codelm data curate configs/data/stdlib.yaml --resume                # after a crash or Ctrl-C
    codelm data curate cfg.yaml --executor ray --set steps.near_dedup.threshold=0.8
    python -m codelm.data.curate cfg.yaml ...                           # same, without the CLI

Reads the config (`curate_config`), builds readers and steps (`registry`), runs them with the
chosen executor (`executors`), and writes OUT/stats.json, OUT/report.md and OUT/report.html.
cli.py only adds the parser of `add_curate_args` and calls `curate_from_args`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from codelm.data.curate_config import CurateConfig, load_config
from codelm.data.executors import EXECUTORS, fingerprint_of, make_executor, remove_run
from codelm.data.stats import PipelineStats


def add_curate_args(p: argparse.ArgumentParser) -> None:
    """The flags of `codelm data curate` (cli.py calls this, then `curate_from_args`)."""
    p.add_argument("config", help="curation YAML (see docs/data.md)")
    p.add_argument("--workers", type=int, help="parallel worker processes / Ray CPUs (default: config)")
    p.add_argument("--executor", choices=EXECUTORS, help="local processes or ray (default: config)")
    p.add_argument("--shards", type=int, help="input shards; fixed for a run (default: config)")
    p.add_argument("--output-dir", help="output directory (default: the config's output_dir)")
    p.add_argument("--resume", action="store_true", help="continue the run in the output directory")
    p.add_argument("--overwrite", action="store_true", help="delete a previous run in the output directory")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. executor.shards=16 or steps.near_dedup.threshold=0.8",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars (logs, CI)")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")


def _with_flags(args: argparse.Namespace) -> CurateConfig:
    overrides = list(args.set)
    for flag, key in (
        ("workers", "executor.workers"),
        ("executor", "executor.kind"),
        ("shards", "executor.shards"),
        ("output_dir", "output_dir"),
    ):
        if getattr(args, flag, None) is not None:
            overrides.append(f"{key}={getattr(args, flag)}")
    return load_config(args.config, overrides)


def curate(
    config: CurateConfig, *, resume: bool = False, overwrite: bool = False, progress: bool = False
) -> tuple[PipelineStats, list[str]]:
    """Run `config`; writes stats.json and, if `config.report`, report.md/.html under output_dir.

    Returns the merged stats and what a resumed run found already done.
    """
    if overwrite:
        remove_run(config.output_dir)
    ex = config.executor
    executor = make_executor(
        ex.kind,
        config.output_dir,
        shards=ex.shards,
        workers=ex.workers,
        address=ex.address,
        output_format=config.output_format,
        write_excluded=config.write_excluded,
        resume=resume,
        keep_intermediate=config.keep_intermediate,
        progress=progress,
        fingerprint=fingerprint_of(config.identity()),
    )
    stats = executor.run(config.build())
    if config.report:
        from codelm.data.report import write_report

        write_report(config.output_dir)
    return stats, executor.skipped


def curate_from_args(args: argparse.Namespace) -> Path | None:
    """Entry point of `codelm data curate`; prints the per-step summary, returns the output dir."""
    config = _with_flags(args)
    if getattr(args, "print_config", False):
        import yaml

        print(yaml.safe_dump(config.to_raw(), sort_keys=False, allow_unicode=True), end="")
        return None
    stats, skipped = curate(
        config,
        resume=args.resume,
        overwrite=args.overwrite,
        progress=not args.no_progress and sys.stderr.isatty(),
    )
    out = Path(config.output_dir)
    for line in skipped:
        print(f"resume: {line}")
    print(stats.summary())
    print(
        f"output: {out / 'data'}  stats: {out / 'stats.json'}"
        + (f"  report: {out / 'report.html'}" if config.report else "")
    )
    return out


def main(argv: Sequence[str] | None = None) -> int:
    from codelm.errors import CodelmError

    parser = argparse.ArgumentParser(prog="python -m codelm.data.curate", description=__doc__.splitlines()[0])
    add_curate_args(parser)
    args = parser.parse_args(argv)
    try:
        curate_from_args(args)
    except CodelmError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
