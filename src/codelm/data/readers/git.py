"""Git plumbing for the commit reader: the history, each commit's patch, and blob contents.

Git itself, through two long-lived subprocesses per repository, rather than pygit2 or dulwich:

* one `git log -p --raw -z` stream gives every commit's metadata, its changed paths as exact
  bytes (`--raw -z`: no quoting) and its patch, in one pass; commits are framed by a marker
  holding NULs and a random nonce, so neither a message (no NUL) nor a file's content (which
  cannot guess the nonce) can forge a boundary. A shard of the history is given to the same
  command as a list of commits on stdin (`--stdin --no-walk=unsorted`), so each shard diffs only
  its own commits. Every diff option is explicit, so user configuration (prefixes, algorithm,
  context, submodule format) cannot change the output;
* `git cat-file --batch` returns the content before the change of the modified files, asked for
  a commit at a time.

(An earlier version asked `git diff-tree --stdin` for one commit at a time: the round trip per
commit cost more CPU than the diffs; bench/commits.py.)

Why git: it is on every machine that has repositories, reads every repository format (packs,
worktrees, bare, partial clones, sha256) with the same diff and rename machinery users see in
`git log -p`, and the processes stream, so a history is never held in memory. pygit2 needs
libgit2 (a C build, often a version behind) and dulwich's pure-Python diffs are far slower; both
would reimplement rename detection and binary detection with their own rules.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from codelm.data.document import DataError

ZERO_SHA = frozenset({"0" * 40, "0" * 64})
#: log fields, NUL-separated: sha, parents, author date (ISO 8601), author name, email, message
LOG_FORMAT = "%H%x00%P%x00%aI%x00%an%x00%ae%x00%B%x00"
#: every option that shapes a patch, explicit, so that user config (diff.noprefix, diff.algorithm,
#: diff.context, diff.submodule, ...) cannot change what is read; rename detection on
DIFF_OPTS = (
    *("-M", "--no-color", "--no-ext-diff", "--no-textconv", "-U3", "--inter-hunk-context=0"),
    *("--diff-algorithm=myers", "--indent-heuristic", "--src-prefix=a/", "--dst-prefix=b/"),
    *("--no-relative", "--submodule=short", "--ignore-submodules=none"),
)
#: configuration a porcelain `git log` would otherwise take from the user
_CONFIG = (
    *("core.quotePath=false", "log.showRoot=true", "log.showSignature=false"),
    "diff.suppressBlankEmpty=false",
)
#: cat-file requests written before reading the answers: small enough for a pipe buffer
_BLOB_BATCH = 256


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
    """One changed path of a commit, from `--raw` output."""

    status: str  # A, M, D, T, R (renamed, with similarity), C
    old_mode: str  # 100644, 100755, 120000 (symlink), 160000 (submodule), 000000 (none)
    old_sha: str
    new_sha: str
    path: bytes  # the path after the change (before, for a deletion)
    old_path: bytes | None = None  # renames and copies: the path before


@dataclass
class LogEntry:
    """One commit of the log, fields still as bytes where git gives bytes, with its changes.

    Merge commits come without changes or patch (git log shows no diff for them)."""

    sha: str
    parents: list[str]
    date: str
    author: bytes
    email: bytes
    message: bytes
    changes: list[Change] = field(default_factory=list)
    patch: bytes = b""


def _popen(repo: Path, *args: str, stdin: IO[bytes] | int = subprocess.DEVNULL) -> subprocess.Popen[bytes]:
    config = [a for c in _CONFIG for a in ("-c", c)]
    return subprocess.Popen(
        [git_binary(), "-C", str(repo), *config, *args],
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _finish(proc: subprocess.Popen[bytes], what: str) -> None:
    err = proc.stderr.read().decode("utf-8", "replace").strip() if proc.stderr else ""
    if proc.wait() != 0:
        raise DataError(f"{what} failed (exit {proc.returncode}): {err.splitlines()[-1] if err else ''}")


def list_history(repo: Path, rev: str = "HEAD") -> tuple[list[str], int] | None:
    """(every commit reachable from `rev` in log order, days between its first and last author
    date); None for an empty repository. One process; only a failure is diagnosed further (no
    repository: DataError; no such revision: DataError)."""
    proc = subprocess.run(
        [git_binary(), "-C", str(repo), "log", "--format=%H %at", rev, "--"], capture_output=True, check=False
    )
    if proc.returncode != 0:
        git_dir(repo)
        if not has_commits(repo, rev):
            return None
        raise DataError(f"git log in {repo} failed: {proc.stderr.decode('utf-8', 'replace').strip()}")
    fields = proc.stdout.split()
    shas, times = [s.decode("ascii") for s in fields[0::2]], [int(t) for t in fields[1::2]]
    return shas, (max(times) - min(times)) // 86400 if times else 0


def _frames(stream: IO[bytes], mark: bytes, chunk: int = 1 << 16) -> Iterator[bytes]:
    """The pieces of a stream between occurrences of `mark`, without reading it whole."""
    buf, seen = bytearray(), 0
    while data := stream.read1(chunk):  # type: ignore[attr-defined]
        buf += data
        while (i := buf.find(mark, seen)) >= 0:
            if i:
                yield bytes(buf[:i])
            del buf[: i + len(mark)]  # a bytearray drops its head without copying the rest
            seen = 0
        seen = max(0, len(buf) - len(mark) + 1)
    if buf:
        yield bytes(buf)


def _entry(frame: bytes) -> LogEntry:
    """One framed commit: six log fields, then git's terminator, then `--raw -z` entries and the patch."""
    parts = frame.split(b"\0", 6)
    if len(parts) != 7 or len(parts[0]) not in (40, 64):
        raise DataError(f"git log: unexpected output {frame[:80]!r}")
    sha, parents, date, author, email, message, rest = parts
    ids = sha.decode("ascii"), parents.decode("ascii").split(), date.decode("ascii")
    entry = LogEntry(*ids, author, email, message)
    rest = rest.removeprefix(b"\0").removeprefix(b"\n")
    if rest:
        cut = rest.find(b"\0\0")  # the last path's terminator, then the empty field, then the patch
        entry.changes, entry.patch = parse_raw(rest[: cut + 1]), rest[cut + 2 :]
    return entry


