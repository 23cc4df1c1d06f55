"""Read source files from a directory tree: one repository, or one repository per subdirectory.

This is the reader for local clones (`git clone` of many repos under one folder) and plain source
trees. Repository identity matters downstream (repo-level dedup, dependency-ordered packing), so
every document carries `repo` and its `path` inside the repo; `id` is `repo/path`. Walks are
sorted, so the same tree always yields the same documents in the same order. Version-control
metadata (`.git`, `.hg`, `.svn`) is never read; symbolic links are dropped (`symlink`) rather
than followed, so a link cannot pull files from outside the tree or read one file twice.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from codelm.data.document import DataError, Document
from codelm.data.languages import detect_language
from codelm.data.readers.base import Reader, Unreadable, decode_text

log = logging.getLogger(__name__)

VCS_DIRS = frozenset({".git", ".hg", ".svn"})


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
    any depth; `repos`: read only these repositories (multi layout). Sharding splits by
    repository, so a repository is never cut across shards. Other keyword arguments are
    `Reader`'s (max_bytes, shard, name, exclusion_writer).
    """

    def __init__(
        self,
        root: str | Path,
        *,
        layout: Literal["auto", "single", "multi"] = "auto",
        skip_dirs: frozenset[str] = VCS_DIRS,
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

    def repositories(self) -> list[tuple[str, Path, bool]]:
        """`(repo name, directory, recursive)` in sorted order, before sharding."""
        root = self.root.resolve()
        if self.layout == "single":
            return [(root.name, root, True)]
        repos = [(root.name, root, False)]  # loose top-level files, if any
        for entry in sorted(os.scandir(root), key=lambda e: e.name):
            if entry.is_dir(follow_symlinks=False) and entry.name not in self.skip_dirs:
                repos.append((entry.name, Path(entry.path), True))
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
            # prune in place: os.walk then never descends into .git and friends
            dirnames[:] = sorted(d for d in dirnames if d not in self.skip_dirs)
            for name in sorted(filenames):
                yield Path(dirpath, name)
            # directory symlinks are not descended (followlinks=False) and not in filenames
            for d in dirnames:
                if Path(dirpath, d).is_symlink():
                    yield Path(dirpath, d)

    def _walk_error(self, err: OSError) -> None:
        log.warning("cannot list %s: %s", err.filename, err.strerror)
        self.stats.counters["unlistable_dirs"] += 1

    def read(self) -> Iterator[Document | Unreadable]:
        for i, (repo, top, recursive) in enumerate(self.repositories()):
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

    def _read_file(self, repo: str, top: Path, file: Path, commit: str | None) -> Document | Unreadable:
        rel = file.relative_to(top).as_posix()
        doc = Document(text="", id=f"{repo}/{rel}", repo=repo, path=rel)
        if commit:
            doc.metadata["commit"] = commit
        if file.is_symlink():
            return Unreadable(doc, "symlink")
        if not file.is_file():
            return Unreadable(doc, "not_a_file")  # sockets, fifos, devices
        try:
            size = file.stat().st_size
            if size > self.max_bytes:  # do not even read it
                doc.metadata["size"] = size
                return Unreadable(doc, "too_large")
            raw = file.read_bytes()
        except OSError as e:
            log.warning("cannot read %s: %s", file, e)
            doc.metadata["error"] = str(e)
            return Unreadable(doc, "unreadable")
        doc.metadata["size"] = len(raw)
        decoded = decode_text(raw, self.max_bytes)
        if isinstance(decoded, tuple):
            doc.metadata["error"] = decoded[1]
            return Unreadable(doc, decoded[0])
        doc.text = decoded
        doc.language = detect_language(rel, decoded)
        return doc
