"""Render a commit as a training sample: message + files before -> the change (Seed-Coder §2.2).

Seed-Coder turns each commit into a code-change prediction task: given the commit message and
the context of the repository's files before the commit, predict the changed paths and the
change. We render the three parts with the family's repository-context rule
(`codelm.models.formats.render_repo_context`: the family's file separator where it has one,
`<|file_separator|>` for CodeGemma and `<file_sep>` for StableCode and llama, else `# path`
headers), as pseudo-files in prediction order:

    <sep>COMMIT_EDITMSG\\n<message>           git's own name for the message file
    <sep>src/a.py\\n<a.py before the commit>  each changed file that existed before
    <sep>CHANGES.diff\\n<the patch>           its ---/+++ headers name the changed paths

Context is the changed files and, when the reader was asked for it (`related_files: 5`), what
Seed-Coder's context holds besides (report 2.2.2): the README, the directory listing (`TREE`)
and the files BM25 finds most related (`codelm.data.readers.related`), shown before the changed
files; they are cut file by file to `max_context_chars`, the changed files first in priority
(files left out are counted as `context_files_cut`; the patch is never cut). The separators' positions go to
`metadata["special_spans"]` (`codelm.data.specials`), so `codelm data pack` gives them the
control token's id while a look-alike inside a file stays text. The message, authors and file
contents leave the metadata (they are in the text now, where `pii_redactor` and `decontaminate`
see them); `paths`, `sha`, `author_date` and the repository fields stay.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from codelm.data.document import DataError, Document
from codelm.data.pipeline import PipelineStep
from codelm.data.specials import SPANS_KEY, render_repo
from codelm.data.writers import JsonlWriter

MESSAGE_FILE = "COMMIT_EDITMSG"
CHANGES_FILE = "CHANGES.diff"
#: metadata the rendered text now carries (and that may hold personal data)
TREE_FILE = "TREE"  # the directory listing before the commit (git ls-tree's paths)
MOVED_INTO_TEXT = ("message", "files", "author", "author_email", "context")


def render_commit(
    family: Any,
    message: str,
    files: list[tuple[str, str]],
    patch: str,
    max_context_chars: int | None = None,
    repo_context: dict[str, Any] | None = None,
) -> tuple[str, list[list[int]], int]:
    """The sample text, its file separators' spans, and how many context files were left out.

    `repo_context` is the reader's `context` (README, directory listing, BM25-related files). Under
    `max_context_chars` files are taken by priority: the changed files, then the README, the
    related files best first, the listing; they are shown README, listing, related, changed."""
    ctx = repo_context or {}
    readme = [(ctx["readme"]["path"], ctx["readme"]["content"])] if ctx.get("readme") else []
    tree = [(TREE_FILE, ctx["tree"])] if ctx.get("tree") else []
    related = [(r["path"], r["content"]) for r in ctx.get("related") or []]
    chosen, used, cut = set(), 0, 0
    for i, (_, content) in enumerate([*files, *readme, *related, *tree]):
        if max_context_chars is not None and used + len(content) > max_context_chars:
            cut += 1
            continue
        chosen.add(i)
        used += len(content)
    order = [*range(len(files), len(files) + len(readme))]  # README
    order += [len(files) + len(readme) + len(related)] if tree else []  # then the listing
    order += [*range(len(files) + len(readme), len(files) + len(readme) + len(related))]
    order += [*range(len(files))]  # the changed files last, next to their change
    pool = [*files, *readme, *related, *tree]
    context = [pool[i] for i in order if i in chosen]
    parts = [(MESSAGE_FILE, message.strip() + "\n"), *context, (CHANGES_FILE, patch)]
    text, spans = render_repo(family, parts)
    return text, spans, cut


class CommitFormat(PipelineStep):
    """Replace each commit document's text by its training sample (see the module docstring)."""

    def __init__(
        self,
        family: str = "llama",
        *,
        max_context_chars: int | None = 32_000,
        name: str | None = None,
        exclusion_writer: JsonlWriter | None = None,
    ) -> None:
        super().__init__(name=name, exclusion_writer=exclusion_writer)
        from codelm.models import get_family

        self.family = get_family(family)  # raises with "did you mean" on a typo
        if max_context_chars is not None and max_context_chars < 0:
            raise DataError(f"commit_format: max_context_chars must be >= 0, got {max_context_chars}")
        self.max_context_chars = max_context_chars

    def run(self, docs: Iterator[Document]) -> Iterator[Document]:
        for doc in docs:
            meta = doc.metadata
            if "sha" not in meta or "files" not in meta:
                self.drop(doc, "not_a_commit")  # a document of another reader
                continue
            files = [(f["path"], f["before"]) for f in meta["files"] if f.get("before") is not None]
            doc.text, spans, cut = render_commit(
                self.family,
                str(meta.get("message") or ""),
                files,
                doc.text,
                self.max_context_chars,
                meta.get("context"),
            )
            self.stats.counters["context_files_cut"] += cut
            meta["paths"] = [f["path"] for f in meta["files"]]
            for key in MOVED_INTO_TEXT:
                meta.pop(key, None)
            meta["format"] = f"commit:{self.family.name}"
            meta[SPANS_KEY] = spans
            yield self.keep(doc)
