"""Git plumbing for the commit reader: the history, each commit's patch, and blob contents.

Git itself, through three long-lived subprocesses per repository, rather than pygit2 or dulwich:

* `git log -z --raw -M` streams every commit's metadata and changed paths as NUL-separated
  fields, so paths are exact bytes (no quoting) and the message can hold anything but NUL;
* `git diff-tree --stdin -p -M` answers one commit at a time: we write its sha and an end marker
  line, which diff-tree echoes back after the patch (lines that are not commit ids are echoed);
* `git cat-file --batch` returns the content before the change of each modified file.

Why git: it is on every machine that has repositories, reads every repository format (packs,
worktrees, bare, partial clones, sha256) with the same diff and rename machinery users see in
`git log -p`, and the three processes stream, so a history is never held in memory. pygit2 needs
libgit2 (a C build, often a version behind) and dulwich's pure-Python diffs are far slower; both
would reimplement rename detection and binary detection with their own rules.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from codelm.data.document import DataError

#: echoed back by `diff-tree --stdin` after each commit's patch; no patch line starts with "::"
END_MARKER = b"::codelm-end-of-patch::"
ZERO_SHA = frozenset({"0" * 40, "0" * 64})
#: log fields, NUL-separated: sha, parents, author date (ISO 8601), author name, email, message
LOG_FORMAT = "%H%x00%P%x00%aI%x00%an%x00%ae%x00%B"
#: options shared by the log and diff-tree so both list a commit's changes in the same order
DIFF_OPTS = ("-M", "--no-color", "--no-ext-diff", "--no-textconv")


def git_binary() -> str:
    """The git executable, or a clear error when it is not installed."""
    git = shutil.which("git")
    if git is None:
        raise DataError("the git_commits reader needs git on PATH (apt-get install git)")
    return git


def git_dir(repo: Path) -> str:
    """The repository's git directory (bare or working copy); DataError if `repo` is none."""
    proc = subprocess.run(
        [git_binary(), "-C", str(repo), "rev-parse", "--absolute-git-dir"], capture_output=True, check=False
    )
    if proc.returncode != 0:
        msg = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise DataError(f"not a git repository: {repo} ({msg[-1] if msg else 'git rev-parse failed'})")
    return proc.stdout.decode("utf-8", "surrogateescape").strip()


def has_commits(repo: Path, rev: str) -> bool:
    """False for an empty repository (no commit yet); DataError for a revision that does not exist."""
    proc = subprocess.run(
        [git_binary(), "-C", str(repo), "rev-parse", "--verify", "-q", f"{rev}^{{commit}}"],
        capture_output=True,
        check=False,
    )
    if proc.returncode == 0:
        return True
    heads = subprocess.run(
        [git_binary(), "-C", str(repo), "for-each-ref", "--count=1"], capture_output=True, check=False
    )
    if rev == "HEAD" and not heads.stdout.strip():
        return False  # nothing committed yet: an empty repository, not an error
    raise DataError(f"{repo}: no commit named {rev!r}")


@dataclass
class Change:
    """One changed path of a commit, from `git log --raw`."""

    status: str  # A, M, D, T, R (renamed, with similarity), C
    old_sha: str
    new_sha: str
    path: bytes  # the path after the change (before, for a deletion)
    old_path: bytes | None = None  # renames and copies: the path before


@dataclass
class LogEntry:
    """One commit of `git log -z --raw`, fields still as bytes where git gives bytes."""

    sha: str
    parents: list[str]
    date: str
    author: bytes
    email: bytes
    message: bytes
    changes: list[Change] = field(default_factory=list)


def _popen(repo: Path, *args: str, stdin: bool = False) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [git_binary(), "-C", str(repo), "-c", "core.quotePath=false", *args],
        stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _tokens(stream: IO[bytes], chunk: int = 1 << 16) -> Iterator[bytes]:
    """NUL-terminated fields of a stream, without reading it whole."""
    buf = b""
    while True:
        data = stream.read(chunk)
        if not data:
            break
        buf += data
        *fields, buf = buf.split(b"\0")
        yield from fields
    if buf:
        yield buf


