"""Control tokens a formatter puts in a document's text on purpose, kept apart from look-alikes.

`pack_repos` and `commit_format` join files with the family's file separator (`<file_sep>`,
`<|file_separator|>`). That separator must reach training as the control token's id, while the
same characters inside a repository's own files (a tokenizer's test suite, a README about FIM)
are untrusted text and must stay text. The text alone cannot tell the two apart, so the
formatter records where it put each one: `metadata["special_spans"]`, a list of `[start, end)`
character offsets into `text`. Everything else in the text is plain.

* formatters build the text with `join_parts` (plain and control pieces) to get the spans;
* a step that edits text after formatting uses `map_plain`, which edits each plain stretch on
  its own and recomputes the spans (`pii_redactor` does; a match cannot straddle a file boundary);
* `codelm data pack` tokenizes each plain stretch with `split_special_tokens=True` and puts the
  control token's id at each span (`encode`), as FIM pieces are joined with sentinel ids. A span
  whose text is no longer a single token of the tokenizer (a step edited the text without
  `map_plain`, or the tokenizer lacks the family's separator) is a one-line error, never a silent
  fall back to text.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from codelm.data.document import DataError, Document

SPANS_KEY = "special_spans"


def join_parts(parts: Sequence[tuple[str, bool]]) -> tuple[str, list[list[int]]]:
    """(text, spans) of pieces given as (text, is_control); empty control pieces are skipped."""
    out, spans, at = [], [], 0
    for piece, control in parts:
        if control and piece:
            spans.append([at, at + len(piece)])
        out.append(piece)
        at += len(piece)
    return "".join(out), spans


def segments(doc: Document) -> list[tuple[str, bool]]:
    """The document as (text, is_control) pieces, spans checked for order and bounds."""
    spans = doc.metadata.get(SPANS_KEY) or []
    pieces, at = [], 0
    for span in spans:
        ok = isinstance(span, list | tuple) and len(span) == 2 and at <= span[0] < span[1] <= len(doc.text)
        if not ok:
            size = len(doc.text)
            raise DataError(f"document {doc.id}: bad {SPANS_KEY} entry {span!r} (text of {size} chars)")
        start, end = span
        if start > at:
            pieces.append((doc.text[at:start], False))
        pieces.append((doc.text[start:end], True))
        at = end
    if at < len(doc.text) or not pieces:
        pieces.append((doc.text[at:], False))
    return pieces


def map_plain(doc: Document, edit: Callable[[str], str]) -> None:
    """Apply `edit` to every plain stretch of `doc.text` (control tokens untouched), spans updated."""
    if not doc.metadata.get(SPANS_KEY):
        doc.text = edit(doc.text)
        return
    doc.text, doc.metadata[SPANS_KEY] = join_parts(
        [(piece if control else edit(piece), control) for piece, control in segments(doc)]
    )


def encode(tok: Any, doc: Document) -> list[int]:
    """Token ids of `doc`: plain text with specials split into text, control spans as their ids."""
    ids: list[int] = []
    for piece, control in segments(doc):
        if control:
            ids.append(control_id(tok, piece, doc.id))
        elif piece:
            ids += tok(piece, add_special_tokens=False, split_special_tokens=True, verbose=False)["input_ids"]
    return ids


def control_id(tok: Any, token: str, doc_id: str) -> int:
    """The id of `token`, which must be one token of `tok` (its id maps back to the same string)."""
    tid = tok.convert_tokens_to_ids(token)
    if tid is None or tok.convert_ids_to_tokens(tid) != token:
        raise DataError(
            f"document {doc_id}: {SPANS_KEY} marks {token[:40]!r}, which is no token of this tokenizer "
            "(a step edited the text after formatting, or the tokenizer lacks the family's separator)"
        )
    return int(tid)


def render_repo(family: Any, files: Sequence[tuple[str, str]]) -> tuple[str, list[list[int]]]:
    """`render_repo_context`'s text, with each file separator the family puts there as a span."""
    from codelm.models.formats import render_repo_context

    sep, parts = family.file_separator, []
    for path, content in files:
        text = render_repo_context(family, [(path, content)])  # the same text, one file at a time
        if sep and text.startswith(sep):
            parts += [(sep, True), (text[len(sep) :], False)]
        else:
            parts.append((text, False))
    return join_parts(parts)
