"""Commit filters and the code-change format, alone and with the existing dedup / PII / decontam steps."""

from __future__ import annotations

import pytest

from codelm.data import DataError, Document, run_pipeline
from codelm.data.readers.commits import GitCommitReader
from codelm.data.steps import Decontaminate, ExactDedup, NearDedup, NgramIndex, PiiRedactor
from codelm.data.steps.commit_filter import CommitFilter, CommitFilterConfig, changed_lines
from codelm.data.steps.commit_format import CommitFormat, render_commit

from ..git_repos import commit, init, needs_git

PATCH = "diff --git a/a.py b/a.py\n--- a/a.py\n+++ b/a.py\n@@ -1 +1 @@\n-x = 1\n+x = 2\n"


def commit_doc(message: str = "Raise the default retry count", text: str = PATCH, **meta) -> Document:
    files = meta.pop("files", [{"path": "a.py", "status": "M", "before": "x = 1\n"}])
    metadata = {
        "sha": "0" * 40,
        "message": message,
        "author": "Ada",
        "author_email": "a@corp.net",
        "files": files,
    }
    return Document(text, f"r@{message}", repo="r", metadata={**metadata, **meta})


@pytest.mark.parametrize(
    ("doc", "reason"),
    [
        (commit_doc(""), "empty_message"),
        (commit_doc("Update README.md"), "generic_message"),
        (commit_doc("wip"), "generic_message"),
        (commit_doc("Fix it"), "short_message"),
        (commit_doc("Bump lodash from 4.17.20 to 4.17.21"), "bot_commit"),
        (commit_doc("Apply automatic formatting fixes", author="pre-commit-ci[bot]"), "bot_commit"),
        (commit_doc("Long " * 3000), "long_message"),
        (commit_doc(files=[{"path": f"f{i}", "before": None} for i in range(17)]), "too_many_files"),
        (commit_doc(text=PATCH + "+y\n" * 2000), "too_many_lines"),
        (commit_doc(text="diff --git a/x b/x\nold mode 100644\nnew mode 100755\n"), "no_change"),
    ],
)
def test_each_rule_drops_with_its_reason(doc, reason):
    step = CommitFilter()
    assert list(step([doc])) == []
    assert dict(step.stats.dropped) == {reason: 1}


def test_repository_rules_where_metadata_exists():
    cfg = CommitFilterConfig(min_repo_commits=100, min_repo_stars=100)
    step = CommitFilter(cfg)
    docs = [
        commit_doc(repo_commits=500, repo_stars=150),
        commit_doc(repo_commits=20),
        commit_doc(repo_commits=500),
    ]
    kept = list(step(docs))
    assert kept == [docs[0], docs[2]] and dict(step.stats.dropped) == {"small_repository": 1}
    assert step.stats.counters["unchecked:repo_stars"] == 1  # no stars known: passed, counted
    with pytest.raises(DataError, match="must be >= 0"):
        CommitFilterConfig(max_files=-1)


def test_changed_lines_ignores_file_headers():
    assert changed_lines(PATCH) == 2


@pytest.mark.parametrize(("family", "sep"), [("llama", "<file_sep>"), ("codegemma", "<|file_separator|>")])
def test_format_is_message_then_context_then_change(family, sep):
    [doc] = CommitFormat(family)([commit_doc()])
    assert doc.text == (
        f"{sep}COMMIT_EDITMSG\nRaise the default retry count\n{sep}a.py\nx = 1\n{sep}CHANGES.diff\n{PATCH}"
    )
    assert doc.metadata["paths"] == ["a.py"] and doc.metadata["format"] == f"commit:{family}"
    assert not {"message", "files", "author", "author_email"} & set(doc.metadata)  # now in the text only