def _finish(proc: subprocess.Popen[bytes], what: str) -> None:
    err = proc.stderr.read().decode("utf-8", "replace").strip() if proc.stderr else ""
    if proc.wait() != 0:
        raise DataError(f"{what} failed (exit {proc.returncode}): {err.splitlines()[-1] if err else ''}")


def iter_log(repo: Path, rev: str = "HEAD") -> Iterator[LogEntry]:
    """Every commit reachable from `rev`, newest first (git's default order), with its changes."""
    proc = _popen(repo, "log", "-z", "--raw", "--no-abbrev", *DIFF_OPTS, f"--format={LOG_FORMAT}", rev)
    assert proc.stdout is not None
    tokens = _tokens(proc.stdout)
    entry: LogEntry | None = None
    try:
        for tok in tokens:
            if not tok.strip():
                continue  # the separator after a commit without listed changes
            if entry is not None and tok.lstrip(b"\n").startswith(b":"):
                meta = tok.lstrip(b"\n")[1:].decode("ascii").split()
                status = meta[4]
                first = next(tokens)
                if status[0] in "RC":
                    entry.changes.append(Change(status, meta[2], meta[3], next(tokens), old_path=first))
                else:
                    entry.changes.append(Change(status, meta[2], meta[3], first))
                continue
            if entry is not None:
                yield entry
            sha = tok.lstrip(b"\n").decode("ascii")
            parents, date, author, email, message = (next(tokens) for _ in range(5))
            entry = LogEntry(
                sha, parents.decode("ascii").split(), date.decode("ascii"), author, email, message
            )
        if entry is not None:
            yield entry
    finally:
        if proc.poll() is None:
            proc.kill()
    _finish(proc, f"git log in {repo}")


def history_span(repo: Path, rev: str = "HEAD") -> tuple[int, int]:
    """(number of commits, days between the first and the last author date) of `rev`'s history."""
    proc = subprocess.run(
        [git_binary(), "-C", str(repo), "log", "--format=%at", rev], capture_output=True, check=False
    )
    if proc.returncode != 0:
        raise DataError(f"git log in {repo} failed: {proc.stderr.decode('utf-8', 'replace').strip()}")
    times = [int(t) for t in proc.stdout.split()]
    return len(times), (max(times) - min(times)) // 86400 if times else 0


class PatchReader:
    """One `git diff-tree --stdin` process answering "the patch of commit X" on demand."""

    def __init__(self, repo: Path) -> None:
        self.repo = repo
        self.proc = _popen(
            repo, "diff-tree", "--stdin", "--root", "--no-commit-id", "-p", *DIFF_OPTS, stdin=True
        )

    def patch(self, sha: str) -> list[bytes]:
        """The lines (with their newlines) of the patch of `sha` against its only parent."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(sha.encode("ascii") + b"\n" + END_MARKER + b"\n")
        self.proc.stdin.flush()
        lines = []
        for line in iter(self.proc.stdout.readline, b""):
            if line.rstrip(b"\n") == END_MARKER:
                return lines
            lines.append(line)
        _finish(self.proc, f"git diff-tree in {self.repo}")
        raise DataError(f"git diff-tree in {self.repo} stopped before the end of {sha}")

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.kill()
        self.proc.wait()


class BlobReader:
    """One `git cat-file --batch` process: blob contents by sha."""

    def __init__(self, repo: Path) -> None:
        self.repo = repo
        self.proc = _popen(repo, "cat-file", "--batch", stdin=True)

    def read(self, sha: str) -> bytes:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(sha.encode("ascii") + b"\n")
        self.proc.stdin.flush()
        header = self.proc.stdout.readline().split()
        if len(header) != 3:
            raise DataError(f"git cat-file in {self.repo}: no object {sha} ({b' '.join(header)!r})")
        size = int(header[2])
        data = self.proc.stdout.read(size)
        self.proc.stdout.read(1)  # the newline after the content
        return data

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.kill()
        self.proc.wait()


def split_patch(lines: list[bytes]) -> list[list[bytes]]:
    """A commit's patch cut into one list of lines per file ("diff --git" starts each)."""
    files: list[list[bytes]] = []
    for line in lines:
        if line.startswith(b"diff --git ") or not files:
            files.append([])
        files[-1].append(line)
    return files
