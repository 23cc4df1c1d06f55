"""The packages reader: installed packages by import name, wherever `import` finds them."""

import importlib
import sys
import sysconfig

import pytest

from codelm.data import DataError, DirectoryReader
from codelm.data.readers import PackageReader
from codelm.data.registry import build_reader

from .helpers import read_all, write_tree


@pytest.fixture
def sites(tmp_path, monkeypatch):
    """Two site directories on sys.path, neither of them the interpreter's purelib: a package with a
    cache and a test suite, a plain module, and a namespace package split across both."""
    one, two = tmp_path / "site-one", tmp_path / "site-two"
    write_tree(
        one,
        {
            "zzpkg_alpha/__init__.py": "def f():\n    return 1\n",
            "zzpkg_alpha/sub/mod.py": "X = 2\n",
            "zzpkg_alpha/__pycache__/mod.cpython-311.pyc": b"\x00\x01",
            "zzpkg_alpha/tests/test_f.py": "def test_f():\n    pass\n",
            "zzpkg_alpha/blob.bin": b"\x00binary",
            "zzmod_beta.py": "def g():\n    return 2\n",
            "zzns_gamma/part_a.py": "A = 1\n",
            "unrelated/other.py": "Y = 3\n",
        },
    )
    write_tree(two, {"zzns_gamma/part_b.py": "B = 2\n"})
    monkeypatch.setattr(sys, "path", [str(one), str(two), *sys.path])
    importlib.invalidate_caches()
    yield one, two
    importlib.invalidate_caches()


def test_reads_each_package_where_import_finds_it(sites):
    one, _ = sites
    assert str(one) != sysconfig.get_paths()["purelib"]
    names = ["zzmod_beta", "zzpkg_alpha", "zzns_gamma"]
    reader = PackageReader(names, skip_dirs=[".git", "__pycache__", "tests"])
    docs, stats = read_all(reader)
    assert [d.id for d in docs] == [
        "zzmod_beta/zzmod_beta.py",
        "zzns_gamma/part_a.py",
        "zzns_gamma/part_b.py",
        "zzpkg_alpha/__init__.py",
        "zzpkg_alpha/sub/mod.py",
    ]
    assert {d.repo for d in docs} == {"zzmod_beta", "zzns_gamma", "zzpkg_alpha"}
    assert docs[0].text == "def g():\n    return 2\n" and docs[0].language == "python"
    assert stats.dropped == {"binary": 1}  # blob.bin: counted, not fatal
    assert stats.counters["skipped_dir:tests"] == 1 and stats.counters["skipped_dir:__pycache__"] == 1
    assert not any("unrelated" in d.id for d in docs)  # only the named packages


def test_same_documents_as_the_directory_reader_on_one_site(sites):
    """Where every package sits in one directory, the ids and texts are the directory reader's."""
    one, _ = sites
    pkgs, _ = read_all(PackageReader(["zzpkg_alpha"]))
    tree, _ = read_all(DirectoryReader(one, layout="multi", repos=["zzpkg_alpha"]))
    assert [(d.id, d.text) for d in pkgs] == [(d.id, d.text) for d in tree]


def test_shards_split_by_package_and_cover_everything_once(sites):
    names = ["zzmod_beta", "zzpkg_alpha", "zzns_gamma"]
    whole = {d.id for d in read_all(PackageReader(names))[0]}
    parts = [{d.id for d in read_all(PackageReader(names, shard=(r, 2)))[0]} for r in range(2)]
    assert parts[0] | parts[1] == whole and not parts[0] & parts[1]


@pytest.mark.parametrize(
    "names, message",
    [
        (["zz_nowhere"], "no installed Python package or module named 'zz_nowhere'"),
        (["sys"], "'sys' has no files to read"),
        (["os.path"], "not a top-level import name"),
        (["../etc"], "not a top-level import name"),
        ("zzpkg_alpha", "non-empty list"),
        ([], "non-empty list"),
        ({"zzpkg_alpha": 1}, "non-empty list"),
        ([1], "1 is not a top-level import name"),
    ],
)
def test_bad_names_are_one_line_errors(sites, names, message):
    with pytest.raises(DataError, match=message):
        PackageReader(names)


def test_registered_with_its_own_settings_only(sites):
    reader = build_reader("packages", {"names": ["zzmod_beta"], "max_bytes": 4096})
    assert isinstance(reader, PackageReader) and reader.max_bytes == 4096
    with pytest.raises(DataError, match=r"unknown setting\(s\) \['root'\]"):
        build_reader("packages", {"names": ["zzmod_beta"], "root": "/"})
