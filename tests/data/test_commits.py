"""The git_commits reader on awkward histories: every rule applied and counted, bare = working copy."""

from __future__ import annotations

import pytest

from codelm.data import DataError, run_pipeline
from codelm.data.readers.commits import GitCommitReader

from .git_repos import awkward_repo, commit, git, init, needs_git

pytestmark = needs_git


@pytest.fixture(scope="module")
def awkward(tmp_path_factory):
    return awkward_repo(tmp_path_factory.mktemp("git"))


@pytest.fixture(scope="module")
def read(awkward):
    repo, shas = awkward
    out, stats = run_pipeline([GitCommitReader(str(repo))])
    docs = {d.metadata["sha"]: d for d in out}
    return docs, stats["git_commit_reader"], shas


def test_every_commit_is_read_or_dropped_with_a_reason(read):
    docs, stats, shas = read
    stats.check()
    assert stats.docs_in == len(shas)
    assert dict(stats.dropped) == {
        "merge_commit": 1,
        "binary_only": 1,
        "too_large": 1,
        "non_utf8_message": 1,
        "empty_diff": 1,
        "non_utf8_diff": 1,
    }
    assert set(docs) == {
        shas[k] for k in ("add", "edit", "rename", "latin1_name", "empty_msg", "bot", "side")
    }
    assert stats.counters["binary_file_changes"] == 2  # logo.png added, then changed
    assert stats.counters["non_utf8_name"] == 1 and stats.counters["non_utf8_file_changes"] == 1


def test_a_commit_document(read, awkward):
    docs, _, shas = read
    edit = docs[shas["edit"]]
    assert edit.id == f"proj@{shas['edit']}" and edit.repo == "proj" and edit.language == "python"
    meta = edit.metadata
    assert meta["message"].startswith("Use math.pi") and meta["parents"] == [shas["add"]]
    assert meta["author_date"][:4].isdigit() and meta["repo_commits"] == len(shas)
    [f] = meta["files"]
    assert f["path"] == "geo/circle.py" and f["status"] == "M" and "3.14159 * r * r" in f["before"]
    assert "-    return 3.14159 * r * r\n" in edit.text and "+import math\n" in edit.text
    assert "index " not in edit.text  # blob ids are noise


def test_renames_binaries_and_names(read):
    docs, _, shas = read
    [renamed] = docs[shas["rename"]].metadata["files"]
    assert renamed["status"] == "R" and renamed["old_path"] == "geo/circle.py" and renamed["before"]
    assert "rename from geo/circle.py" in docs[shas["rename"]].text
    added = docs[shas["add"]]
    assert [f["path"] for f in added.metadata["files"]] == ["geo/circle.py"]  # logo.png left out
    assert "PNG" not in added.text
    [named] = docs[shas["latin1_name"]].metadata["files"]
    assert named["path"] == "caf\\xe9.py" and named["path_bytes"] == b"caf\xe9.py".hex()
    assert docs[shas["empty_msg"]].metadata["message"] == ""  # kept here; commit_filter judges it


def test_bare_repository_reads_the_same(read, awkward, tmp_path):
    repo, _ = awkward
    bare = tmp_path / "proj.git"
    git(tmp_path, "clone", "-q", "--bare", str(repo), str(bare))
    out, stats = run_pipeline([GitCommitReader(str(bare))])
    docs = {d.metadata["sha"]: d.to_dict() for d in out}
    assert docs == {sha: d.to_dict() for sha, d in read[0].items()}  # repo name "proj" both times
    assert stats["git_commit_reader"].dropped == read[1].dropped


def test_shards_partition_the_history(read, awkward):
    repo, _ = awkward
    ids = []
    for rank in range(3):
        out, _ = run_pipeline([GitCommitReader(str(repo), shard=(rank, 3))])
        ids += [d.id for d in out]
    assert sorted(ids) == sorted(d.id for d in read[0].values())


def test_empty_repository_and_bad_input(tmp_path):
    empty = init(tmp_path / "empty")
    out, stats = run_pipeline([GitCommitReader(str(empty))])
    assert list(out) == [] and stats["git_commit_reader"].counters["empty_repository"] == 1
    (tmp_path / "plain").mkdir()
    with pytest.raises(DataError, match="not a git repository"):
        list(run_pipeline([GitCommitReader(str(tmp_path / "plain"))])[0])
    with pytest.raises(DataError, match="not a directory"):
        GitCommitReader(str(tmp_path / "missing"))
    with pytest.raises(DataError, match="no commit named 'nope'"):
        list(run_pipeline([GitCommitReader(str(empty), rev="nope")])[0])


