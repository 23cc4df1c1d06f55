"""Keep only the languages a corpus is meant to have.

Readers tag every document with the language told from its path or shebang (None if unknown);
this filter drops the others as `other_language` (or `unknown_language`), so that stats show how
much of a raw crawl each language was.
"""

from __future__ import annotations

from collections.abc import Iterable

from codelm.data.document import DataError, Document
from codelm.data.languages import language_table
from codelm.data.pipeline import Filter
from codelm.data.writers import JsonlWriter


class LanguageFilter(Filter):
    """Keep documents whose `language` is in `languages`."""

    def __init__(
        self,
        languages: Iterable[str],
        *,
        name: str | None = None,
        exclusion_writer: JsonlWriter | None = None,
    ) -> None:
        super().__init__(name=name, exclusion_writer=exclusion_writer)
        self.languages = frozenset(languages)
        unknown = self.languages - set(language_table().grammars)
        if unknown:
            raise DataError(f"unknown language(s) {sorted(unknown)}; see codelm/data/languages.yaml")

    def filter(self, doc: Document) -> bool | str:
        if doc.language in self.languages:
            return True
        return "unknown_language" if doc.language is None else "other_language"
