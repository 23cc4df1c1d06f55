"""Readers: directory trees and git checkouts, JSONL, Parquet; bad files are counted, never fatal."""

import gzip
import json

import pytest

from codelm.data import DataError, DirectoryReader, HubReader, JsonlReader, ParquetReader
from codelm.data.readers import decode_text, git_head

from .helpers import read_all, write_tree

SHA = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def repos(tmp_path):
    """Two repositories side by side, one a git checkout, with every kind of file a crawl meets."""
    root = tmp_path / "repos"
    write_tree(
        root,
        {
            "alpha/.git/HEAD": "ref: refs/heads/main\n",
            "alpha/.git/refs/heads/main": SHA + "\n",
            "alpha/.git/objects/ab/cdef": b"\x78\x01binary git object",
            "alpha/src/app.py": "def main():\n    return 1\n",
            "alpha/Makefile": "all:\n\techo hi\n",
            "alpha/bin/tool": "#!/usr/bin/env python3\nprint('x')\n",
            "alpha/logo.png": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
            "alpha/latin1.c": "/* caf\xe9 */ int x;\n".encode("latin-1"),
            "alpha/big.js": "x" * 5000,
            "beta/lib/util.go": "package lib\n",
            "beta/README.md": "# beta\n",
            "top.txt": "loose file\n",
        },
    )
    (root / "beta" / "link.py").symlink_to(root / "alpha" / "src" / "app.py")
    return root


def test_multi_repo_tree(repos):
    docs, stats = read_all(DirectoryReader(repos, max_bytes=4096))
    by_id = {d.id: d for d in docs}
    assert sorted(by_id) == [
        "alpha/Makefile",
        "alpha/bin/tool",
        "alpha/src/app.py",
        "beta/README.md",
        "beta/lib/util.go",
        "repos/top.txt",
    ]
    assert stats.dropped == {"binary": 1, "invalid_utf8": 1, "too_large": 1, "symlink": 1}
    assert stats.docs_in == 10  # nothing under .git was even looked at
    app = by_id["alpha/src/app.py"]
    assert (app.repo, app.path, app.language) == ("alpha", "src/app.py", "python")
    assert app.metadata["commit"] == SHA
    assert by_id["alpha/Makefile"].language == "makefile"
    assert by_id["alpha/bin/tool"].language == "python"
    assert by_id["beta/lib/util.go"].language == "go"


def test_single_repo_auto_detected_from_git(repos):
    docs, _ = read_all(DirectoryReader(repos / "alpha"))
    assert all(d.repo == "alpha" for d in docs)
    assert {d.path for d in docs} >= {"src/app.py", "Makefile"}


def test_sharding_by_repository_covers_everything_once(repos):
    full, _ = read_all(DirectoryReader(repos))
    shards = [read_all(DirectoryReader(repos, shard=(r, 3)))[0] for r in range(3)]
    ids = [d.id for s in shards for d in s]
    assert sorted(ids) == sorted(d.id for d in full)
    # a repository never spans two shards
    repos_per_shard = [{d.repo for d in s} for s in shards]
    assert sum(len(r) for r in repos_per_shard) == len(set().union(*repos_per_shard))


def test_reader_errors(tmp_path):
    with pytest.raises(DataError, match="not a directory"):
        DirectoryReader(tmp_path / "nope")
    with pytest.raises(DataError, match="shard"):
        DirectoryReader(tmp_path, shard=(3, 2))
    with pytest.raises(DataError, match="no such file"):
        JsonlReader(tmp_path / "missing.jsonl")


def test_git_head_variants(tmp_path):
    write_tree(
        tmp_path,
        {
            "a/.git/HEAD": SHA + "\n",
            "b/.git/HEAD": "ref: refs/heads/dev\n",
            "b/.git/packed-refs": f"# pack-refs\n{SHA} refs/heads/dev\n",
            "c/.git/HEAD": "ref: refs/heads/main\n",
        },
    )
    assert git_head(tmp_path / "a") == SHA  # detached
    assert git_head(tmp_path / "b") == SHA  # packed ref
    assert git_head(tmp_path / "c") is None  # no commit yet
    assert git_head(tmp_path) is None  # not a repository


def test_decode_text():
    assert decode_text("\ufeffx = 1".encode()) == "x = 1"
    assert decode_text(b"a\x00b")[0] == "binary"
    assert decode_text(b"\xff\xfe")[0] == "invalid_utf8"
    assert decode_text(b"12345", max_bytes=4)[0] == "too_large"


