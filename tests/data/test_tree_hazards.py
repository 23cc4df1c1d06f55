"""DirectoryReader on what real trees hold: undecodable names, caches, paths past the OS limit.

Each test builds its tree in tmp_path and checks that reading never raises, that nothing is lost
silently (every skip is counted), and that what is kept can be written and read back.
"""

import errno
import gzip
import json
import os
import shutil

import pytest

from codelm.data import DirectoryReader, JsonlWriter
from codelm.data.readers.tree import SKIP_DIRS, printable_name

from .helpers import read_all, write_tree


def make_non_utf8_file(root, rel: bytes, content: bytes) -> None:
    """Create root/rel, whose name is raw bytes; skip (visibly) where the filesystem refuses them."""
    path = os.path.join(os.fsencode(root), rel)
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(content)
    except OSError as e:  # macOS (APFS) and some network filesystems insist on UTF-8 names
        pytest.skip(f"this filesystem refuses non-UTF-8 file names: {e}")


def test_printable_name():
    assert printable_name("ok.py") == ("ok.py", None)
    assert printable_name("héllo.py") == ("héllo.py", None)
    assert printable_name(os.fsdecode(b"bad\xff.py")) == ("bad\\xff.py", "626164ff2e7079")


def test_non_utf8_file_name_is_kept_and_writable(tmp_path):
    root = tmp_path / "crawl"
    write_tree(root, {"r1/ok.py": "x = 1\n"})
    make_non_utf8_file(root, b"r1/bad\xff.py", b"y = 2\n")
    make_non_utf8_file(root, b"r\xe9po/m.py", b"z = 3\n")  # a Latin-1 repository name

    reader = DirectoryReader(root, exclusion_writer=JsonlWriter(tmp_path / "ex.jsonl.gz"))
    docs, stats = read_all(reader)
    by_id = {d.id: d for d in docs}
    assert sorted(by_id) == ["r1/bad\\xff.py", "r1/ok.py", "r\\xe9po/m.py"]
    bad = by_id["r1/bad\\xff.py"]
    assert (bad.path, bad.text, bad.language) == ("bad\\xff.py", "y = 2\n", "python")
    assert bytes.fromhex(bad.metadata["path_bytes"]) == b"bad\xff.py"  # the exact name survives
    assert bytes.fromhex(by_id["r\\xe9po/m.py"].metadata["repo_bytes"]) == b"r\xe9po"
    assert stats.counters["non_utf8_name"] == 2

    out = tmp_path / "out.jsonl.gz"  # this write raised UnicodeEncodeError before
    with JsonlWriter(out) as w:
        for d in docs:
            w.write(d)
    with gzip.open(out, "rt", encoding="utf-8") as f:
        assert [json.loads(line)["id"] for line in f] == [d.id for d in docs]


def test_cache_and_vcs_directories_are_skipped_and_counted(tmp_path):
    root = write_tree(
        tmp_path / "crawl",
        {
            "__pycache__/top.cpython-311.pyc": b"\x00\x01pyc",  # a top-level "repository"
            "app/mod.py": "x = 1\n",
            "app/__pycache__/mod.cpython-311.pyc": b"\x00\x01pyc",
            "app/pkg/__pycache__/a.cpython-311.pyc": b"\x00\x01pyc",
            "app/.mypy_cache/3.11/mod.data.json": "{}",
            "app/.pytest_cache/v/cache/lastfailed": "{}",
            "app/node_modules/left-pad/index.js": "module.exports = 1;\n",
            "app/.hg/store/data": b"\x00",
            "web/index.js": "export const a = 1;\n",
        },
    )
    assert {"__pycache__", ".git", "node_modules", ".tox"} <= SKIP_DIRS
    shards = [read_all(DirectoryReader(root, shard=(r, 2))) for r in range(2)]
    ids = sorted(d.id for docs, _ in shards for d in docs)
    assert ids == ["app/mod.py", "web/index.js"]
    # never read, so never counted as binary input
    assert sum(s.docs_in for _, s in shards) == 2 and not any(s.dropped for _, s in shards)
    counters = shards[0][1].counters + shards[1][1].counters
    assert counters == {
        "skipped_dir:__pycache__": 3,  # the top-level one counted once, not once per shard
        "skipped_dir:.mypy_cache": 1,
        "skipped_dir:.pytest_cache": 1,
        "skipped_dir:node_modules": 1,
        "skipped_dir:.hg": 1,
    }
    # a caller can still read a cache directory on purpose
    docs, _ = read_all(DirectoryReader(root / "app", layout="single", skip_dirs=[".hg"]))
    assert "app/node_modules/left-pad/index.js" in {d.id for d in docs}


def _deep_tree(root, levels: int, component: str, file_name: str) -> None:
    """A chain of `levels` nested directories with a file in each, made through directory fds
    (a path this long cannot be passed to mkdir in one piece)."""
    root.mkdir()
    fd = os.open(root, os.O_RDONLY)
    try:
        for _ in range(levels):
            file_fd = os.open(file_name, os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
            os.write(file_fd, b"x = 1\n")
            os.close(file_fd)
            os.mkdir(component, dir_fd=fd)
            child = os.open(component, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = child
    finally:
        os.close(fd)


def test_tree_deeper_than_the_path_limit_is_skipped_and_counted(tmp_path):
    if not hasattr(os, "O_DIRECTORY") or os.open not in os.supports_dir_fd:
        pytest.skip("needs dir_fd support (POSIX) to build a tree deeper than PATH_MAX")
    root = tmp_path / "deep"
    # 30 levels of 200 characters: over 6000 bytes, past Linux's 4096 and macOS's 1024
    component, file_name = "d" * 200, "f" * 240 + ".py"
    _deep_tree(root, 30, component, file_name)
    try:
        with pytest.raises(OSError) as e:  # the premise: such a path cannot be used whole
            (root / "/".join([component] * 29) / file_name).stat()
        assert e.value.errno == errno.ENAMETOOLONG
        docs, stats = read_all(DirectoryReader(root, layout="single"))
        assert docs and all(d.text == "x = 1\n" for d in docs)  # the shallow files are read
        assert stats.dropped.get("path_too_long", 0) >= 1  # a file whose own path is too long
        assert stats.counters["path_too_long_dirs"] >= 1  # a directory that could not be listed
        assert len(docs) + stats.dropped["path_too_long"] < 30  # deeper ones were never reached
    finally:
        shutil.rmtree(root)  # fd-based on Linux, so it copes with the depth
