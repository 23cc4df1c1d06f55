"""Read a git repository's history as one `Document` per commit (Seed-Coder's commit source).

    GitCommitReader("path/to/repo")          # a working copy or a bare repository
    GitCommitReader(["a", "b.git"], rev="main")

Each commit becomes a document whose `text` is its patch (unified diff, without the `index`
lines, whose blob ids say nothing a model can learn), and whose metadata holds what a commit
sample needs: `sha`, `parents`, `author_date`, `author`, `author_email`, `message`, `files`
(per changed path: `path`, `status`, `old_path` for renames, `before`: the file's content before
the change, or None with `before_omitted` saying why) and the repository's `repo_commits` and
`repo_days` (history length and span, for Seed-Coder's repository rules), plus any
`repo_info` you pass (stars, forks: `repo_stars`, `repo_forks`). `language` is the language of
the most changed file. The git plumbing and why it is git itself: `codelm.data.readers.git`.

What real histories hold, and the rule for each (drop reasons, else counters):

* merge commits: dropped (`merge_commit`); their change is their parents' changes again;
* binary files: their change is left out of the patch (counter `binary_file_changes`); a commit
  that changed only binary files is dropped (`binary_only`);
* a file whose content is not UTF-8: its change is left out (`non_utf8_file_changes`); a commit
  left with nothing is dropped (`non_utf8_diff`);
* a patch over `max_bytes` (default 1 MB, The Stack's file limit): dropped (`too_large`), checked
  before any file content is fetched; a file before the change over `max_bytes`, binary, a
  submodule, or missing from a partial clone: `before` None, `before_omitted` says why;
* a commit that changes nothing (`--allow-empty`, mode-only edits count as changes): `empty_diff`;
* a message that is not UTF-8 (and has no encoding header git could convert from):
  `non_utf8_message`; empty messages are kept here and judged by the `commit_filter` step;
* file names that are not UTF-8: kept; paths show the bytes as `\\xff` escapes and
  `path_bytes` holds them in hex (counter `non_utf8_name`), as the directory reader does;
* an empty repository (no commit yet): nothing to read (counter `empty_repository`).

Sharding takes every world-th commit of each repository's history, so each shard lists the
history (cheap) but diffs only its own commits.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codelm.data.document import DataError, Document
from codelm.data.languages import detect_language
from codelm.data.readers.base import Reader, Unreadable, decode_text
from codelm.data.readers.git import (
    ZERO_SHA,
    BlobReader,
    Change,
    LogEntry,
    iter_commits,
    list_history,
    split_patch,
)
from codelm.data.readers.related import RelatedFiles

_INDEX_LINE = re.compile(rb"^index [0-9a-f]+\.\.[0-9a-f]+.*\n", re.MULTILINE)


#: commits whose files' content is fetched in one cat-file round trip (bounded by patch bytes too)
_GROUP_COMMITS, _GROUP_BYTES = 64, 8_000_000


@dataclass
class _Pending:
    """A commit that passed every rule, waiting for its files' content before the change."""

    doc: Document
    kept: list[tuple[Change, str]]


def _name(raw: bytes) -> tuple[str, str | None]:
    """A path as valid Unicode, and its bytes in hex when they were not UTF-8."""
    try:
        return raw.decode("utf-8"), None
    except UnicodeDecodeError:
        return raw.decode("utf-8", "backslashreplace"), raw.hex()


def repo_name(path: Path) -> str:
    """`project` for both `.../project` and a bare `.../project.git`."""
    name = path.resolve().name
    return name.removesuffix(".git") or name


