"""Find what a source file imports, from its first lines, as candidate repository paths.

CodeGemma's multi-file packing (report §2; shared/research/data-recipes.md §2.2) extracts the
imports of the top N lines of every file and resolves them to files of the same repository.
This module does the first half: per language, regular expressions over the top `top_lines`
lines turn each import into an `Import`, a list of candidate paths in preference order, without
extension (`pkg/sub/mod`), each either relative to the importing file or to be matched against
path suffixes. Resolution is `packing.resolve`. `names` are the identifiers the import binds,
used to weigh the edge by how often the file uses them.

Languages: Python, JavaScript/TypeScript (import/export from, require, dynamic import), Java,
Kotlin and Scala (dotted imports, static, wildcards), Go (import blocks; a package is a
directory), C/C++/Objective-C (`#include "..."` and `<...>`), Rust (`mod x;`, `use crate::`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath

#: CodeGemma does not publish N; license headers and module docstrings push Python imports past 100
DEFAULT_TOP_LINES = 200


@dataclass(frozen=True)
class Import:
    """One import statement's candidate targets.

    candidates: paths without extension, most specific first (`a/b/c` before `a/b` for
    `from a.b import c`). relative: candidates are relative to the importing file's directory.
    directory: the target is a directory (a Go package, a Java wildcard), all its files count.
    strength: base importance of the edge (1 = a named module or file, lower for wildcards).
    """

    candidates: tuple[str, ...]
    relative: bool = False
    directory: bool = False
    strength: float = 1.0
    names: tuple[str, ...] = field(default=())


_PY_IMPORT = re.compile(r"^[ \t]*import[ \t]+([\w. \t,]+?)[ \t]*(?:#.*)?$", re.MULTILINE)
_PY_FROM = re.compile(r"^[ \t]*from[ \t]+(\.*)([\w.]*)[ \t]+import[ \t]+(\([^)]*\)|[^\n#]+)", re.MULTILINE)
_JS = re.compile(
    r"""(?:^|[;\s])(?:import|export)\b[^'"`;]*?\bfrom\s*['"]([^'"]+)['"]"""
    r"""|(?:^|[;\s])import\s*['"]([^'"]+)['"]"""
    r"""|\brequire\s*\(\s*['"]([^'"]+)['"]\s*\)"""
    r"""|\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)""",
    re.MULTILINE,
)
_JS_NAMES = re.compile(r"(?:import|export)\s+(?:type\s+)?([\w$,{}\s*]+?)\s+from\b")
_JAVA = re.compile(r"^[ \t]*import[ \t]+(static[ \t]+)?(\w+(?:\.\w+)*)(\.\*)?[ \t]*;?", re.MULTILINE)
_GO_BLOCK = re.compile(r"^import\s*\(([^)]*)\)", re.MULTILINE)
_GO_SINGLE = re.compile(r'^import\s+(?:[\w.]+\s+)?"([^"]+)"', re.MULTILINE)
_GO_SPEC = re.compile(r'(?:([\w.]+)\s+)?"([^"]+)"')
_C_INCLUDE = re.compile(r'^[ \t]*#[ \t]*(?:include|import)[ \t]*([<"])([^>"]+)[>"]', re.MULTILINE)
_RUST_MOD = re.compile(r"^[ \t]*(?:pub(?:\([\w:]+\))?[ \t]+)?mod[ \t]+(\w+)[ \t]*;", re.MULTILINE)
_RUST_USE = re.compile(r"^[ \t]*(?:pub[ \t]+)?use[ \t]+(crate|self|super)::([\w:]+)", re.MULTILINE)

JS_LIKE = {"javascript", "typescript", "tsx", "vue"}
JVM = {"java", "kotlin", "scala", "groovy"}
C_LIKE = {"c", "cpp", "cuda", "objc"}


def _py(text: str) -> list[Import]:
    out = []
    for m in _PY_IMPORT.finditer(text):
        for part in m.group(1).split(","):
            words = part.split()
            if not words:
                continue
            module = words[0]
            bound = words[2] if len(words) == 3 and words[1] == "as" else module.split(".")[0]
            out.append(Import((module.replace(".", "/"),), names=(bound,)))
    for m in _PY_FROM.finditer(text):
        dots, module, names_text = m.group(1), m.group(2), m.group(3)
        names = []
        for part in names_text.strip("() \t").replace("\n", " ").split(","):
            words = part.split()
            if words and words[0] != "*":
                names.append(words[-1] if len(words) == 3 and words[1] == "as" else words[0])
        base = module.replace(".", "/")
        if dots:
            up = "/".join([".."] * (len(dots) - 1))
            base = "/".join(p for p in (up, base) if p)
        cands = [f"{base}/{n}" if base else n for n in names]
        if base:
            cands.append(base)
        if not cands:
            continue
        # `from pkg import *` or a bare package: weaker than naming a module or a symbol
        strength = 1.0 if names else 0.5
        out.append(Import(tuple(cands), relative=bool(dots), strength=strength, names=tuple(names)))
    return out


