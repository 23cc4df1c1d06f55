"""Find each language's compilers and runtimes as the sandbox will see them, or say what is missing.

Tools are looked up on the sandbox's own PATH (the interpreter's bin, /usr/local/bin, /usr/bin,
/bin), not the caller's: ``~/.cargo/bin`` or ``~/.local/bin`` are hidden inside the sandbox, so a
rustc found there would pass a check here and then be missing from every sample. Resolution runs
each language's one-time preparation (``caches``) and is remembered per process, failures included.

Why a language is unavailable is one line (it sits in ``codelm eval --list-tasks``' table and in the
run summary); a tool's full output, such as the C++ probe's compiler errors, is logged at INFO, which
``codelm eval --list-tasks --verbose`` shows.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ...program import base_env
from . import caches, rust_crates
from .problems import check_language

log = logging.getLogger(__name__)

SANDBOX_PATH = base_env()["PATH"]
DEBIAN_GOPATH = "/usr/share/gocode"
_HINTS = {
    "python": "pip install numpy (the harness's Python header imports it)",
    "cpp": "apt-get install g++ libboost-dev libssl-dev",
    "java": "apt-get install default-jdk-headless",
    "js": "apt-get install nodejs npm; js-md5 is then installed from the npm registry on first use",
    "go": "apt-get install golang-go golang-github-stretchr-testify-dev",
    "rust": "apt-get install rustc cargo librust-rand-dev librust-regex-dev librust-md5-dev",
}
# C++: the headers and library the problems use (boost::any in two, OpenSSL's MD5 in CPP/162).
_CPP_PROBE = """\
#include<boost/any.hpp>
#include<openssl/md5.h>
int main(){ boost::any a = 1; unsigned char d[16]; MD5((const unsigned char*)"", 0, d); return 0; }
"""


class ToolchainMissing(RuntimeError):
    """A language's toolchain is not usable here; the one-line message says what is missing and
    ``detail`` keeps the tool's full output, if any."""

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.detail = detail


def first_error(output: str) -> str:
    """The line of a compiler's output that names the failure: the first mentioning "error", else
    the last non-empty one (gcc follows it with the source line and a caret, on lines of their own)."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    return next((line for line in lines if "error" in line.lower()), lines[-1] if lines else "no output")


@dataclass(frozen=True)
class Toolchain:
    """What a language's programs are built with: absolute tool paths, extra environment, extra
    compiler arguments (Rust's ``--extern`` crates)."""

    language: str
    tools: Mapping[str, str] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)
    compile_args: tuple[str, ...] = ()


def install_hint(language: str) -> str:
    """How to install what ``language`` needs (the Makefile's ``make system-deps`` does it)."""
    return _HINTS[check_language(language)]


def find(*names: str) -> dict[str, str]:
    """Absolute paths of ``names`` on the sandbox PATH; ToolchainMissing names the first absent one."""
    tools = {}
    for name in names:
        path = shutil.which(name, path=SANDBOX_PATH)
        if path is None:
            raise ToolchainMissing(f"{name} not found (looked in the sandbox PATH {SANDBOX_PATH})")
        tools[name] = path
    return tools


def _python() -> Toolchain:
    if importlib.util.find_spec("numpy") is None:
        raise ToolchainMissing("numpy not installed (the harness's Python header imports it)")
    return Toolchain("python")


def _cpp() -> Toolchain:
    tools = find("g++")
    with tempfile.TemporaryDirectory() as work:
        Path(work, "probe.cpp").write_text(_CPP_PROBE)
        argv = [tools["g++"], "-std=c++11", "probe.cpp", "-o", "probe", "-lcrypto", "-lssl"]
        try:
            done = subprocess.run(argv, cwd=work, capture_output=True, text=True, timeout=300)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ToolchainMissing(f"g++ probe failed: {exc}") from exc
    if done.returncode != 0:
        raise ToolchainMissing(
            f"g++ cannot build with Boost and OpenSSL: {first_error(done.stderr)}", detail=done.stderr
        )
    return Toolchain("cpp", tools)


def _java() -> Toolchain:
    return Toolchain("java", find("javac", "java"))


def _js() -> Toolchain:
    tools = find("node")
    node_path = caches.js_node_path(shutil.which("npm", path=SANDBOX_PATH))
    return Toolchain("js", tools, {"NODE_PATH": node_path})


def _go() -> Toolchain:
    tools = find("go")
    testify = Path(DEBIAN_GOPATH, "src", "github.com", "stretchr", "testify", "assert")
    if not testify.is_dir():
        raise ToolchainMissing(f"Go testify not installed (no {testify})")
    cache = caches.go_cache(tools["go"], DEBIAN_GOPATH, SANDBOX_PATH)
    return Toolchain("go", tools, caches.go_env(cache, DEBIAN_GOPATH, SANDBOX_PATH))


def _rust() -> Toolchain:
    tools = find("rustc")
    missing = rust_crates.missing_crates()
    if missing:
        registry = rust_crates.DEBIAN_CARGO_REGISTRY
        raise ToolchainMissing(f"Rust crates {', '.join(missing)} not installed (not in {registry})")
    cargo = shutil.which("cargo", path=SANDBOX_PATH)
    built = rust_crates.rust_deps(cargo, tools["rustc"], SANDBOX_PATH)
    args = ["-L", f"dependency={built['deps']}"]
    for crate, rlib in sorted(built["externs"].items()):
        args += ["--extern", f"{crate}={rlib}"]
    return Toolchain("rust", tools, compile_args=tuple(args))


_RESOLVERS = {"python": _python, "cpp": _cpp, "java": _java, "js": _js, "go": _go, "rust": _rust}


@functools.cache
def _resolve(language: str) -> Toolchain | str:
    try:
        return _RESOLVERS[language]()
    except ToolchainMissing as exc:
        if exc.detail:
            log.info("HumanEval-X %s toolchain: %s; the full output:\n%s", language, exc, exc.detail.rstrip())
        why = str(exc)
    except caches.PrepareError as exc:
        why = str(exc)
    except OSError as exc:  # e.g. the cache directory cannot be created
        why = f"cannot prepare the toolchain: {exc}"
    return " ".join(why.split())  # one line, whatever a tool printed


def resolve(language: str) -> Toolchain:
    """``language``'s toolchain, prepared (caches built) on first use; ToolchainMissing if unusable."""
    found = _resolve(check_language(language))
    if isinstance(found, str):
        raise ToolchainMissing(f"HumanEval-X {language}: {found}. Install: {install_hint(language)}")
    return found


def toolchain_available(language: str) -> tuple[bool, str]:
    """``(True, "")``, or ``(False, what is missing)`` such as "g++ not found" (cached per process)."""
    found = _resolve(check_language(language))
    return (False, found) if isinstance(found, str) else (True, "")