def test_submodules_and_missing_blobs(tmp_path):
    repo = init(tmp_path / "sub")
    commit(repo, {"README.md": "# a project with a vendored submodule\n"}, "Start the project readme file")
    for i, sha in enumerate(("1" * 40, "2" * 40)):  # gitlinks need no real submodule repository
        git(repo, "update-index", "--add", "--cacheinfo", f"160000,{sha},vendor/lib")
        git(repo, "commit", "-q", "-m", f"Pin the vendored library to revision {i}")
    out, stats = run_pipeline([GitCommitReader(str(repo))])
    docs = list(out)
    [bump] = [d for d in docs if d.metadata["message"].endswith("revision 1")]
    assert bump.metadata["files"] == [
        {"path": "vendor/lib", "status": "M", "before": None, "before_omitted": "submodule"}
    ]
    assert "-Subproject commit 1111111111111111111111111111111111111111" in bump.text
    from codelm.data.readers.git import BlobReader

    blobs = BlobReader(repo)
    try:
        assert blobs.read("3" * 40) is None  # what a partial clone answers for an absent blob
    finally:
        blobs.close()


def test_file_content_cannot_forge_a_commit_boundary(tmp_path):
    """The log stream is framed by a marker with NULs and a nonce: a text file whose NULs come
    after git's 8,000-byte binary check, spelling the marker's fixed part, stays inside its commit."""
    repo = init(tmp_path / "forge")
    forged = "x" * 9000 + "\n\0\0codelm-commit-" + "0" * 32 + "\0" + "a" * 40 + "\0\n"
    commit(repo, {"first.txt": "one\n"}, "Add the first text file here")
    commit(repo, {"forged.txt": forged}, "Add a file spelling the commit marker")
    commit(repo, {"last.txt": "three\n"}, "Add the last text file here")
    out, stats = run_pipeline([GitCommitReader(str(repo))])
    docs = {d.metadata["message"]: d for d in out}
    assert stats["git_commit_reader"].docs_in == 3 and len(docs) == 3
    assert "codelm-commit-" in docs["Add a file spelling the commit marker"].text


def test_user_diff_config_does_not_change_the_patch(read, awkward, tmp_path):
    """`git log` reads diff settings from the repository's config; every one that shapes a patch
    is overridden, so a repository configured otherwise reads the same."""
    repo, _ = awkward
    clone = tmp_path / "configured"
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    for key, value in (
        ("diff.noprefix", "true"),
        ("diff.algorithm", "histogram"),
        ("diff.context", "7"),
        ("diff.submodule", "log"),
        ("diff.renames", "false"),
        ("log.showRoot", "false"),
    ):
        git(clone, "config", key, value)
    out, _ = run_pipeline([GitCommitReader(str(clone))])
    got = {d.metadata["sha"]: (d.text, d.metadata["files"]) for d in out}
    assert got == {sha: (d.text, d.metadata["files"]) for sha, d in read[0].items()}


def test_related_files_by_bm25_readme_and_tree(tmp_path):
    """Seed-Coder's commit context (report 2.2.2): the parent's README, directory listing and the
    files BM25 ranks most related to the change; the changed file itself is no candidate."""
    pytest.importorskip("bm25s")
    from codelm.data.steps.commit_format import CommitFormat

    repo = init(tmp_path / "geo")
    circle = "def area(r):\n    return 3.14159 * r * r\n"
    commit(
        repo,
        {
            "README.md": "# geo\nGeometry helpers.\n",
            "geo/circle.py": circle,
            "geo/sphere.py": "from geo.circle import area\n\n\ndef volume(r):\n    return area(r) * r\n",
            "util/strings.py": "def shout(text):\n    return text.upper()\n",
            "logo.png": b"\x89PNG\x00\x01",
        },
        "Add the geometry helpers and utilities",
    )
    commit(repo, {"geo/circle.py": circle.replace("3.14159", "math.pi")}, "Use math.pi for the circle area")
    out, _ = run_pipeline([GitCommitReader(str(repo), related_files=5)])
    docs = {d.metadata["message"]: d for d in out}
    assert "context" not in docs["Add the geometry helpers and utilities"].metadata  # a root commit
    ctx = docs["Use math.pi for the circle area"].metadata["context"]
    assert ctx["readme"] == {"path": "README.md", "content": "# geo\nGeometry helpers.\n"}
    assert ctx["tree"] == "README.md\ngeo/circle.py\ngeo/sphere.py\nlogo.png\nutil/strings.py\n"
    ranked = [r["path"] for r in ctx["related"]]
    assert ranked[0] == "geo/sphere.py" and "geo/circle.py" not in ranked and "logo.png" not in ranked
    scores = [r["score"] for r in ctx["related"]]
    assert scores == sorted(scores, reverse=True) and min(scores) > 0
    [sample] = CommitFormat("llama")([docs["Use math.pi for the circle area"]])
    order = [line for line in sample.text.split("\n") if line.startswith("<file_sep>")]
    assert order[:4] == [
        "<file_sep>COMMIT_EDITMSG",
        "<file_sep>README.md",
        "<file_sep>TREE",
        "<file_sep>geo/sphere.py",
    ]
    assert (
        order[-2:] == ["<file_sep>geo/circle.py", "<file_sep>CHANGES.diff"]
        and "context" not in sample.metadata
    )
    with pytest.raises(DataError, match="related_files must be >= 0"):
        GitCommitReader(str(repo), related_files=-1)
