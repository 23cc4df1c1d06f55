"""Tell a file's programming language from its name, or failing that its shebang line.

The table lives in `languages.yaml` beside this module (data, not code): extensions, exact file
names (Makefile, Dockerfile), shebang interpreters, and the tree-sitter grammar used by the
syntax step. Order of evidence: exact file name, then extension, then the shebang, since
`Makefile` has no extension and scripts often have none either.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import PurePosixPath

import yaml

from codelm.data.document import DataError

_SHEBANG = re.compile(r"#!\s*(\S+)(?:[ \t]+(\S+))?")
_VERSION_SUFFIX = re.compile(r"[\d.]+$")


@dataclass(frozen=True)
class LanguageTable:
    """Lookup maps built from languages.yaml."""

    by_filename: dict[str, str]
    by_extension: dict[str, str]
    by_interpreter: dict[str, str]
    grammars: dict[str, str | None]


@functools.cache
def language_table() -> LanguageTable:
    """Parse the bundled languages.yaml once per process."""
    raw = yaml.safe_load(resources.files("codelm.data").joinpath("languages.yaml").read_text("utf-8"))
    by_filename: dict[str, str] = {}
    by_extension: dict[str, str] = {}
    by_interpreter: dict[str, str] = {}
    grammars: dict[str, str | None] = {}
    for lang, spec in raw.items():
        unknown = set(spec) - {"extensions", "filenames", "interpreters", "grammar"}
        if unknown:
            raise DataError(f"languages.yaml: {lang} has unknown keys {sorted(unknown)}")
        tables = ((by_extension, "extensions"), (by_filename, "filenames"), (by_interpreter, "interpreters"))
        for table, key in tables:
            for value in spec.get(key, []):
                value = value.lower() if key == "extensions" else value
                if value in table:
                    raise DataError(f"languages.yaml: {value!r} listed for both {table[value]} and {lang}")
                table[value] = lang
        grammars[lang] = spec.get("grammar")
    return LanguageTable(by_filename, by_extension, by_interpreter, grammars)


def language_from_shebang(first_line: str) -> str | None:
    """`#!/usr/bin/env python3` -> "python"; None when there is no (known) shebang."""
    m = _SHEBANG.match(first_line)
    if not m:
        return None
    prog = PurePosixPath(m.group(1)).name
    if prog == "env" and m.group(2):
        prog = m.group(2)  # `env -S ...` flags are rare enough to ignore
    table = language_table().by_interpreter
    return table.get(prog) or table.get(_VERSION_SUFFIX.sub("", prog))


def detect_language(path: str | None, text: str | None = None) -> str | None:
    """Language of a file from its path, then from the shebang of `text`; None if unknown."""
    lang = _language_of_path(path) if path else None
    if lang is None and text and text.startswith("#!"):
        return language_from_shebang(text.split("\n", 1)[0])
    return lang


@functools.lru_cache(maxsize=1 << 16)
def _language_of_path(path: str) -> str | None:
    """Cached: a commit history names the same paths again and again."""
    table = language_table()
    p = PurePosixPath(path.replace("\\", "/"))
    if p.name in table.by_filename:
        return table.by_filename[p.name]
    return table.by_extension.get(p.suffix.lower())


def grammar_for(language: str | None) -> str | None:
    """tree-sitter-language-pack grammar name for `language`, or None when there is none."""
    if language is None:
        return None
    return language_table().grammars.get(language)