class GitCommitReader(Reader):
    """One document per non-merge commit of each repository (see the module docstring).

    repo: a repository path or a list of them; rev: the revision whose history is read;
    repo_info: {repo name: {"stars": n, "forks": n, ...}} added to metadata as `repo_<key>`.
    related_files: with k > 0, each commit also gets `context` (`readers.related`, Seed-Coder's
    commit context): the parent's README, its directory listing and the k files BM25 finds most
    related to the change (off by default: one `git ls-tree` per commit and a BM25 index).
    Other keyword arguments are `Reader`'s (max_bytes bounds the patch, shard, name, ...).
    """

    def __init__(
        self,
        repo: str | list[str],
        *,
        rev: str = "HEAD",
        repo_info: dict[str, dict[str, Any]] | None = None,
        related_files: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        paths = [repo] if isinstance(repo, str) else list(repo)
        if not paths:
            raise DataError("git_commits needs at least one repository in `repo`")
        self.repos = [Path(p) for p in paths]
        for p in self.repos:
            if not p.is_dir():
                raise DataError(f"git_commits: not a directory: {p}")
        self.rev = rev
        self.repo_info = repo_info or {}
        if related_files < 0:
            raise DataError(f"git_commits: related_files must be >= 0, got {related_files}")
        self.related_files = related_files

    def read(self) -> Iterator[Document | Unreadable]:
        for path in self.repos:
            history = list_history(path, self.rev)  # a clear error for no repository or revision
            if history is None:
                if self.rank == 0:
                    self.stats.counters["empty_repository"] += 1
                continue
            yield from self._read_repo(path, *history)

    def _read_repo(self, path: Path, shas: list[str], days: int) -> Iterator[Document | Unreadable]:
        name = repo_name(path)
        extra = {f"repo_{k}": v for k, v in self.repo_info.get(name, {}).items()}
        mine = None if self.world_size == 1 else shas[self.rank :: self.world_size]
        blobs = BlobReader(path)
        related = RelatedFiles(path, blobs, self.related_files) if self.related_files else None
        try:
            group: list[Document | Unreadable | _Pending] = []
            size = 0
            for entry in iter_commits(path, self.rev, mine):
                doc = Document(text="", id=f"{name}@{entry.sha}", repo=name)
                doc.metadata.update(sha=entry.sha, repo_commits=len(shas), repo_days=days, **extra)
                group.append(item := self._commit(doc, entry))
                size += len(item.doc.text) if isinstance(item, _Pending) else 0
                if len(group) >= _GROUP_COMMITS or size >= _GROUP_BYTES:
                    yield from self._complete(group, blobs, related)
                    group, size = [], 0
            yield from self._complete(group, blobs, related)
        finally:
            blobs.close()

    def _complete(
        self, group: list[Document | Unreadable | _Pending], blobs: BlobReader, related: RelatedFiles | None
    ) -> Iterator[Document | Unreadable]:
        """The group's documents with their files' content before the change, fetched in one go."""
        wanted = [
            c.old_sha
            for p in group
            if isinstance(p, _Pending)
            for c, _ in p.kept
            if c.old_sha not in ZERO_SHA and c.old_mode != "160000"
        ]
        contents = dict(zip(wanted, blobs.read_many(wanted), strict=True))
        for p in group:
            if not isinstance(p, _Pending):
                yield p
                continue
            sizes: Counter[str] = Counter()
            p.doc.metadata["files"] = [self._file_entry(c, contents, sizes, t) for c, t in p.kept]
            p.doc.language = max(sizes, key=lambda k: (sizes[k], k)) if sizes else None
            parents = p.doc.metadata["parents"]
            if related is not None and parents:  # a root commit has no snapshot before it
                changed = {f["path"] for f in p.doc.metadata["files"]}
                changed |= {f["old_path"] for f in p.doc.metadata["files"] if "old_path" in f}
                query = f"{p.doc.metadata['message']}\n{p.doc.text}"
                p.doc.metadata["context"] = related.context(parents[0], changed, query)
            yield p.doc

    def _commit(self, doc: Document, e: LogEntry) -> Document | Unreadable | _Pending:
        """The commit's drop reason, or its document waiting for the files' content before."""
        doc.metadata["parents"] = e.parents
        doc.metadata["author_date"] = e.date
        if len(e.parents) > 1:
            return Unreadable(doc, "merge_commit")
        try:
            message = e.message.decode("utf-8")
        except UnicodeDecodeError as err:
            doc.metadata["error"] = str(err)
            return Unreadable(doc, "non_utf8_message")
        doc.metadata.update(
            author=e.author.decode("utf-8", "replace"),
            author_email=e.email.decode("utf-8", "replace"),
            message=message.rstrip("\n"),
        )
        if not e.changes:
            return Unreadable(doc, "empty_diff")
        chunks = split_patch(e.patch)
        if len(chunks) != len(e.changes):  # one diff run lists both: a mismatch is a parsing bug
            doc.metadata["error"] = f"{len(e.changes)} changes listed, {len(chunks)} in the patch"
            return Unreadable(doc, "patch_mismatch")
        skipped: Counter[str] = Counter()
        patches_of = ((c, self._file_patch(k, skipped)) for c, k in zip(e.changes, chunks, strict=True))
        kept = [(c, t) for c, t in patches_of if t is not None]
        self.stats.counters.update(skipped)
        if not kept:
            return Unreadable(doc, "binary_only" if skipped["binary_file_changes"] else "non_utf8_diff")
        text = "".join(t for _, t in kept)
        size = len(text.encode("utf-8"))
        if size > self.max_bytes:  # before fetching any file content
            doc.metadata["size"] = size
            return Unreadable(doc, "too_large")
        doc.text = text
        return _Pending(doc, kept)

    def _file_patch(self, chunk: bytes, skipped: Counter[str]) -> str | None:
        """One file's patch as text without its `index` line; None (and counted) if left out."""
        cut = chunk.find(b"\n@@") + 1  # headers end where the first hunk starts
        head, body = (chunk[:cut], chunk[cut:]) if cut else (chunk, b"")
        if b"\nBinary files " in head or b"\nGIT binary patch" in head:
            skipped["binary_file_changes"] += 1
            return None
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            skipped["non_utf8_file_changes"] += 1
            return None
        return _INDEX_LINE.sub(b"", head).decode("utf-8", "backslashreplace") + text

    def _file_entry(
        self, change: Change, contents: dict[str, bytes | None], sizes: Counter[str], patch: str
    ) -> dict[str, Any]:
        path, path_hex = _name(change.path)
        entry: dict[str, Any] = {"path": path, "status": change.status[0]}
        if change.old_path is not None:
            entry["old_path"], old_hex = _name(change.old_path)
            path_hex = path_hex or old_hex
        if path_hex:
            entry["path_bytes"] = path_hex
            self.stats.counters["non_utf8_name"] += 1
        lang = detect_language(path)
        if lang:
            sizes[lang] += len(patch)
        if change.old_sha in ZERO_SHA:
            entry["before"] = None  # an added file: nothing before
            return entry
        if change.old_mode == "160000":  # a submodule: the "content" is another repository's commit
            entry["before"], entry["before_omitted"] = None, "submodule"
            return entry
        raw = contents[change.old_sha]
        if raw is None:
            entry["before"], entry["before_omitted"] = None, "missing"
            self.stats.counters["before_omitted:missing"] += 1
            return entry
        decoded = decode_text(raw, self.max_bytes)
        if isinstance(decoded, tuple):
            entry["before"], entry["before_omitted"] = None, decoded[0]
            self.stats.counters[f"before_omitted:{decoded[0]}"] += 1
        else:
            entry["before"] = decoded
        return entry
