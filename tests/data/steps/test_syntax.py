"""Syntax check: CPython's parser for Python, tree-sitter for the rest, unchecked languages counted."""

import pytest

from codelm.data import run_pipeline
from codelm.data.steps import SyntaxFilter, python_syntax_ok

from ..helpers import doc


def test_stdlib_python_parses(stdlib_docs):
    out, stats = run_pipeline([SyntaxFilter()], stdlib_docs)
    assert len(list(out)) == len(stdlib_docs)
    stats.check()


@pytest.mark.parametrize(
    "src", ["print 'py2'\n", "def f(:\n    pass\n", "x = (1,\n", "a\x00b = 1\n", "if x:\nreturn\n"]
)
def test_broken_python_is_dropped(src):
    assert not python_syntax_ok(src)
    f = SyntaxFilter()
    assert list(f(iter([doc(src)]))) == []
    assert f.stats.dropped == {"syntax_error": 1}


def test_python_warnings_are_not_errors():
    assert python_syntax_ok('x = "\\d"\n')  # invalid escape: a SyntaxWarning only


GOOD_BAD = {
    "c": ("int main(void) { return 0; }\n", "int main( { return 0 }\n"),
    "cpp": ("#include <vector>\nint f(std::vector<int>& v) { return v.size(); }\n", "class A { int x\n"),
    "javascript": ("const f = (a) => a + 1;\n", "function (a {\n"),
    "go": ("package main\nfunc main() {}\n", "package main\nfunc main() {\n"),
    "rust": ("fn main() { let x = 1; }\n", "fn main() { let x = ; }\n"),
    "java": ("class A { void f() {} }\n", "class A { void f() { }\n"),
    "json": ('{"a": [1, 2]}\n', '{"a": [1, 2}\n'),
}


@pytest.mark.parametrize("lang", sorted(GOOD_BAD))
def test_tree_sitter_languages(lang):
    pytest.importorskip("tree_sitter_language_pack", reason="tree-sitter-language-pack not installed")
    good, bad = GOOD_BAD[lang]
    f = SyntaxFilter()
    kept = list(f(iter([doc(good, "good", lang), doc(bad, "bad", lang)])))
    assert [d.id for d in kept] == ["good"]


def test_missing_node_counts_as_an_error():
    pytest.importorskip("tree_sitter_language_pack", reason="tree-sitter-language-pack not installed")
    # tree-sitter repairs this with a MISSING ";" rather than an ERROR node
    assert list(SyntaxFilter()(iter([doc("int main() { return 0 }\n", "m", "c")]))) == []


def test_languages_without_grammar_pass_and_are_counted():
    f = SyntaxFilter()
    docs = [
        doc("# Title\n\n[[[", "a.md", "markdown"),
        doc("whatever {{", "x", None),
        doc("int x = ;", "y.c", "c"),
    ]
    out = list(SyntaxFilter(languages={"python"})(iter([docs[2]])))
    assert len(out) == 1  # C not selected for checking: passes
    assert len(list(f(iter(docs[:2])))) == 2
    assert f.stats.counters == {"unchecked:markdown": 1, "unchecked:unknown": 1}


def test_filter_pickles_without_its_parsers():
    import pickle

    pytest.importorskip("tree_sitter_language_pack", reason="tree-sitter-language-pack not installed")
    f = SyntaxFilter()
    list(f(iter([doc("int x;", "a.c", "c")])))
    clone = pickle.loads(pickle.dumps(f))
    assert list(clone(iter([doc("int y;", "b.c", "c")])))


# Valid Rust that tree-sitter-rust's grammar rejects (written for this test, in the style of
# anyhow's `ensure!`, syn's `Token!` and snapbox's `str!`): rustc's lexer accepts `~` and a bare
# `$` as tokens, and inside a macro's token tree any token is fine.
RUST_VALID = {
    "fuel_in_tildes": """
macro_rules! count {
    (($($fuel:tt)*) ~ $($rest:tt)*) => { 1 + count!(($($fuel)*) $($rest)*) };
    ((~$($fuel:tt)*) $($rest:tt)*) => { count!(($($fuel)*) $($rest)*) };
    (() $($rest:tt)*) => { 0 };
}

pub fn f() -> usize {
    count!((~~~~ ~~~~) a ~ b ~ c)
}
""",
    "bare_dollar": """
macro_rules! punct_len {
    ($mode:ident, $) => { 1 };
    ($mode:ident, ~) => { 1 };
    ($mode:ident, $tt:tt) => { 0 };
}

#[derive(Debug)]
struct Dollar;

macro_rules! token { [$] => { Dollar }; [~] => { () }; }
""",
    "primitive_named_macro": """
#[test]
fn help() {
    let expected = str![[r#"
Usage: prog [OPTIONS]
"#]];
    check(expected);
}
""",
}

RUST_INVALID = {
    "tilde_operator": "fn f(y: i32) -> i32 { ~y }\n",
    "tilde_in_pattern": "fn f(v: i32) -> i32 { match v { a ~ 1 => 0, _ => 1 } }\n",
    "unbalanced_macro": "macro_rules! m { (~ $x:tt => { $x }; }\n",
    "unclosed_str_macro": 'fn f() { let s = str![[r#"x"#]; }\n',
    "tilde_and_garbage": "macro_rules! m { () => { ~ }; }\nfn g( {}\n",
    "dollar_outside_macro": "fn f() { let $x = 1; }\n",
}


@pytest.mark.parametrize("name", sorted(RUST_VALID))
def test_valid_rust_macros_are_kept(name):
    pytest.importorskip("tree_sitter_language_pack", reason="tree-sitter-language-pack not installed")
    from tree_sitter_language_pack import get_parser

    src = RUST_VALID[name]
    assert get_parser("rust").parse(src.encode()).root_node.has_error  # the grammar's gap is real
    f = SyntaxFilter()
    assert len(list(f(iter([doc(src, f"{name}.rs", "rust")])))) == 1
    assert f.stats.counters == {"repaired:rust": 1}


@pytest.mark.parametrize("name", sorted(RUST_INVALID))
def test_invalid_rust_is_still_dropped(name):
    pytest.importorskip("tree_sitter_language_pack", reason="tree-sitter-language-pack not installed")
    f = SyntaxFilter()
    assert list(f(iter([doc(RUST_INVALID[name], f"{name}.rs", "rust")]))) == []
    assert f.stats.dropped == {"syntax_error": 1} and not f.stats.counters


def test_rust_fixtures_are_labelled_as_rustc_parses_them(tmp_path):
    """rustfmt runs rustc's own parser: it confirms which fixtures are valid Rust."""
    import shutil
    import subprocess

    rustfmt = shutil.which("rustfmt")
    if rustfmt is None:
        pytest.skip("rustfmt not installed: the Rust fixtures' labels are not cross-checked")
    if subprocess.run([rustfmt, "--version"], capture_output=True, timeout=60).returncode != 0:
        pytest.skip(f"{rustfmt} does not run (a rustup proxy without the rustfmt component?)")
    for valid, table in ((True, RUST_VALID), (False, RUST_INVALID)):
        for name, src in table.items():
            path = tmp_path / f"{name}.rs"
            path.write_text(src)
            cmd = [rustfmt, "--edition", "2021", "--emit", "stdout", str(path)]
            parsed = subprocess.run(cmd, capture_output=True, timeout=60).returncode == 0
            assert parsed == valid, name
