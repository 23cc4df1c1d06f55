"""`codelm data curate` end to end on a hostile tree: it never crashes, and reruns are byte-identical.

The tree holds what real crawls hold (a file name that is not UTF-8, `__pycache__`, binary and
broken files, a Rust macro the grammar mis-parses). Two identical runs must give identical bytes
in every output file, excluded documents and report included; only timings.json, the one place
wall-clock time is written, may differ.
"""

import gzip
import json
import os
import shutil
from pathlib import Path

import pytest
import yaml

from codelm.data.curate import main

from .helpers import write_tree

#: files a run writes that may differ between identical runs (documented in docs/data.md)
TIMING_FILES = {"timings.json"}


def make_tree(root: Path) -> Path:
    write_tree(
        root,
        {
            "app/main.py": "def main():\n    return 1\n",
            "app/broken.py": "def f(:\n",
            "app/logo.png": b"\x89PNG\r\n\x1a\n\x00\x00",
            "app/__pycache__/main.cpython-311.pyc": b"\xa7\r\r\n\x00\x00\x00\x00",
            "lib/src/lib.rs": "macro_rules! t { [~] => { () }; [$] => { () }; }\npub fn f() {}\n",
            "lib/.git/HEAD": "ref: refs/heads/main\n",
        },
    )
    try:
        with open(os.path.join(os.fsencode(root), b"app/caf\xe9.py"), "wb") as f:
            f.write(b"CAFE = 1\n")
    except OSError as e:  # macOS (APFS) and some network filesystems insist on UTF-8 names
        pytest.skip(f"this filesystem refuses non-UTF-8 file names: {e}")
    return root


def curate(config: Path, *flags: str) -> int:
    return main([str(config), "--no-progress", *flags])


def all_bytes(out: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(out)): p.read_bytes()
        for p in sorted(out.rglob("*"))
        if p.is_file() and p.name not in TIMING_FILES
    }


@pytest.fixture
def config(tmp_path) -> Path:
    pytest.importorskip("matplotlib", reason="the report needs matplotlib")
    pytest.importorskip("tree_sitter_language_pack", reason="the syntax filter needs tree-sitter")
    tree = make_tree(tmp_path / "crawl")
    path = tmp_path / "curate.yaml"
    raw = {
        "output_dir": str(tmp_path / "out"),
        "write_excluded": True,
        "report": True,
        "executor": {"kind": "local", "workers": 1, "shards": 2},
        "readers": [{"directory": {"root": str(tree), "layout": "multi"}}],
        "steps": ["syntax_filter", "exact_dedup"],
    }
    path.write_text(yaml.safe_dump(raw))
    return path


def test_identical_runs_give_identical_bytes(config, tmp_path, capsys):
    out = tmp_path / "out"
    assert curate(config) == 0
    first = all_bytes(out)
    shutil.move(out, tmp_path / "first")
    assert curate(config) == 0
    second = all_bytes(out)
    assert sorted(first) == sorted(second)
    assert any(name.startswith("excluded/") for name in first)  # the outputs that used to differ
    assert {"stats.json", "report.md", "report.html"} <= set(first)
    assert [n for n in first if first[n] != second[n]] == []
    assert "wall_time_s" in json.loads((out / "timings.json").read_text())
    assert "wall_time_s" not in json.loads((out / "stats.json").read_text())


def test_hostile_tree_is_curated_and_resumable(config, tmp_path, capsys):
    out = tmp_path / "out"
    assert curate(config) == 0
    stats = {s["name"]: s for s in json.loads((out / "stats.json").read_text())["steps"]}
    reader = stats["directory_reader"]
    # __pycache__ and .git are skipped before reading: counted apart, never as binary input
    assert reader["docs_in"] == 5 and reader["dropped"] == {"binary": 1}
    assert reader["counters"] == {"non_utf8_name": 1, "skipped_dir:.git": 1, "skipped_dir:__pycache__": 1}
    assert stats["syntax_filter"]["dropped"] == {"syntax_error": 1}  # broken.py, not lib.rs
    assert stats["syntax_filter"]["counters"]["repaired:rust"] == 1
    kept = []
    for shard in sorted((out / "data").glob("*.jsonl.gz")):
        with gzip.open(shard, "rt", encoding="utf-8") as f:
            kept += [json.loads(line) for line in f]
    cafe = next(d for d in kept if d["path"] == "caf\\xe9.py")
    assert bytes.fromhex(cafe["metadata"]["path_bytes"]) == b"caf\xe9.py"
    assert "skipped_dir:__pycache__=1" in (out / "report.md").read_text()

    capsys.readouterr()
    assert curate(config) == 1  # the run exists: the hint names the real flags
    err = capsys.readouterr().err
    assert "--resume" in err and "--overwrite" in err and "Traceback" not in err
    assert curate(config, "--resume") == 0
    assert "resume:" in capsys.readouterr().out
