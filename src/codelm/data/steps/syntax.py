"""Drop files that do not parse (Seed-Coder's tree-sitter check; DeepSeek-Coder's compiler check).

Python is checked with the interpreter's own parser (`compile(..., PyCF_ONLY_AST)`): tree-sitter's
Python grammar recovers from too much to be a reliable judge (it accepts Python 2 `print x`, for
one). Every other language with a grammar in `languages.yaml` is parsed with tree-sitter
(`tree-sitter-language-pack==0.13.0`, which bundles its grammars and so works offline; 1.x
downloads them at run time) and dropped when the tree has an ERROR or MISSING node.
Languages without a grammar pass through, counted as `unchecked:<language>`.

A grammar's gaps must not drop valid files of popular projects. tree-sitter-rust (0.13 pack and
the newest 0.24.2 alike) rejects two things rustc accepts, so a Rust file whose only errors are
these is re-parsed with them patched (same byte length) and kept, counted as `repaired:rust`:

* tokens only valid inside a macro's token tree: `~` (anyhow's `ensure!` counts its fuel in
  tildes: 179 ERROR nodes in `src/ensure.rs`) and a bare `$` (syn's `Token![$]`);
* a macro named like a primitive type: `str![...]` (snapbox, all over clap's tests).

Measured on anyhow, serde, regex, syn, tokio and clap (1,728 .rs files): 18 dropped before, 1
after, syn's `struct _Test where Error: Send + Sync;` (a unit struct with a where clause, which
the grammar lacks). See docs/data.md.

Note the Python check follows the running interpreter's grammar: code using syntax newer than
it (e.g. 3.12 `type X = ...` checked on 3.11) is dropped, so run curation on a recent Python.
"""

from __future__ import annotations

import ast
import logging
import warnings
from collections.abc import Iterable, Iterator
from typing import Any

from codelm.data.document import DataError, Document
from codelm.data.languages import grammar_for
from codelm.data.pipeline import Filter
from codelm.data.writers import JsonlWriter

log = logging.getLogger(__name__)


def python_syntax_ok(text: str, filename: str = "<doc>") -> bool:
    """True if CPython can parse `text` as a module (warnings such as bad escapes are not errors)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            compile(text, filename, "exec", flags=ast.PyCF_ONLY_AST, dont_inherit=True)
    except (SyntaxError, ValueError):  # ValueError: NUL bytes in source
        return False
    except (RecursionError, MemoryError):  # pathologically nested code: not useful training data
        return False
    return True


def _load_parser(grammar: str) -> Any:
    try:
        from tree_sitter_language_pack import get_parser
    except ImportError as e:
        raise DataError(
            "syntax checks for non-Python languages need tree-sitter-language-pack==0.13.0: "
            "pip install 'codelm[data]'"
        ) from e
    return get_parser(grammar)


#: what tree-sitter-rust rejects inside a token tree although rustc's lexer accepts it
_RUST_TT_ONLY = frozenset(b"~$ \t\r\n")
_TOKEN_TREES = frozenset({"token_tree", "token_tree_pattern"})
_RUST_PRIMITIVES = frozenset(
    b"bool char str i8 i16 i32 i64 i128 isize u8 u16 u32 u64 u128 usize f32 f64".split()
)


def _error_nodes(root: Any) -> Iterator[tuple[Any, bool]]:
    """ERROR and MISSING nodes under `root`, each with whether it lies inside a token tree."""
    stack = [(root, False)]
    while stack:
        node, inside = stack.pop()
        if node.type == "ERROR" or node.is_missing:
            yield node, inside
        elif node.has_error:
            inside = inside or node.type in _TOKEN_TREES
            stack.extend((child, inside) for child in node.children)


def rust_grammar_gaps_patched(root: Any, src: bytes) -> bytes | None:
    """`src` with the grammar's known gaps patched, or None if any error is something else.

    Patches keep every byte offset: `~`/`$` in a token tree become `@` (a token the grammar
    knows, equally meaningless there), and a primitive-type macro name becomes `zzz`.
    """
    patched = bytearray(src)
    for node, inside in _error_nodes(root):
        chunk = src[node.start_byte : node.end_byte]
        if node.is_missing or not chunk.strip():
            return None
        if inside and set(chunk) <= _RUST_TT_ONLY:
            patched[node.start_byte : node.end_byte] = chunk.replace(b"~", b"@").replace(b"$", b"@")
            continue
        prev = node.prev_sibling
        if chunk == b"!" and prev is not None and src[prev.start_byte : prev.end_byte] in _RUST_PRIMITIVES:
            patched[prev.start_byte : prev.end_byte] = b"z" * (prev.end_byte - prev.start_byte)
            continue
        return None
    return bytes(patched)


class SyntaxFilter(Filter):
    """Keep documents that parse in their `language`; drop the rest with `syntax_error`.

    languages: restrict checking to these languages (others pass as unchecked); None = all known.
    """

    def __init__(
        self,
        *,
        languages: Iterable[str] | None = None,
        name: str | None = None,
        exclusion_writer: JsonlWriter | None = None,
    ) -> None:
        super().__init__(name=name, exclusion_writer=exclusion_writer)
        self.languages = frozenset(languages) if languages is not None else None
        self._parsers: dict[str, Any] = {}

    def _parser(self, grammar: str) -> Any:
        if grammar not in self._parsers:
            self._parsers[grammar] = _load_parser(grammar)
        return self._parsers[grammar]

    def filter(self, doc: Document) -> bool | str:
        lang = doc.language
        if self.languages is not None and lang not in self.languages:
            self.stats.counters[f"unchecked:{lang or 'unknown'}"] += 1
            return True
        if lang == "python":
            return True if python_syntax_ok(doc.text, doc.path or doc.id) else "syntax_error"
        grammar = grammar_for(lang)
        if grammar is None:
            self.stats.counters[f"unchecked:{lang or 'unknown'}"] += 1
            return True
        parser = self._parser(grammar)
        src = doc.text.encode("utf-8", "surrogatepass")
        tree = parser.parse(src)
        if not tree.root_node.has_error:
            return True
        if grammar == "rust":
            patched = rust_grammar_gaps_patched(tree.root_node, src)
            if patched is not None and not parser.parse(patched).root_node.has_error:
                self.stats.counters["repaired:rust"] += 1
                return True
        return "syntax_error"

    def __getstate__(self) -> dict[str, Any]:
        # parsers are native objects: rebuild them in each worker rather than pickling them
        return {**self.__dict__, "_parsers": {}}
