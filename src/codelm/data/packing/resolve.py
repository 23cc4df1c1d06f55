"""Resolve imports to files of the same repository and weigh the resulting edges.

Resolution follows CodeGemma's rule, **longest suffix match**: an import `a.b.c` (path `a/b/c`)
goes to the file whose path, without extension, shares the longest run of trailing components
with it, so `com/foo/Bar` finds `src/main/java/com/foo/Bar.java` and a Go import
`github.com/me/proj/internal/util` finds the directory `internal/util`. A file match must
cover two components of a dotted import (one for a single name), else `from os import path`
would find any `path.py`; a package directory (Go, Java wildcards) may match on one. Relative imports
(`from . import x`, `./x`, `#include "x.h"`, `mod x;`) are tried against the importer's own
directory first. Package files stand for their directory (`pkg/__init__.py`, `lib/index.js`,
`foo/mod.rs`). Ties go to the candidate nearest the importer, then to the smaller path. Only files of the
importer's language group are candidates (`imports.GROUPS`: a Python import never resolves to
`setup.cfg`, a C include never to a Python file).

An edge's **importance** (CodeGemma weighs edges but does not publish how) is the import's base
strength (1 for a named module or file, 0.5 for a wildcard or `<system>` include) times
`1 + log(1 + uses)`, where uses counts the names the import binds in the rest of the file: a
module used forty times matters more than one imported for a single call. Repeated imports of
the same file add up.
"""

from __future__ import annotations

import math
import posixpath
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from codelm.data.packing.imports import DEFAULT_TOP_LINES, GROUPS, Import, extract_imports

_PACKAGE_FILES = {"__init__", "index", "mod"}


def _stem(path: str) -> str:
    """`src/pkg/mod.py` -> `src/pkg/mod`; package files -> their directory (`pkg/__init__.py` -> `pkg`)."""
    base, name = posixpath.split(path)
    stem = name.rsplit(".", 1)[0] if "." in name[1:] else name
    if stem in _PACKAGE_FILES and base:
        return base
    return posixpath.join(base, stem) if base else stem


def _common_suffix(a: list[str], b: list[str]) -> int:
    n = 0
    while n < len(a) and n < len(b) and a[-1 - n] == b[-1 - n]:
        n += 1
    return n


def _common_prefix(a: str, b: str) -> int:
    pa, pb = a.split("/"), b.split("/")
    n = 0
    while n < len(pa) and n < len(pb) and pa[n] == pb[n]:
        n += 1
    return n


@dataclass(frozen=True)
class RepoFile:
    path: str
    text: str
    language: str | None = None


class PathIndex:
    """Files and directories of one repository, indexed by their last component."""

    def __init__(self, paths: Sequence[str]) -> None:
        self.paths = sorted(paths)
        self.by_stem: dict[str, list[str]] = {}
        self.by_name: dict[str, list[str]] = defaultdict(list)  # last stem component -> paths
        self.dirs: dict[str, list[str]] = defaultdict(list)  # directory -> its files
        for p in self.paths:
            stem = _stem(p)
            self.by_stem.setdefault(stem, []).append(p)
            self.by_name[stem.rsplit("/", 1)[-1]].append(p)
            self.dirs[posixpath.dirname(p)].append(p)
        self.dir_by_name: dict[str, list[str]] = defaultdict(list)
        for d in self.dirs:
            if d:
                self.dir_by_name[d.rsplit("/", 1)[-1]].append(d)

    def _best(
        self, want: list[str], options: list[str], importer: str, key: str = "stem", need: int = 1
    ) -> str | None:
        best, best_key = None, None
        for option in options:
            parts = (_stem(option) if key == "stem" else option).split("/")
            score = _common_suffix(want, parts)
            if score < need:
                continue
            rank = (-score, -_common_prefix(option, importer), option)
            if best_key is None or rank < best_key:
                best, best_key = option, rank
        return best

    def resolve(self, imp: Import, importer: str) -> list[str]:
        """Files `imp` (made in file `importer`) refers to, [] if none in this repository."""
        here = posixpath.dirname(importer)
        for cand in imp.candidates:
            if imp.relative:
                target = posixpath.normpath(posixpath.join(here, cand))
                if target.startswith(".."):
                    continue
                if imp.directory and target in self.dirs:
                    return list(self.dirs[target])
                if target in self.by_stem:
                    return [self.by_stem[target][0]]
            want = [p for p in cand.split("/") if p not in ("", ".", "..")]
            if not want:
                continue
            if imp.directory:
                d = self._best(want, self.dir_by_name.get(want[-1], []), importer, key="dir")
                if d is not None:
                    return list(self.dirs[d])
                continue
            # a dotted import must match at least two trailing components: `from os import path`
            # is not the repository's `utils/path.py`
            f = self._best(want, self.by_name.get(want[-1], []), importer, need=min(2, len(want)))
            if f is not None:
                return [f]
        return []


def uses(text: str, names: Sequence[str]) -> int:
    """How often the bound names occur in `text`, not counting the import statements themselves."""
    total = 0
    for name in set(names):
        if name and name.isidentifier():
            total += max(len(re.findall(rf"(?<![\w$]){re.escape(name)}(?![\w$])", text)) - 1, 0)
    return total


def import_edges(files: Sequence[RepoFile], n_lines: int = DEFAULT_TOP_LINES) -> dict[tuple[str, str], float]:
    """`{(importer, imported): importance}` over the files of one repository (no self edges)."""
    groups: dict[str, list[str]] = defaultdict(list)
    for f in files:
        if (f.language or "") in GROUPS:
            groups[GROUPS[f.language or ""]].append(f.path)
    indexes = {g: PathIndex(paths) for g, paths in groups.items()}  # imports stay within a group
    edges: dict[tuple[str, str], float] = defaultdict(float)
    for f in files:
        index = indexes.get(GROUPS.get(f.language or "", ""))
        if index is None:
            continue
        for imp in extract_imports(f.text, f.language, n_lines):
            targets = [t for t in index.resolve(imp, f.path) if t != f.path]
            if not targets:
                continue
            weight = imp.strength * (1.0 + math.log1p(uses(f.text, imp.names)))
            for t in targets:
                edges[(f.path, t)] += weight
    return dict(edges)
