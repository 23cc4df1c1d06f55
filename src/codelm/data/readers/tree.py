"""Read source files from a directory tree: one repository, or one repository per subdirectory.

This is the reader for local clones (`git clone` of many repos under one folder) and plain source
trees. Repository identity matters downstream (repo-level dedup, dependency-ordered packing), so
every document carries `repo` and its `path` inside the repo; `id` is `repo/path`. Walks are
sorted, so the same tree always yields the same documents in the same order.

What real trees hold, and what happens to it:

* version-control metadata and caches (`SKIP_DIRS`: `.git`, `__pycache__`, `node_modules`, ...)
  are never entered: they are not the repository's source, and `.pyc` files alone once made up
  75% of a site-packages input. Each skipped directory is counted as `skipped_dir:<name>`;
* symbolic links are dropped (`symlink`) rather than followed, so a link cannot pull files from
  outside the tree or read one file twice;
* a file name that is not valid UTF-8 (`bad\\xff.py`) is kept: its `path` shows the bytes as
  `\\xff` escapes and `metadata["path_bytes"]` holds the exact name (hex), counted `non_utf8_name`;
* a path longer than the OS allows (a runaway nested tree) is dropped (`path_too_long`), and a
  directory that cannot be listed for that reason is counted as `path_too_long_dirs`.
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from codelm.data.document import DataError, Document
from codelm.data.languages import detect_language
from codelm.data.readers.base import Reader, Unreadable, decode_text

log = logging.getLogger(__name__)

VCS_DIRS = frozenset({".git", ".hg", ".svn", ".bzr"})
#: tool caches and installed dependencies: generated or third-party, never the repository's source
#: (GitHub linguist's vendor list also treats node_modules as vendored)
CACHE_DIRS = frozenset(
    {"__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache", ".tox", ".nox", "node_modules"}
)
SKIP_DIRS = VCS_DIRS | CACHE_DIRS


def printable_name(name: str) -> tuple[str, str | None]:
    """A file name as valid Unicode, and its raw bytes as hex when it was not valid UTF-8.

    `os` gives undecodable bytes back as lone surrogates (PEP 383), which no UTF-8 writer
    accepts; the printable form shows them as `\\xff` escapes instead.
    """
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raw = os.fsencode(name)
        return raw.decode("utf-8", "backslashreplace"), raw.hex()
    return name, None


def git_head(repo_dir: Path) -> str | None:
    """The commit checked out in `repo_dir`, read from `.git` without running git; None if unknown."""
    git = repo_dir / ".git"
    if git.is_file():  # worktrees and submodules: "gitdir: <path>"
        content = git.read_text("utf-8").strip()
        if not content.startswith("gitdir:"):
            return None
        git = (repo_dir / content.removeprefix("gitdir:").strip()).resolve()
    head_file = git / "HEAD"
    if not head_file.is_file():
        return None
    head = head_file.read_text("utf-8").strip()
    if not head.startswith("ref:"):
        return head or None  # detached HEAD
    ref = head.removeprefix("ref:").strip()
    ref_file = git / ref
    if ref_file.is_file():
        return ref_file.read_text("utf-8").strip() or None
    packed = git / "packed-refs"
    if packed.is_file():
        for line in packed.read_text("utf-8").splitlines():
            sha, _, name = line.partition(" ")
            if name == ref:
                return sha
    return None  # a fresh repository with no commit yet


class DirectoryReader(Reader):
    """Yield one `Document` per text file under `root`.

    layout: "single" (root is one repository), "multi" (each subdirectory of root is one
    repository; files directly in root belong to a repository named after root), or "auto"
    (single if root holds a `.git`, else multi). `skip_dirs`: directory names never entered, at
    any depth (default `SKIP_DIRS`: VCS metadata and caches); `repos`: read only these
    repositories (multi layout). Sharding splits by repository, so a repository is never cut
    across shards. Other keyword arguments are
    `Reader`'s (max_bytes, shard, name, exclusion_writer).
    """

    def __init__(
        self,
        root: str | Path,
        *,
        layout: Literal["auto", "single", "multi"] = "auto",
        skip_dirs: frozenset[str] = SKIP_DIRS,
        repos: list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(f"not a directory: {self.root}")
        if layout not in ("auto", "single", "multi"):
            raise DataError(f"layout must be auto, single or multi, got {layout!r}")
        if layout == "auto":
            layout = "single" if (self.root / ".git").exists() else "multi"
        self.layout = layout
        self.skip_dirs = frozenset(skip_dirs)
        self.only = set(repos) if repos is not None else None  # read just these repositories
        self._skipped_top: list[str] = []  # skip_dirs met directly under root (multi layout)

    def repositories(self) -> list[tuple[str, Path, bool]]:
        """`(repo name, directory, recursive)` in sorted order, before sharding."""
        root = self.root.resolve()
        if self.layout == "single":
            return [(printable_name(root.name)[0], root, True)]
        repos = [(printable_name(root.name)[0], root, False)]  # loose top-level files, if any
        self._skipped_top = []
        for entry in sorted(os.scandir(root), key=lambda e: e.name):
            if not entry.is_dir(follow_symlinks=False):
                continue
            if entry.name in self.skip_dirs:
                self._skipped_top.append(entry.name)
            else:
                repos.append((printable_name(entry.name)[0], Path(entry.path), True))
        if self.only is not None:
            missing = self.only - {name for name, _, _ in repos}
            if missing:
                raise DataError(f"no repositories named {sorted(missing)} under {root}")
            repos = [r for r in repos if r[0] in self.only]
        return repos

    def _files(self, top: Path, recursive: bool) -> Iterator[Path]:
        if not recursive:
            yield from sorted(p for p in top.iterdir() if not p.is_dir() or p.is_symlink())
            return
        for dirpath, dirnames, filenames in os.walk(top, onerror=self._walk_error):
            # prune in place: os.walk then never descends into .git, __pycache__ and friends
            for d in dirnames:
                if d in self.skip_dirs:
                    self.stats.counters[f"skipped_dir:{d}"] += 1
            dirnames[:] = sorted(d for d in dirnames if d not in self.skip_dirs)
            for name in sorted(filenames):
                yield Path(dirpath, name)
            # directory symlinks are not descended (followlinks=False) and not in filenames
            for d in dirnames:
                try:
                    link = Path(dirpath, d).is_symlink()
                except OSError:  # too long to lstat: os.walk's listing then fails and counts it
                    link = False
                if link:
                    yield Path(dirpath, d)

    def _walk_error(self, err: OSError) -> None:
        log.warning("cannot list %s: %s", err.filename, err.strerror)
        too_long = err.errno == errno.ENAMETOOLONG
        self.stats.counters["path_too_long_dirs" if too_long else "unlistable_dirs"] += 1

    def read(self) -> Iterator[Document | Unreadable]:
        repositories = self.repositories()
        if self.rank == 0:  # top-level skips are seen by every shard: count them once
            for name in self._skipped_top:
                self.stats.counters[f"skipped_dir:{name}"] += 1
        for i, (repo, top, recursive) in enumerate(repositories):
            if i % self.world_size != self.rank:
                continue
            commit = None
            if recursive:
                try:
                    commit = git_head(top)
                except (OSError, UnicodeDecodeError) as e:
                    log.warning("cannot read the git HEAD of %s: %s", top, e)
                    self.stats.counters["git_head_unreadable"] += 1
            for file in self._files(top, recursive):
                yield self._read_file(repo, top, file, commit)

    def _document(self, repo: str, top: Path, file: Path) -> Document:
        """The empty document for `file`, its names made valid Unicode (see `printable_name`)."""
        rel, rel_bytes = printable_name(file.relative_to(top).as_posix())
        doc = Document(text="", id=f"{repo}/{rel}", repo=repo, path=rel)
        repo_bytes = printable_name(top.name)[1]
        if rel_bytes or repo_bytes:
            self.stats.counters["non_utf8_name"] += 1
            if rel_bytes:
                doc.metadata["path_bytes"] = rel_bytes
            if repo_bytes:
                doc.metadata["repo_bytes"] = repo_bytes
        return doc

    def _read_file(self, repo: str, top: Path, file: Path, commit: str | None) -> Document | Unreadable:
        doc = self._document(repo, top, file)
        if commit:
            doc.metadata["commit"] = commit
        try:
            if file.is_symlink():
                return Unreadable(doc, "symlink")
            if not file.is_file():
                return Unreadable(doc, "not_a_file")  # sockets, fifos, devices
            size = file.stat().st_size
            if size > self.max_bytes:  # do not even read it
                doc.metadata["size"] = size
                return Unreadable(doc, "too_large")
            raw = file.read_bytes()
        except OSError as e:
            log.warning("cannot read %s: %s", doc.id, e.strerror)
            doc.metadata["error"] = f"[Errno {e.errno}] {e.strerror}"
            return Unreadable(doc, "path_too_long" if e.errno == errno.ENAMETOOLONG else "unreadable")
        doc.metadata["size"] = len(raw)
        decoded = decode_text(raw, self.max_bytes)
        if isinstance(decoded, tuple):
            doc.metadata["error"] = decoded[1]
            return Unreadable(doc, decoded[0])
        doc.text = decoded
        doc.language = detect_language(doc.path, decoded)
        return doc
