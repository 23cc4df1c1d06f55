"""Git plumbing for the commit reader: the history, each commit's patch, and blob contents.

Git itself, through three long-lived subprocesses per repository, rather than pygit2 or dulwich:

* `git log -z` streams every commit's metadata as NUL-separated fields (a message can hold
  anything but NUL);
* `git diff-tree --stdin --raw -z -p -M` answers one commit at a time with its changed paths as
  exact bytes (no quoting) and its patch: we write the sha and an end marker line, which
  diff-tree echoes back after the patch (lines that are not commit ids are echoed);
* `git cat-file --batch` returns the content before the change of each modified file.

Why git: it is on every machine that has repositories, reads every repository format (packs,
worktrees, bare, partial clones, sha256) with the same diff and rename machinery users see in
`git log -p`, and the three processes stream, so a history is never held in memory. pygit2 needs
libgit2 (a C build, often a version behind) and dulwich's pure-Python diffs are far slower; both
would reimplement rename detection and binary detection with their own rules.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from codelm.data.document import DataError

#: echoed back by `diff-tree --stdin` after each commit's patch; no patch line starts with "::"
END_MARKER = b"::codelm-end-of-patch::"
ZERO_SHA = frozenset({"0" * 40, "0" * 64})
#: log fields, NUL-separated: sha, parents, author date (ISO 8601), author name, email, message
LOG_FORMAT = "%H%x00%P%x00%aI%x00%an%x00%ae%x00%B"
#: rename detection, and no user diff drivers, colours or text conversion
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
    """One changed path of a commit, from `git diff-tree --raw`."""

    status: str  # A, M, D, T, R (renamed, with similarity), C
    old_mode: str  # 100644, 100755, 120000 (symlink), 160000 (submodule), 000000 (none)
    old_sha: str
    new_sha: str
    path: bytes  # the path after the change (before, for a deletion)
    old_path: bytes | None = None  # renames and copies: the path before


@dataclass
class LogEntry:
    """One commit of `git log -z`, fields still as bytes where git gives bytes."""

    sha: str
    parents: list[str]
    date: str
    author: bytes
    email: bytes
    message: bytes


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
    """Every commit reachable from `rev`, newest first (git's default order), without its changes."""
    proc = _popen(repo, "log", "-z", f"--format={LOG_FORMAT}", rev)
    assert proc.stdout is not None
    tokens = _tokens(proc.stdout)
    try:
        for tok in tokens:  # six fields per commit; messages hold anything but NUL
            sha = tok.lstrip(b"\n").decode("ascii")
            parents, date, author, email, message = (next(tokens) for _ in range(5))
            yield LogEntry(sha, parents.decode("ascii").split(), date.decode("ascii"), author, email, message)
    finally:
        if proc.poll() is None:
            proc.kill()
    _finish(proc, f"git log in {repo}")


def parse_raw(raw: bytes) -> list[Change]:
    """The `--raw -z` section of diff-tree: `:modes shas status` NUL path NUL [path NUL], ..."""
    tokens, changes, i = raw.split(b"\0"), [], 0
    while i < len(tokens) and tokens[i].startswith(b":"):
        meta = tokens[i][1:].decode("ascii").split()
        status = meta[4]
        if status[0] in "RC":
            changes.append(Change(status, meta[0], meta[2], meta[3], tokens[i + 2], old_path=tokens[i + 1]))
            i += 3
        else:
            changes.append(Change(status, meta[0], meta[2], meta[3], tokens[i + 1]))
            i += 2
    return changes


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
            repo,
            *("diff-tree", "--stdin", "--root", "--no-commit-id", "--raw", "-z", "--no-abbrev", "-p"),
            *DIFF_OPTS,
            stdin=True,
        )

    def changes(self, sha: str) -> tuple[list[Change], bytes]:
        """The changed paths and the patch of `sha` against its only parent.

        diff-tree answers with the `--raw -z` entries, an empty field, then the patch; we read in
        chunks up to the echoed end marker."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(sha.encode("ascii") + b"\n" + END_MARKER + b"\n")
        self.proc.stdin.flush()
        end, buf = END_MARKER + b"\n", bytearray()
        while True:
            chunk = self.proc.stdout.read1(1 << 16)
            if not chunk:
                _finish(self.proc, f"git diff-tree in {self.repo}")
                raise DataError(f"git diff-tree in {self.repo} stopped before the end of {sha}")
            buf += chunk
            # the marker is a whole line; no patch line starts with "::" (they start with a
            # space, +, -, @, \\ or a header word), so this cannot match inside a patch
            if buf.endswith(end) and (len(buf) == len(end) or buf[-len(end) - 1] == 10):
                out = bytes(buf[: -len(end)])
                cut = out.find(b"\0\0")  # the last path's terminator, then the empty field
                if cut < 0:
                    return [], out
                return parse_raw(out[: cut + 1]), out[cut + 2 :]

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

    def read(self, sha: str) -> bytes | None:
        """The blob's bytes; None when the repository lacks it (a partial or shallow clone)."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(sha.encode("ascii") + b"\n")
        self.proc.stdin.flush()
        header = self.proc.stdout.readline().split()
        if header[-1:] == [b"missing"]:
            return None
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


_FILE_START = re.compile(rb"^(?=diff --git )", re.MULTILINE)


def split_patch(patch: bytes) -> list[bytes]:
    """A commit's patch cut into one piece per file ("diff --git" starts each)."""
    return [piece for piece in _FILE_START.split(patch) if piece]
