"""Cut Python modules into their documented functions, one document each.

A module holds its functions among classes, constants and helpers; a HumanEval problem is one
function: a signature, a docstring, a body. The tiny recipe's `functions` stage trains FIM on
documents of that shape, and the standard library alone holds ~1,250 of them, too few for the stage
(more passes over them did not help, more unique ones did: docs/recipes.md, "Function documents
from codelm's dependencies"). This step turns any curated Python source (site-packages, a crawl)
into such documents before dedup, decontamination and PII redaction, so those run on the functions
kept (~10% of the modules' bytes) and the parsing happens in the curation's workers.

Each public top-level function with a docstring of 20+ characters whose code without the docstring
is at most `max_code_chars` (`codelm.data.functions.documented_sources`) becomes a document: its
source as written plus a newline, id `<module id>#<name>`, the module's repo, path and language,
metadata `function` (the name) and the module's reader tag. Counting: a module with k such
functions is one document in and k kept (k - 1 `created`); one with none is dropped as
`no_documented_function`, one that does not parse as `does_not_parse`.
"""

from __future__ import annotations

from collections.abc import Iterator

from codelm.data.document import DataError, Document
from codelm.data.functions import documented_sources, parse_module
from codelm.data.pipeline import SOURCE_KEY, PipelineStep
from codelm.data.writers import JsonlWriter


class FunctionDocuments(PipelineStep):
    """One document per documented top-level function of each Python document."""

    def __init__(
        self,
        *,
        max_code_chars: int = 1500,
        name: str | None = None,
        exclusion_writer: JsonlWriter | None = None,
    ) -> None:
        super().__init__(name=name, exclusion_writer=exclusion_writer)
        if max_code_chars < 1:
            raise DataError(f"function_documents needs max_code_chars >= 1, got {max_code_chars}")
        self.max_code_chars = max_code_chars

    def run(self, docs: Iterator[Document]) -> Iterator[Document]:
        for doc in docs:
            if doc.language not in (None, "python"):
                self.drop(doc, "not_python")
                continue
            tree = parse_module(doc.text)
            if tree is None:
                self.drop(doc, "does_not_parse")
                continue
            made = 0
            for fn_name, source in documented_sources(doc.text, self.max_code_chars, tree):
                if made:
                    self.stats.created += 1
                made += 1
                yield self.keep(
                    Document(
                        text=source + "\n",
                        id=f"{doc.id}#{fn_name}",
                        repo=doc.repo,
                        path=doc.path,
                        language=doc.language,
                        metadata={"function": fn_name, **_source_tag(doc)},
                    )
                )
            if not made:
                self.drop(doc, "no_documented_function")


def _source_tag(doc: Document) -> dict[str, str]:
    """The reader tag a document carries in a several-reader pipeline (drops are counted by it)."""
    return {SOURCE_KEY: doc.metadata[SOURCE_KEY]} if SOURCE_KEY in doc.metadata else {}
