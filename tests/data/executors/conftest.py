"""A crawl of small repositories made from stdlib modules, with copies across repositories."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from ..conftest import stdlib_py_files
from ..helpers import write_tree


def make_crawl(root: Path, n_repos: int = 10) -> Path:
    files = stdlib_py_files(30, max_bytes=12_000)
    for i, src in enumerate(files):
        write_tree(root, {f"repo{i % n_repos:02d}/{src.name}": src.read_text("utf-8")})
    text = files[0].read_text("utf-8")
    # copies far apart: repo09 is in another shard than repo00 for any shard count that is not 1 or 9
    write_tree(
        root,
        {
            "repo09/copy_of_first.py": text,  # exact duplicate of repo00's file
            "repo05/fork_of_first.py": "# a fork\n"
            + text.replace("def ", "def  ", 1)
            + "\nEXTRA = 1\n",  # near
            "repo03/notes.txt": "not python\n",
            "repo07/blob.bin": b"\x00\x01binary",
            "repo02/contact.py": 'OWNER = "jane.doe@gmail.com"\n\n\ndef owner():\n    return OWNER\n',
        },
    )
    return root


@pytest.fixture(scope="module")
def crawl(tmp_path_factory) -> Path:
    return make_crawl(tmp_path_factory.mktemp("crawl"))


def read_output(out: Path) -> list[dict]:
    """Every output document of a run, as dicts, in shard order."""
    rows = []
    for path in sorted((out / "data").glob("shard-*.jsonl.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as f:
            rows += [json.loads(line) for line in f]
    return rows


def shard_bytes(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((out / "data").iterdir())}