def test_jsonl_reader_with_gzip_and_bad_lines(tmp_path):
    rows = [
        {"content": "x = 1\n", "max_stars_repo_name": "o/r", "max_stars_repo_path": "a.py", "stars": 4},
        {"text": "fn main() {}", "id": "k1", "language": "Rust"},
        {"id": "no-text"},
    ]
    lines = [json.dumps(r) for r in rows] + ["{not json", "", json.dumps([1, 2])]
    path = tmp_path / "part.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    with gzip.open(path, "ab") as f:
        f.write(b'{"text": "\xff"}\n')
    docs, stats = read_all(JsonlReader(path))
    assert [(d.id, d.repo, d.path, d.language) for d in docs] == [
        ("part.jsonl.gz:1", "o/r", "a.py", "python"),
        ("k1", None, None, "rust"),
    ]
    assert docs[0].metadata == {"stars": 4}
    assert stats.dropped == {"missing_text": 1, "invalid_json": 2, "invalid_utf8": 1}


def test_jsonl_named_fields_and_shards(tmp_path):
    for i in range(4):
        (tmp_path / f"{i}.jsonl").write_text(json.dumps({"body": f"v = {i}", "key": f"id{i}"}) + "\n")
    paths = sorted(tmp_path.glob("*.jsonl"))
    got = []
    for r in range(2):
        docs, _ = read_all(JsonlReader(paths, text_key="body", id_key="key", shard=(r, 2)))
        got += [d.id for d in docs]
    assert sorted(got) == ["id0", "id1", "id2", "id3"]


def test_parquet_reader(tmp_path):
    pa = pytest.importorskip("pyarrow", reason="pyarrow not installed (the data extra)")
    import pyarrow.parquet as pq

    table = pa.table(
        {
            "content": [b"int main() { return 0; }\n", b"\xff\xfe bad", b"x" * 50],
            "path": ["m.c", "bad.c", "big.txt"],
            "repo_name": ["o/c", "o/c", "o/c"],
        }
    )
    pq.write_table(table, tmp_path / "s.parquet")
    docs, stats = read_all(ParquetReader(tmp_path / "s.parquet", max_bytes=40, batch_size=2))
    assert [(d.id, d.language, d.repo) for d in docs] == [("s.parquet:0", "c", "o/c")]
    assert stats.dropped == {"invalid_utf8": 1, "too_large": 1}


def test_hub_reader_without_datasets_says_how_to_install():
    try:
        import datasets  # noqa: F401
    except ImportError:
        with pytest.raises(DataError, match="pip install datasets"):
            list(HubReader("bigcode/the-stack-smol")(iter(())))
    else:
        pytest.skip("datasets is installed; reading the hub needs the network, not available in tests")


def test_only_named_repositories_and_skipped_dirs(repos):
    docs, _ = read_all(DirectoryReader(repos, repos=["beta", "repos"], max_bytes=4096))
    assert sorted(d.id for d in docs) == ["beta/README.md", "beta/lib/util.go", "repos/top.txt"]
    docs, _ = read_all(DirectoryReader(repos, skip_dirs=[".git", "lib", "src"], max_bytes=4096))
    assert not any("/lib/" in d.id or "/src/" in d.id for d in docs)
    with pytest.raises(DataError, match="no repositories named"):
        DirectoryReader(repos, repos=["gamma"]).repositories()


def test_jsonl_lone_surrogates_are_dropped_not_fatal(tmp_path):
    from codelm.data import JsonlWriter

    path = tmp_path / "a.jsonl"
    # valid JSON, but "\ud800" decodes to a lone surrogate: not text, and no UTF-8 writer takes it
    path.write_text('{"text": "x = \\ud800"}\n{"text": "ok", "path": "p\\udcff.py"}\n{"text": "fine"}\n')
    excluded = tmp_path / "ex.jsonl.gz"
    docs, stats = read_all(JsonlReader(path, exclusion_writer=JsonlWriter(excluded)))
    assert [d.text for d in docs] == ["fine"]
    assert stats.dropped == {"invalid_unicode": 2}
    with gzip.open(excluded, "rt", encoding="utf-8") as f:
        assert [json.loads(line)["text"] for line in f] == ["", ""]
