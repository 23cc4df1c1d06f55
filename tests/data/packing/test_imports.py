"""Import extraction per language and resolution by longest suffix match."""

from codelm.data.packing import PathIndex, RepoFile, extract_imports, import_edges
from codelm.data.packing.imports import top_lines


def resolved(files: dict[str, str], lang: str) -> set[tuple[str, str]]:
    return set(import_edges([RepoFile(p, t, lang) for p, t in files.items()]))


def test_python_forms():
    text = (
        "import a.b.c\nimport x as y, z\nfrom . import sib\n"
        "from ..pkg.mod import (f,\n  g as h)\nfrom q import *\n"
    )
    imps = extract_imports(text, "python")
    assert [i.candidates for i in imps] == [
        ("a/b/c",),
        ("x",),
        ("z",),
        ("sib",),
        ("../pkg/mod/f", "../pkg/mod/h", "../pkg/mod"),
        ("q",),
    ]
    assert imps[1].names == ("y",) and imps[3].relative and imps[-1].strength == 0.5


def test_only_the_top_lines_are_read():
    text = "x = 1\n" * 10 + "import late\n"
    assert extract_imports(text, "python", n_lines=5) == []
    assert len(extract_imports(text, "python", n_lines=20)) == 1
    assert top_lines("a\nb\nc", 2) == "a\nb"


def test_python_resolution_longest_suffix_and_relative():
    files = {
        "src/app/main.py": "from app.core import engine\nfrom . import util\nimport os\n"
        "from os import path\n",
        "src/app/core/engine.py": "x = 1\n",
        "src/app/util.py": "y = 2\n",
        "other/core/engine.py": "z = 3\n",  # shares only `core/engine`: the longer suffix wins
        "lib/path.py": "",  # `from os import path` must not resolve here
    }
    assert resolved(files, "python") == {
        ("src/app/main.py", "src/app/core/engine.py"),
        ("src/app/main.py", "src/app/util.py"),
    }


def test_javascript_typescript():
    files = {
        "src/index.ts": "import { a } from './lib/a';\nimport b from \"../x\";\n"
        "const c = require('./c.js');\n"
        "export * from './lib';\nimport React from 'react';\n",
        "src/lib/a.ts": "export const a = 1;\n",
        "src/lib/index.ts": "export {};\n",
        "src/c.js": "module.exports = 1;\n",
    }
    assert resolved(files, "typescript") == {
        ("src/index.ts", "src/lib/a.ts"),
        ("src/index.ts", "src/c.js"),
        ("src/index.ts", "src/lib/index.ts"),
    }


def test_java_imports_static_and_wildcard():
    files = {
        "src/main/java/com/acme/App.java": "package com.acme;\nimport com.acme.util.Strings;\n"
        "import static com.acme.util.Maths.add;\nimport com.acme.model.*;\n"
        "import java.util.List;\n",
        "src/main/java/com/acme/util/Strings.java": "",
        "src/main/java/com/acme/util/Maths.java": "",
        "src/main/java/com/acme/model/User.java": "",
        "src/main/java/com/acme/model/Group.java": "",
    }
    base = "src/main/java/com/acme/"
    assert resolved(files, "java") == {
        (base + "App.java", base + p)
        for p in ("util/Strings.java", "util/Maths.java", "model/User.java", "model/Group.java")
    }


def test_go_packages_are_directories():
    files = {
        "cmd/tool/main.go": 'package main\n\nimport (\n\t"fmt"\n\tu "github.com/me/proj/internal/util"\n)\n',
        "internal/util/strings.go": "package util\n",
        "internal/util/numbers.go": "package util\n",
    }
    assert resolved(files, "go") == {
        ("cmd/tool/main.go", "internal/util/strings.go"),
        ("cmd/tool/main.go", "internal/util/numbers.go"),
    }


def test_c_includes_quoted_relative_first():
    files = {
        "src/main.c": '#include <stdio.h>\n#include "util.h"\n#include "net/sock.h"\n',
        "src/util.h": "int f(void);\n",
        "include/util.h": "int g(void);\n",
        "src/net/sock.h": "",
    }
    assert resolved(files, "c") == {("src/main.c", "src/util.h"), ("src/main.c", "src/net/sock.h")}


def test_cpp_and_rust():
    assert resolved({"a/x.cpp": '#include "a/y.hpp"\n', "a/y.hpp": ""}, "cpp") == {("a/x.cpp", "a/y.hpp")}
    rust = {
        "src/lib.rs": "mod parser;\npub mod lexer;\nuse crate::parser::Token;\n",
        "src/parser.rs": "",
        "src/lexer/mod.rs": "",
    }
    assert resolved(rust, "rust") == {("src/lib.rs", "src/parser.rs"), ("src/lib.rs", "src/lexer/mod.rs")}


def test_unsupported_language_and_cross_language():
    assert extract_imports("import foo", "haskell") == []
    files = {"a.py": "import setup\n", "setup.cfg": ""}
    assert import_edges([RepoFile("a.py", files["a.py"], "python"), RepoFile("setup.cfg", "", "ini")]) == {}


def test_edge_importance_grows_with_use():
    few = "from m import f\nf()\n"
    many = "from m import f\n" + "f()\n" * 20
    (w_few,) = import_edges([RepoFile("a.py", few, "python"), RepoFile("m.py", "", "python")]).values()
    (w_many,) = import_edges([RepoFile("a.py", many, "python"), RepoFile("m.py", "", "python")]).values()
    assert w_many > w_few > 1.0


def test_ties_go_to_the_nearest_file():
    index = PathIndex(["a/util.py", "b/util.py"])
    from codelm.data.packing import Import

    assert index.resolve(Import(("util",)), "b/main.py") == ["b/util.py"]
    assert index.resolve(Import(("util",)), "c/main.py") == ["a/util.py"]