def test_format_without_separator_and_context_budget():
    from codelm.models import get_family

    text, spans, cut = render_commit(
        get_family("seedcoder"), "msg", [("a.py", "a" * 10), ("b.py", "b" * 10)], PATCH, 15
    )
    assert text.startswith("# COMMIT_EDITMSG\nmsg\n# a.py\naaaaaaaaaa\n# CHANGES.diff\n") and cut == 1
    assert spans == []  # no file separator in this family: nothing for pack to turn into an id
    step = CommitFormat()
    assert list(step([Document("plain file", "x")])) == [] and step.stats.dropped["not_a_commit"] == 1


@needs_git
def test_commit_pipeline_with_dedup_pii_and_decontamination(tmp_path):
    from codelm.data.benchmarks import BenchmarkTask

    repo = init(tmp_path / "r")
    solution = (
        "def strlen(string: str) -> int:\n    return len(string)  # the length of the given string value\n"
    )
    commit(repo, {"a.py": "x = 1\n"}, "Start the module with one value")
    commit(repo, {"a.py": "x = 2\n"}, "Raise the value to two for everyone")
    commit(repo, {"a.py": "x = 1\n"}, "Revert the value back to one again")
    # the same change again: an exact duplicate of the patch (the newest copy is read first)
    commit(repo, {"a.py": "x = 2\n"}, "Reapply the raise to two\n\nAsked by jane.roe@corp-mail.net")
    commit(repo, {"c.py": solution}, "Add a string length helper function")
    index = NgramIndex([BenchmarkTask("HumanEval", "HumanEval/23", [solution])])
    steps = [
        GitCommitReader(str(repo)),
        CommitFilter(),
        ExactDedup(),
        NearDedup(),
        CommitFormat(),
        PiiRedactor(),
        Decontaminate(index),
    ]
    out, stats = run_pipeline(steps)
    docs = list(out)
    stats.check()
    assert stats["exact_dedup"].dropped == {"exact_duplicate": 1}
    assert stats["decontaminate"].dropped == {"contaminated:HumanEval": 1}
    assert stats["pii_redactor"].modified["email"] == 1
    texts = "".join(d.text for d in docs)
    assert "<EMAIL>" in texts and "jane.roe" not in texts and "ada.dev" not in texts
    assert all(d.text.startswith("<file_sep>COMMIT_EDITMSG\n") for d in docs)
    assert len(docs) == 5 - 1 - stats["near_dedup"].n_dropped - 1


def test_codelm_data_pack_packs_commit_samples(tmp_path, tiny_checkpoint):
    from transformers import AutoTokenizer

    from codelm.data.pack import pack
    from codelm.data.writers import JsonlWriter
    from codelm.train.shards import ShardReader, read_index

    docs = list(CommitFormat("llama")([commit_doc(), commit_doc("Lower the limit for slow disks")]))
    with JsonlWriter(tmp_path / "in" / "commits.jsonl.gz") as w:
        for d in docs:
            w.write(d)
    tok_dir = tiny_checkpoint("llama")
    out = pack([tmp_path / "in" / "commits.jsonl.gz"], tok_dir, tmp_path / "shards")
    assert read_index(out)["stats"]["documents"] == 2
    tok = AutoTokenizer.from_pretrained(tok_dir)
    reader = ShardReader(out)
    assert [tok.decode(reader.document(i).tolist()) for i in range(2)] == [d.text for d in docs]
    sep = tok.convert_tokens_to_ids("<file_sep>")
    # message, a.py before, the patch: three separators, each the control token's id
    assert [int((reader.document(i) == sep).sum()) for i in range(2)] == [3, 3]


def test_pii_leaves_decorators_on_patch_lines_alone():
    patch = "@@ -1,2 +1,3 @@\n+@pytest.mark.parametrize('x', [1])\n-@functools.cache\n def f(x):\n"
    text, counts = PiiRedactor().redact(patch + "+# ask jane.roe@corp-mail.net\n")
    assert text.startswith(patch) and "<EMAIL>" in text and counts == {"email": 1}
