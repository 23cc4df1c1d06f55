"""The crates HumanEval-X's Rust programs link against, built once, offline, from Debian's sources.

CodeGeeX's harness runs ``cargo test`` in a crate whose Cargo.toml (``codegeex/benchmark/rust``)
asks for ``rand = "0.4"``, ``regex = "1"`` and ``md5 = "0.7.0"``; every problem's declaration
``use``s all three. Debian ships regex 1.7, md5 0.7 and rand 0.8 (librust-*-dev, sources in
/usr/share/cargo/registry), and no rand 0.4, whose API differs: Rust/50's own test calls
``rng.gen_range(low, high)``, which rand 0.8 spells ``gen_range(low..high)``. So the crate
linked as ``rand`` is a small compatibility crate giving rand 0.4's ``Rng`` methods
(``gen``, ``gen_range(low, high)``, ``gen_weighted_bool``, ``gen_ascii_chars``, ``choose``,
``choose_mut``, ``shuffle``), ``thread_rng`` and ``random`` on top of rand 0.8.

Debian's cargo builds it all with crates-io replaced by that directory (no network); samples then
run only ``rustc --test main.rs --extern rand=... --extern regex=... --extern md5=...``.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from .caches import PrepareError, cache_root, key_of, locked, read_manifest, run_step, write_manifest

log = logging.getLogger(__name__)

DEBIAN_CARGO_REGISTRY = Path("/usr/share/cargo/registry")
RUST_CRATES = ("rand", "regex", "md5")
SHIM_DIR = "rand-0.4-compat"
# regex's default "perf-literal" feature needs aho-corasick and memchr, which librust-regex-dev
# does not pull in; the other features keep its behaviour (only literal-search speed differs).
CARGO_TOML = f"""\
[package]
name = "humaneval-x-deps"
version = "0.1.0"
edition = "2021"

[dependencies]
rand = {{ path = "{SHIM_DIR}" }}
regex = {{ version = "1", default-features = false, features = [
    "std", "unicode", "perf-cache", "perf-dfa", "perf-inline",
] }}
md5 = "0.7"
"""
SHIM_CARGO_TOML = """\
[package]
name = "rand"
version = "0.4.6"
edition = "2018"

[lib]
path = "lib.rs"

[dependencies]
rand08 = { package = "rand", version = "0.8" }
"""
SHIM_LIB_RS = """\
//! rand 0.4's API (HumanEval-X's harness pins rand = "0.4") over rand 0.8: the methods samples call.
use rand08::distributions::uniform::SampleUniform;
use rand08::distributions::{Alphanumeric, Distribution, Standard};
use rand08::seq::SliceRandom;

pub use rand08::rngs::{StdRng, ThreadRng};
pub use rand08::{random, RngCore, SeedableRng};

pub fn thread_rng() -> ThreadRng {
    rand08::thread_rng()
}

pub trait Rng: RngCore {
    fn gen<T>(&mut self) -> T where Standard: Distribution<T>, Self: Sized {
        rand08::Rng::gen(self)
    }

    /// As in 0.4: a value in [low, high); panics when low >= high.
    fn gen_range<T: PartialOrd + SampleUniform>(&mut self, low: T, high: T) -> T where Self: Sized {
        assert!(low < high, "Rng.gen_range called with low >= high");
        rand08::Rng::gen_range(self, low..high)
    }

    fn gen_weighted_bool(&mut self, n: u32) -> bool where Self: Sized {
        n <= 1 || self.gen_range(0, n) == 0
    }

    fn gen_ascii_chars(&mut self) -> AsciiChars<'_, Self> where Self: Sized {
        AsciiChars { rng: self }
    }

    fn choose<'a, T>(&mut self, values: &'a [T]) -> Option<&'a T> where Self: Sized {
        values.choose(self)
    }

    fn choose_mut<'a, T>(&mut self, values: &'a mut [T]) -> Option<&'a mut T> where Self: Sized {
        values.choose_mut(self)
    }

    fn shuffle<T>(&mut self, values: &mut [T]) where Self: Sized {
        values.shuffle(self)
    }
}

