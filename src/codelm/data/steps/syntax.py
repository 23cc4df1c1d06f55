"""Drop files that do not parse (Seed-Coder's tree-sitter check; DeepSeek-Coder's compiler check).

Python is checked with the interpreter's own parser (`compile(..., PyCF_ONLY_AST)`): tree-sitter's
Python grammar recovers from too much to be a reliable judge (it accepts Python 2 `print x`, for
one). Every other language with a grammar in `languages.yaml` is parsed with tree-sitter
(`tree-sitter-language-pack==0.13.0`, which bundles its grammars and so works offline; 1.x
downloads them at run time) and dropped when the tree has an ERROR or MISSING node.
Languages without a grammar pass through, counted as `unchecked:<language>`.

Note the Python check follows the running interpreter's grammar: code using syntax newer than
it (e.g. 3.12 `type X = ...` checked on 3.11) is dropped, so run curation on a recent Python.
"""

from __future__ import annotations

import ast
import logging
import warnings
from collections.abc import Iterable
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
        tree = self._parser(grammar).parse(doc.text.encode("utf-8", "surrogatepass"))
        return "syntax_error" if tree.root_node.has_error else True

    def __getstate__(self) -> dict[str, Any]:
        # parsers are native objects: rebuild them in each worker rather than pickling them
        return {**self.__dict__, "_parsers": {}}