def iter_commits(repo: Path, rev: str = "HEAD", shas: list[str] | None = None) -> Iterator[LogEntry]:
    """Every commit reachable from `rev` (or exactly `shas`, in that order) with its changes and patch."""
    nonce = secrets.token_hex(16)  # never in the output: the documents do not depend on it
    mark = f"\0\0codelm-commit-{nonce}\0".encode("ascii")
    fmt = f"%x00%x00codelm-commit-{nonce}%x00{LOG_FORMAT}"
    args = ["log", "-z", f"--format={fmt}", "--raw", "--no-abbrev", "-p", "--no-notes", *DIFF_OPTS]
    with tempfile.TemporaryFile() as listing:
        if shas is not None:
            listing.write("".join(s + "\n" for s in shas).encode("ascii"))
            listing.seek(0)
            args += ["--stdin", "--no-walk=unsorted"]
        else:
            args += [rev, "--"]
        proc = _popen(repo, *args, stdin=listing)
    assert proc.stdout is not None
    try:
        for frame in _frames(proc.stdout, mark):
            yield _entry(frame)
    finally:
        if proc.poll() is None:
            proc.kill()
    _finish(proc, f"git log in {repo}")


def parse_raw(raw: bytes) -> list[Change]:
    """The `--raw -z` section: `:modes shas status` NUL path NUL [path NUL], ..."""
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


class BlobReader:
    """One `git cat-file --batch` process: blob contents by sha, many per round trip."""

    def __init__(self, repo: Path) -> None:
        self.repo = repo
        self.proc = _popen(repo, "cat-file", "--batch", stdin=subprocess.PIPE)

    def read(self, sha: str) -> bytes | None:
        """The blob's bytes; None when the repository lacks it (a partial or shallow clone)."""
        return self.read_many([sha])[0]

    def read_many(self, shas: list[str]) -> list[bytes | None]:
        """`read` of each sha, asking for up to _BLOB_BATCH at a time (one flush, not one per blob)."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        out: list[bytes | None] = []
        for start in range(0, len(shas), _BLOB_BATCH):
            batch = shas[start : start + _BLOB_BATCH]
            self.proc.stdin.write("".join(s + "\n" for s in batch).encode("ascii"))
            self.proc.stdin.flush()
            for sha in batch:
                header = self.proc.stdout.readline().split()
                if header[-1:] == [b"missing"]:
                    out.append(None)
                    continue
                if len(header) != 3:
                    raise DataError(f"git cat-file in {self.repo}: no object {sha} ({b' '.join(header)!r})")
                out.append(self.proc.stdout.read(int(header[2])))
                self.proc.stdout.read(1)  # the newline after the content
        return out

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.kill()
        self.proc.wait()


def split_patch(patch: bytes) -> list[bytes]:
    """A commit's patch cut into one piece per file ("diff --git" starts each; no content line can,
    since every content line starts with a space, + or -)."""
    parts = patch.split(b"\ndiff --git ")
    pieces = [parts[0]] + [b"diff --git " + p for p in parts[1:]]
    return [p + b"\n" for p in pieces[:-1] if p] + ([pieces[-1]] if pieces[-1] else [])