impl<R: RngCore + ?Sized> Rng for R {}

pub struct AsciiChars<'a, R: 'a> {
    rng: &'a mut R,
}

impl<'a, R: RngCore> Iterator for AsciiChars<'a, R> {
    type Item = char;

    fn next(&mut self) -> Option<char> {
        Some(char::from(Alphanumeric.sample(self.rng)))
    }
}
"""
CARGO_CONFIG = f"""\
[source.crates-io]
replace-with = "debian"

[source.debian]
directory = "{DEBIAN_CARGO_REGISTRY}"

[net]
offline = true
"""


def missing_crates() -> list[str]:
    """Which of rand, regex, md5 have no sources in Debian's cargo registry."""
    registry = DEBIAN_CARGO_REGISTRY
    present = {path.name.rsplit("-", 1)[0] for path in (registry.iterdir() if registry.is_dir() else ())}
    return [crate for crate in RUST_CRATES if crate not in present]


def _write_project(directory: Path) -> None:
    (directory / "src").mkdir(exist_ok=True)
    (directory / "src" / "lib.rs").write_text("")
    (directory / "Cargo.toml").write_text(CARGO_TOML)
    (directory / SHIM_DIR).mkdir(exist_ok=True)
    (directory / SHIM_DIR / "Cargo.toml").write_text(SHIM_CARGO_TOML)
    (directory / SHIM_DIR / "lib.rs").write_text(SHIM_LIB_RS)
    (directory / "cargo-home").mkdir(exist_ok=True)
    (directory / "cargo-home" / "config.toml").write_text(CARGO_CONFIG)


def _externs(cargo_json: str, directory: Path) -> dict[str, str]:
    """The rlib of each direct dependency, from cargo's JSON messages (two crates are named rand:
    the compatibility crate is the one whose manifest is ours)."""
    externs = {}
    for line in cargo_json.splitlines():
        message = json.loads(line) if line.startswith("{") else {}
        if message.get("reason") != "compiler-artifact" or message["target"]["name"] not in RUST_CRATES:
            continue
        ours = Path(message["manifest_path"]).parent == directory / SHIM_DIR
        if (message["target"]["name"] == "rand") == ours:
            externs[message["target"]["name"]] = next(f for f in message["filenames"] if f.endswith(".rlib"))
    if sorted(externs) != sorted(RUST_CRATES):
        raise PrepareError(f"cargo built {sorted(externs)}, expected {sorted(RUST_CRATES)}")
    return externs


def rust_deps(cargo: str | None, rustc: str, path: str) -> dict:
    """Build the crates once (``cargo`` is needed only then); ``{"deps": dir, "externs": {crate: rlib}}``."""
    version = run_step([rustc, "-vV"], {"PATH": path}, Path("/"), 60, "rustc -vV")
    crates = sorted(os.listdir(DEBIAN_CARGO_REGISTRY)) if DEBIAN_CARGO_REGISTRY.is_dir() else []
    directory = cache_root() / f"rust-{key_of(version, CARGO_TOML, SHIM_LIB_RS, *crates)}"
    with locked(directory):
        manifest = read_manifest(directory, "deps")
        if manifest and all(os.path.exists(rlib) for rlib in manifest["externs"].values()):
            return manifest
        if cargo is None:
            raise PrepareError("cargo not found: needed once to build the crates rand, regex and md5")
        log.info("HumanEval-X: building the Rust crates %s once into %s", RUST_CRATES, directory)
        _write_project(directory)
        env = {
            "PATH": path,
            "HOME": str(directory),
            "CARGO_HOME": str(directory / "cargo-home"),
            "CARGO_TARGET_DIR": str(directory / "target"),
            "RUSTC": rustc,
            "LANG": "C.UTF-8",
        }
        argv = [cargo, "build", "--release", "--offline", "--message-format=json"]
        out = run_step(argv, env, directory, 1800, "cargo build of rand/regex/md5")
        deps = str(directory / "target" / "release" / "deps")
        return write_manifest(directory, {"deps": deps, "externs": _externs(out, directory)})
