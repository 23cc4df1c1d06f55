"""Small git repositories with awkward histories, built with the real `git` in a temporary directory."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

GIT = shutil.which("git")
needs_git = pytest.mark.skipif(GIT is None, reason="git is not installed (apt-get install git)")

_ENV = {
    "GIT_AUTHOR_NAME": "Ada Dev",
    "GIT_AUTHOR_EMAIL": "ada.dev@corp-mail.net",
    "GIT_COMMITTER_NAME": "Ada Dev",
    "GIT_COMMITTER_EMAIL": "ada.dev@corp-mail.net",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}


def git(repo: Path, *args: str | bytes, env: dict[str, str] | None = None) -> str:
    """Run git in `repo` with a fixed identity and no user config; returns stdout."""
    full = {**os.environ, **_ENV, **(env or {})}
    proc = subprocess.run([GIT, "-C", str(repo), *args], env=full, capture_output=True, check=True)
    return proc.stdout.decode("utf-8", "replace")


def commit(repo: Path, files: dict[str | bytes, str | bytes | None], message: str | bytes, **env: str) -> str:
    """Write (None: delete) `files`, commit everything with `message`; returns the new sha."""
    for rel, content in files.items():
        path = Path(os.fsdecode(os.path.join(os.fsencode(repo), os.fsencode(rel))))
        if content is None:
            path.unlink()
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    git(repo, "add", "-A")
    args: list[str | bytes] = ["commit", "-q", "--allow-empty", "--allow-empty-message", "-m", message]
    git(repo, *args, env=env)
    return git(repo, "rev-parse", "HEAD").strip()


def set_raw_message(repo: Path, message: bytes) -> str:
    """Replace HEAD's message by raw bytes; `git commit` would re-encode Latin-1 to UTF-8."""
    full = {**os.environ, **_ENV}
    raw = subprocess.run(
        [GIT, "-C", str(repo), "cat-file", "commit", "HEAD"], capture_output=True, check=True
    )
    header = raw.stdout.split(b"\n\n", 1)[0]
    new = subprocess.run(
        [GIT, "-C", str(repo), "hash-object", "-t", "commit", "-w", "--stdin"],
        input=header + b"\n\n" + message,
        env=full,
        capture_output=True,
        check=True,
    )
    sha = new.stdout.decode().strip()
    git(repo, "update-ref", "HEAD", sha)
    return sha


def init(repo: Path) -> Path:
    repo.mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    return repo


def awkward_repo(root: Path) -> tuple[Path, dict[str, str]]:
    """A history with every case the reader must handle; returns the repo and sha by label."""
    repo = init(root / "proj")
    shas = {}
    code = "def area(r):\n    return 3.14159 * r * r\n\n\ndef perimeter(r):\n    return 2 * 3.14159 * r\n"
    shas["add"] = commit(
        repo, {"geo/circle.py": code, "logo.png": b"\x89PNG\x00\x01\x02"}, "Add circle geometry helpers"
    )
    edited = code.replace("3.14159", "math.pi").replace("def area", "import math\n\n\ndef area")
    shas["edit"] = commit(
        repo,
        {"geo/circle.py": edited},
        "Use math.pi instead of a literal\n\nReported by bob.smith@corp-mail.net",
    )
    shas["rename"] = commit(
        repo, {"geo/circle.py": None, "geo/circles.py": edited}, "Rename circle module to circles"
    )
    shas["binary"] = commit(repo, {"logo.png": b"\x89PNG\x00\x09\x09"}, "Refresh the project logo image")
    big = "".join(f"row {i} " + "x" * 90 + "\n" for i in range(100_000))  # about 10 MB
    shas["huge"] = commit(repo, {"data/big.txt": big}, "Add the full sample table")
    shas["latin1_name"] = commit(repo, {b"caf\xe9.py": "x = 1\n"}, "Add a module with a Latin-1 name")
    commit(repo, {"geo/square.py": "def side(a):\n    return a\n"}, "placeholder")
    shas["latin1_msg"] = set_raw_message(repo, b"Caf\xe9 support added here\n")
    shas["latin1_content"] = commit(
        repo, {"legacy.py": b"# caf\xe9 au lait\nx = 1\n"}, "Add a legacy Latin-1 module"
    )
    shas["empty_msg"] = commit(repo, {"geo/square.py": "def side(a):\n    return a * 1\n"}, "")
    shas["empty"] = commit(repo, {}, "An empty commit with no change")
    shas["bot"] = commit(
        repo,
        {"requirements.txt": "requests==2.32.0\n"},
        "Bump requests from 2.31.0 to 2.32.0",
        GIT_AUTHOR_NAME="dependabot[bot]",
        GIT_AUTHOR_EMAIL="49699333+dependabot[bot]@users.noreply.github.com",
    )
    git(repo, "checkout", "-q", "-b", "side", shas["rename"])
    shas["side"] = commit(
        repo, {"geo/tri.py": "def tri(a, b):\n    return a * b / 2\n"}, "Add triangle area helper"
    )
    git(repo, "checkout", "-q", "main")
    git(repo, "merge", "-q", "--no-edit", "side")
    shas["merge"] = git(repo, "rev-parse", "HEAD").strip()
    return repo, shas