def _js(text: str) -> list[Import]:
    out = []
    for m in _JS.finditer(text):
        spec = next(g for g in m.groups() if g)
        names: tuple[str, ...] = ()
        stmt = _JS_NAMES.search(text, max(0, m.start() - 1), m.end())
        if stmt:
            names = tuple(n for n in re.findall(r"[\w$]+", stmt.group(1)) if n not in {"as", "type"})
        relative = spec.startswith(".")
        path = str(PurePosixPath(spec)) if relative else spec.lstrip("@~/")
        stem = re.sub(r"\.(?:m?[jt]sx?|cjs|json|vue|svelte)$", "", path)
        out.append(Import((stem, f"{stem}/index"), relative=relative, names=names))
    return out


def _jvm(text: str) -> list[Import]:
    out = []
    for m in _JAVA.finditer(text):
        static, dotted, wildcard = m.group(1), m.group(2), m.group(3)
        parts = dotted.split(".")
        if wildcard:
            out.append(Import(("/".join(parts),), directory=not static, strength=0.5))
        elif static:  # `import static a.b.C.member`: the class is a/b/C
            out.append(Import(("/".join(parts[:-1]),), names=(parts[-1],)))
        else:
            out.append(Import(("/".join(parts),), names=(parts[-1],)))
    return out


def _go(text: str) -> list[Import]:
    specs = [(None, p) for p in _GO_SINGLE.findall(text)]
    for block in _GO_BLOCK.findall(text):
        specs += _GO_SPEC.findall(block)
    out = []
    for alias, path in specs:
        name = alias if alias and alias not in {"_", "."} else path.rsplit("/", 1)[-1]
        out.append(Import((path,), directory=True, names=(name,)))
    return out


def _c(text: str) -> list[Import]:
    out = []
    for bracket, path in _C_INCLUDE.findall(text):
        stem = re.sub(r"\.(?:h|hh|hpp|hxx|h\+\+|inc|inl)$", "", path)
        # quoted includes are the project's own headers (relative first); <...> usually the system's
        out.append(Import((stem,), relative=bracket == '"', strength=1.0 if bracket == '"' else 0.5))
    return out


def _rust(text: str) -> list[Import]:
    out = [Import((name, f"{name}/mod"), relative=True, names=(name,)) for name in _RUST_MOD.findall(text)]
    for root, path in _RUST_USE.findall(text):
        parts = [p for p in path.split("::") if p]
        cands = tuple("/".join(parts[:k]) for k in range(len(parts), 0, -1))
        out.append(Import(cands, relative=root in {"self", "super"}, names=(parts[-1],)))
    return out


EXTRACTORS = {
    "python": _py,
    **dict.fromkeys(JS_LIKE, _js),
    **dict.fromkeys(JVM, _jvm),
    "go": _go,
    **dict.fromkeys(C_LIKE, _c),
    "rust": _rust,
}


#: language -> the group whose files it can import (a Python file never imports a .cfg or a .c)
GROUPS = {
    "python": "python",
    **dict.fromkeys(JS_LIKE, "js"),
    "json": "js",
    **dict.fromkeys(JVM, "jvm"),
    "go": "go",
    **dict.fromkeys(C_LIKE, "c"),
    "rust": "rust",
}


def top_lines(text: str, n: int) -> str:
    """The first `n` lines of `text`."""
    end = -1
    for _ in range(n):
        end = text.find("\n", end + 1)
        if end < 0:
            return text
    return text[:end]


def extract_imports(text: str, language: str | None, n_lines: int = DEFAULT_TOP_LINES) -> list[Import]:
    """The imports of the first `n_lines` lines of a file in `language` ([] if unsupported)."""
    extractor = EXTRACTORS.get((language or "").lower())
    return extractor(top_lines(text, n_lines)) if extractor else []


def supported(language: str | None) -> bool:
    return (language or "").lower() in EXTRACTORS
