"""One-time, offline-afterwards preparation the HumanEval-X toolchains need, built outside the sandbox.

Samples run with no network, a read-only host and a fresh work directory, so whatever a check
program links against must already exist, readable by the sandbox's unprivileged user:

* Rust: the rand, regex and md5 crates, built once with Debian's cargo (see ``rust_crates``);
  each sample then compiles only its own file with ``rustc --extern``.
* Go: a build cache (GOCACHE) warmed with testify and the standard packages the harness imports.
  Samples use it read-only (Go silently skips cache writes it cannot make), so a sample compiles
  only its own package instead of testify and its dependencies.
* JavaScript: the ``js-md5`` package (HumanEval-X's JavaScript/162 ``require``s it), installed
  from the npm registry into the cache: the one step that needs a network, once.

Everything lives under ``cache_root()``; each build holds a lock and writes its manifest last, so
concurrent test sessions share one build and an interrupted build is redone.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

from ...jail.filesystem import SYSTEM_PATHS, is_within
from ...program import Isolation

log = logging.getLogger(__name__)

CACHE_ENV = "CODELM_HUMANEVAL_X_CACHE"
JS_MD5 = "js-md5@0.7.3"  # the release current when HumanEval-X was published (Sep 2022)
# Packages the Go warm-up imports: testify, the harness's helper list, and common extras.
GO_WARM_PACKAGES = (
    "bytes crypto/md5 fmt math math/rand regexp sort strconv strings time "
    "bufio container/heap container/list encoding/hex errors math/big os reflect unicode unicode/utf8"
).split()


class PrepareError(RuntimeError):
    """A toolchain's one-time preparation failed (the message says which step and why)."""


