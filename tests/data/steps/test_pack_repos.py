"""PackRepos: one document per repository, family separators, conservation, splitting, shard check."""

import pytest

from codelm.data import DataError, DirectoryReader, Document, run_pipeline
from codelm.data.steps import PackRepos

from ..helpers import write_tree
from ..packing.test_order import REPO


@pytest.fixture
def crawl(tmp_path):
    root = tmp_path / "crawl"
    write_tree(root / "alpha", REPO)
    write_tree(
        root / "beta",
        {
            "main.go": 'package main\nimport "beta/lib"\n',
            "lib/lib.go": "package lib\n",
            "lib/lib_test.go": "package lib\n",
        },
    )
    return root


def test_one_document_per_repo_in_dependency_order(crawl):
    out, stats = run_pipeline([DirectoryReader(crawl), PackRepos("codegemma")])
    docs = {d.id: d for d in out}
    stats.check()
    assert set(docs) == {"alpha", "beta"}
    assert stats["pack_repos"].docs_in == len(REPO) + 3
    assert stats["pack_repos"].kept == 2
    assert stats["pack_repos"].dropped == {"merged_into_repo": len(REPO) + 3 - 2}
    alpha = docs["alpha"]
    assert alpha.metadata["files"][:3] == ["pkg/models.py", "pkg/util.py", "tests/test_util.py"]
    assert alpha.text.startswith("<|file_separator|>pkg/models.py\nfrom pkg.core import Engine\n")
    assert alpha.text.count("<|file_separator|>") == len(REPO)
    assert alpha.language == "python"
    assert docs["beta"].metadata["files"] == ["lib/lib.go", "lib/lib_test.go", "main.go"]


@pytest.mark.parametrize(
    "family, header",
    [
        ("seedcoder", "# pkg/models.py\n"),
        ("codegen1", "# pkg/models.py\n"),
        ("llama", "<file_sep>pkg/models.py\n"),
    ],
)
def test_families_without_separator_get_path_comments(crawl, family, header):
    out, _ = run_pipeline([DirectoryReader(crawl), PackRepos(family)])
    alpha = next(d for d in out if d.id == "alpha")
    assert alpha.text.startswith(header)


def test_max_chars_splits_at_file_boundaries(crawl):
    out, stats = run_pipeline([DirectoryReader(crawl / "alpha", layout="single"), PackRepos(max_chars=200)])
    docs = list(out)
    assert len(docs) > 1 and [d.id for d in docs][:2] == ["alpha#1", "alpha#2"]
    assert sum(len(d.metadata["files"]) for d in docs) == len(REPO)
    stats.check()


def test_quality_is_averaged_and_unknown_family_is_refused():
    docs = [
        Document("x = 1\n", "r/a.py", "r", "a.py", "python", {"quality": 4.0}),
        Document("import a\n", "r/b.py", "r", "b.py", "python", {"quality": 8.0}),
    ]
    (packed,) = list(PackRepos()(iter(docs)))
    assert packed.metadata["quality"] == 6.0 and packed.metadata["files"] == ["a.py", "b.py"]
    with pytest.raises(Exception, match="codegema|unknown|did you mean"):
        PackRepos("codegema")


def test_a_repository_split_across_shards_is_refused():
    step = PackRepos()
    s0 = step.summarize([Document("a", "r/a.py", "r", "a.py")])
    s1 = step.summarize([Document("b", "r/b.py", "r", "b.py")])
    with pytest.raises(DataError, match="'r' is in shards 0 and 1"):
        step.decide([s0, s1], lambda i: iter(()))
