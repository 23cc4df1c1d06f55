"""Commit reading throughput: codelm's `git_commits` reader vs `git log -p` parsed in Python.

Anchor: what a user would write first: one `git log -p` process, its output split into commits
(a marker line in `--format`) and each commit's patch into files in Python. It yields the
message and the patch; it does not fetch the files' content before the change, which the reader
also returns (through `git cat-file --batch`), so the anchor does less work per commit.

Input: a synthetic history built here (deterministic: every commit adds or edits a module of the
running interpreter's standard library; `--commits`, default 300), or `--repo PATH` (any
repository, e.g. codelm's own). Both methods read the same history from HEAD, non-merge commits.
Throughput is commits and MB of patch text per CPU-second (this process plus its git children,
user + system), fastest of `--repeat` runs (default 3) after a warm-up run of each.

Run:  .venv/bin/python bench/commits.py [--repo PATH] [--commits N]
It appends a dated section to bench/RESULTS.md and ends with `RESULT name=commits ratio=... target=1.0`
(ratio: reader commits per CPU-second / anchor's).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import resource
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Callable
from pathlib import Path

from codelm.data.pipeline import run_pipeline
from codelm.data.readers.commits import GitCommitReader

TARGET = 1.0
RESULTS = Path(__file__).with_name("RESULTS.md")
_ENV = {"GIT_AUTHOR_NAME": "Bench", "GIT_AUTHOR_EMAIL": "bench@example.com", "GIT_CONFIG_GLOBAL": os.devnull}
_ENV |= {
    "GIT_COMMITTER_NAME": "Bench",
    "GIT_COMMITTER_EMAIL": "bench@example.com",
    "GIT_CONFIG_NOSYSTEM": "1",
}


def synthetic_history(root: Path, n: int) -> Path:
    """A repository of `n` commits: stdlib modules added, then edited, one per commit."""
    env = {**os.environ, **_ENV}
    run = lambda *a: subprocess.run(["git", "-C", str(root), *a], env=env, check=True, capture_output=True)  # noqa: E731
    root.mkdir(parents=True)
    run("init", "-q", "-b", "main")
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(p for p in stdlib.glob("*.py") if 1_000 < p.stat().st_size < 60_000)
    for i in range(n):
        src = files[i % len(files)]
        text = src.read_text("utf-8", "replace")
        if i >= len(files):  # an edit: a comment line and a renamed local name
            text = text.replace("\n\n\n", f"\n\n\n# revision {i}\n", 1).replace("self", "this", 3)
            text += f"# last revised in round {i // len(files)}\n"
        (root / src.name).write_text(text, "utf-8")
        run("add", "-A")
        run("commit", "-q", "-m", f"Revise {src.stem} for round {i // len(files)}")
    return root


def read_with_codelm(repo: Path) -> tuple[int, int]:
    out, _ = run_pipeline([GitCommitReader(str(repo))])
    n = size = 0
    for doc in out:
        n += 1
        size += len(doc.text.encode("utf-8"))
    return n, size


MARKER = "\x1ecommit\x1e"


def read_with_git_log_p(repo: Path) -> tuple[int, int]:
    """The anchor: `git log -p --no-merges` split into commits, message and per-file patches."""
    fmt = f"{MARKER}%H%n%P%n%aI%n%B{MARKER}"
    proc = subprocess.run(
        ["git", "-C", str(repo), "log", "-p", "--no-merges", "--no-color", f"--format={fmt}"],
        capture_output=True,
        check=True,
    )
    text = proc.stdout.decode("utf-8", "replace")
    parts = text.split(MARKER)[1:]
    n = size = 0
    for header, patch in zip(parts[0::2], parts[1::2], strict=False):
        sha, parents, date, message = header.split("\n", 3)
        files = ["diff --git" + f for f in patch.split("\ndiff --git")[1:]]
        if not files:
            continue
        n += 1
        size += len("".join(files).encode("utf-8"))
    return n, size


def cpu() -> float:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def measure(fn: Callable[[Path], tuple[int, int]], repo: Path, repeat: int) -> tuple[int, int, float]:
    fn(repo)  # warm-up: page cache, imports
    best = float("inf")
    for _ in range(repeat):
        start = cpu()
        n, size = fn(repo)
        best = min(best, cpu() - start)
    return n, size, best


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repo", help="read this repository instead of a synthetic history")
    p.add_argument("--commits", type=int, default=300, help="commits of the synthetic history")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--no-record", action="store_true", help="do not append to bench/RESULTS.md")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(args.repo) if args.repo else synthetic_history(Path(tmp) / "hist", args.commits)
        label = str(args.repo) if args.repo else f"synthetic history of {args.commits} stdlib-module commits"
        ours = measure(read_with_codelm, repo, args.repeat)
        anchor = measure(read_with_git_log_p, repo, args.repeat)
    rows = []
    for name, (n, size, secs) in (
        ("`git log -p` parsed in Python (anchor)", anchor),
        ("`git_commits` reader", ours),
    ):
        rows.append(
            f"| {name} | {n} | {size / 1e6:.1f} | {secs:.2f} | {n / secs:.0f} | {size / 1e6 / secs:.2f} |"
        )
    ratio = (ours[0] / ours[2]) / (anchor[0] / anchor[2])
    load = os.getloadavg()[0]
    section = f"""
## commits (git_commits reader), {datetime.date.today().isoformat()}

Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, load average
{load:.1f} at the start. Input: {label}. CPU = this process and its git children, fastest of
{args.repeat} runs. The reader also returns each changed file's content before the change (the anchor
does not). Command: `python bench/commits.py{" --repo " + args.repo if args.repo else ""}`.

| method | commits | patch MB | CPU s | commits / CPU s | MB / CPU s |
|---|---|---|---|---|---|
{chr(10).join(rows)}

RESULT name=commits ratio={ratio:.2f} target={TARGET}
"""
    print(section)
    if not args.no_record:
        with open(RESULTS, "a", encoding="utf-8") as f:
            f.write(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