def cache_root() -> Path:
    """``$CODELM_HUMANEVAL_X_CACHE``, else ``<sys.prefix>/share/codelm/humaneval-x``: the interpreter's
    prefix is bound into every sandbox worker, so the cache is visible there without ``keep``.
    If the prefix is not writable, ``~/.cache/codelm/humaneval-x`` (then see ``sandbox_keep_paths``)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    prefix_cache = Path(sys.prefix) / "share" / "codelm" / "humaneval-x"
    existing = next(p for p in (prefix_cache, *prefix_cache.parents) if p.exists())
    if os.access(existing, os.W_OK):
        return prefix_cache
    return Path.home() / ".cache" / "codelm" / "humaneval-x"


def sandbox_keep_paths(isolation: Isolation | None = None) -> tuple[str, ...]:
    """Paths to add to ``Isolation.keep`` so samples see the cache; empty when it is already in
    their view (the interpreter's prefix, a kept path, the system directories). Samples see only
    that view (``jail/filesystem.py``), so a cache anywhere else (``$HOME``, ``/srv``, ``/var``, a
    data disk) must be kept; one under /tmp cannot be: each sample gets an empty /tmp of its own."""
    root = str(cache_root())
    real = os.path.realpath(root)
    iso = isolation or Isolation()
    if is_within(real, "/tmp"):
        log.warning(
            "HumanEval-X cache %s is under /tmp, which sandboxed samples never see: set %s elsewhere",
            root,
            CACHE_ENV,
        )
    shown = [os.path.realpath(p) for p in (*iso.kept_paths(), *SYSTEM_PATHS)]
    return () if any(is_within(real, path) for path in shown) else (root,)


def key_of(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:12]


def ensure_dir(directory: Path) -> None:
    """Create ``directory`` and missing parents as 0755: the sandbox's user must traverse them."""
    missing = [p for p in (directory, *directory.parents) if not p.exists()]
    for path in reversed(missing):
        path.mkdir(exist_ok=True)
        path.chmod(0o755)  # explicit: a restrictive umask would hide the cache from samples


@contextlib.contextmanager
def locked(directory: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``directory`` (created if missing) while building in it."""
    ensure_dir(directory)
    with open(directory / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def run_step(argv: list[str], env: Mapping[str, str], cwd: Path, timeout: float, what: str) -> str:
    """Run one preparation command; its stdout, or PrepareError with the tail of its output."""
    try:
        done = subprocess.run(argv, env=dict(env), cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PrepareError(f"{what}: {exc}") from exc
    if done.returncode != 0:  # the first lines that are not warnings say why; stack traces follow
        lines = [line for line in (done.stderr or done.stdout).splitlines() if line.strip()]
        said = [line for line in lines if "warn" not in line.lower()[:16]] or lines
        raise PrepareError(f"{what} failed ({done.returncode}): " + " | ".join(said[:4])[:600])
    return done.stdout


def make_readable(directory: Path) -> None:
    """Samples run as an unprivileged user: everything in the cache must be world-readable."""
    directory.chmod(0o755)
    for root, dirs, files in os.walk(directory):
        for name in dirs:
            os.chmod(os.path.join(root, name), 0o755)
        for name in files:
            path = os.path.join(root, name)
            os.chmod(path, os.stat(path).st_mode | 0o444)


def read_manifest(directory: Path, *built: str) -> dict | None:
    """The manifest of a finished build, or None (also when a ``built`` key's path has vanished)."""
    path = directory / "manifest.json"
    if not path.exists():
        return None
    manifest = json.loads(path.read_text())
    paths = [manifest.get(key) for key in built]
    if not all(isinstance(p, str) and os.path.exists(p) for p in paths):
        log.warning("HumanEval-X cache %s is incomplete; rebuilding it", directory)
        return None
    return manifest


def write_manifest(directory: Path, manifest: dict) -> dict:
    make_readable(directory)
    tmp = directory / "manifest.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=1))
    tmp.chmod(0o644)
    tmp.replace(directory / "manifest.json")
    return manifest


def go_env(go_cache: str, gopath: str, path: str) -> dict[str, str]:
    """The Go environment of both the warm-up and every sample: GOPATH mode, no network, no cgo."""
    return {
        "PATH": path,
        "GO111MODULE": "off",  # GOPATH mode: testify comes from Debian's /usr/share/gocode
        "GOPATH": gopath,
        "GOCACHE": go_cache,
        "GOFLAGS": "",
        "GOPROXY": "off",
        "GOTOOLCHAIN": "local",
        "CGO_ENABLED": "0",  # pure-Go std: no C compiler at link time, smaller cache
    }


def go_cache(go: str, gopath: str, path: str) -> str:
    """Warm a Go build cache with testify and common std packages; returns its directory."""
    version = run_step([go, "version"], {"PATH": path, "HOME": "/"}, Path("/"), 60, "go version")
    testify = Path(gopath) / "src" / "github.com" / "stretchr" / "testify" / "go.mod"
    testify_version = testify.read_text() if testify.exists() else ""
    directory = cache_root() / f"go-{key_of(version, gopath, testify_version, *GO_WARM_PACKAGES)}"
    with locked(directory):
        if manifest := read_manifest(directory, "gocache"):
            return manifest["gocache"]
        log.info("HumanEval-X: warming a Go build cache with testify in %s", directory)
        cache = directory / "gocache"
        imports = "".join(f'    _ "{p}"\n' for p in GO_WARM_PACKAGES)
        source = (
            'package main\n\nimport (\n    "testing"\n    "github.com/stretchr/testify/assert"\n'
            f"{imports})\n\nfunc TestWarm(t *testing.T) {{\n    assert.Equal(t, 1, 1)\n}}\n"
        )
        with tempfile.TemporaryDirectory() as work:
            Path(work, "main_test.go").write_text(source)
            env = {**go_env(str(cache), gopath, path), "HOME": work}
            argv = [go, "test", "-c", "-o", "warm.test", "main_test.go"]
            run_step(argv, env, Path(work), 900, "go warm-up")
        return write_manifest(directory, {"gocache": str(cache)})["gocache"]


def js_node_path(npm: str | None) -> str:
    """Install js-md5 from the npm registry once (``npm`` is needed only then); returns the
    ``node_modules`` directory for NODE_PATH."""
    directory = cache_root() / "js"
    with locked(directory):
        if (manifest := read_manifest(directory, "node_path")) and manifest.get("package") == JS_MD5:
            return manifest["node_path"]
        if npm is None:
            raise PrepareError(f"npm not found: needed once to install {JS_MD5}")
        log.info("HumanEval-X: installing %s from npm into %s", JS_MD5, directory)
        argv = [npm, "install", "--prefix", str(directory), "--no-audit", "--no-fund", "--no-save", JS_MD5]
        run_step(argv, os.environ, directory, 600, f"npm install {JS_MD5}")
        node_path = str(directory / "node_modules")
        if not (Path(node_path) / "js-md5" / "package.json").exists():
            raise PrepareError(f"npm install {JS_MD5} left no {node_path}/js-md5")
        return write_manifest(directory, {"package": JS_MD5, "node_path": node_path})["node_path"]
