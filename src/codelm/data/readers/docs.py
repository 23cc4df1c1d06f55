"""Read documentation and web pages: HTML files, directories, WARC archives, reST and Markdown.

    HtmlReader(["/usr/share/doc/python3.11/html"])       # every .html/.htm below, one doc each
    HtmlReader(["crawl/CC-MAIN-0001.warc.gz"])           # HTML responses of a WARC file
    MarkupReader(["/usr/share/doc/python3.11/html/_sources"])  # .rst, .rst.txt, .md as they are

`HtmlReader` extracts each page's main text with its code blocks fenced verbatim
(`codelm.data.readers.extract`, resiliparse); WARC files are read with warcio (gzip per record
or whole-file). `MarkupReader` keeps reST and Markdown sources as written: their code blocks
are already verbatim text. Both set `language` to `markdown` (extracted HTML is Markdown-like)
or `restructuredtext`, and `metadata["lang"]` to the page's natural language (ISO 639-1, or
None when there is too little prose). `repo` is the source (a directory's or WARC file's name),
`id` is `source/relative path` (files) or `source#record` (WARC; `metadata["url"]` holds the
target URI).

Drop reasons: `too_large` (over `max_bytes`), `binary`, `invalid_utf8` (markup sources; HTML is
decoded by its declared or detected charset), `unreadable`, `empty_extraction` (no main text),
`not_html` (a WARC response of another content type), `digest_mismatch` (a WARC record whose
payload does not match its recorded digest: cut short or corrupted), `invalid_warc` (a damaged
archive: the rest of that file). Non-response WARC records (warcinfo, request, metadata) are no documents and
are counted as `warc_records_skipped:<type>`. Sharding is by file; inside WARC files by record.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from codelm.data.document import DataError, Document
from codelm.data.readers.base import Reader, Unreadable, decode_text
from codelm.data.readers.extract import decode_html, extract, natural_language
from codelm.data.readers.tree import SKIP_DIRS, printable_name

log = logging.getLogger(__name__)

HTML_SUFFIXES = (".html", ".htm", ".xhtml")
WARC_SUFFIXES = (".warc", ".warc.gz")
MARKUP_SUFFIXES = (".rst", ".rst.txt", ".md", ".markdown")
#: documentation pages are larger than source files; the Python docs' biggest article is 1.4 MB
DOCS_MAX_BYTES = 4_000_000


def _files(paths: list[Path], suffixes: tuple[str, ...]) -> list[tuple[str, Path, str]]:
    """(source name, file, relative path) of every matching file, sorted; files given are taken."""
    out = []
    for top in paths:
        if top.is_file():
            out.append((printable_name(top.parent.name)[0], top, printable_name(top.name)[0]))
            continue
        found = []
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
            found += [Path(dirpath, f) for f in filenames if f.lower().endswith(suffixes)]
        source = printable_name(top.resolve().name)[0]
        out += [(source, f, printable_name(f.relative_to(top).as_posix())[0]) for f in sorted(found)]
    return out


class _FileReader(Reader):
    """Shared: paths checked up front, files listed in sorted order, every world-th one read."""

    suffixes: tuple[str, ...] = ()

    def __init__(self, paths: str | list[str], *, max_bytes: int = DOCS_MAX_BYTES, **kwargs: Any) -> None:
        super().__init__(max_bytes=max_bytes, **kwargs)
        self.paths = [Path(p) for p in ([paths] if isinstance(paths, str) else paths)]
        if not self.paths:
            raise DataError(f"{self.name} needs at least one path in `paths`")
        for p in self.paths:
            if not p.exists():
                raise DataError(f"{self.name}: no such file or directory: {p}")

    def _raw(self, doc: Document, file: Path) -> bytes | Unreadable:
        try:
            size = file.stat().st_size
            if size > self.max_bytes:
                doc.metadata["size"] = size
                return Unreadable(doc, "too_large")
            return file.read_bytes()
        except OSError as e:
            doc.metadata["error"] = f"[Errno {e.errno}] {e.strerror}"
            return Unreadable(doc, "unreadable")


class HtmlReader(_FileReader):
    """One document per HTML page: files, directories of them, WARC archives (module docstring).

    main_content: keep only the page's main content (False: all visible text).
    """

    suffixes = HTML_SUFFIXES + WARC_SUFFIXES

    def __init__(self, paths: str | list[str], *, main_content: bool = True, **kwargs: Any) -> None:
        super().__init__(paths, **kwargs)
        self.main_content = main_content

    def read(self) -> Iterator[Document | Unreadable]:
        files = _files(self.paths, self.suffixes)
        pages = [f for f in files if not f[1].name.lower().endswith(WARC_SUFFIXES)]
        for i, (source, file, rel) in enumerate(pages):
            if i % self.world_size == self.rank:
                doc = Document(text="", id=f"{source}/{rel}", repo=source, path=rel)
                raw = self._raw(doc, file)
                yield raw if isinstance(raw, Unreadable) else self._page(doc, raw)
        n = 0
        for source, file, _ in (f for f in files if f[1].name.lower().endswith(WARC_SUFFIXES)):
            for item in self._warc(source, file):
                if n % self.world_size == self.rank:
                    yield item() if callable(item) else item
                n += 1

    def _page(self, doc: Document, raw: bytes) -> Document | Unreadable:
        doc.metadata["size"] = len(raw)
        if b"\x00" in raw[:8000]:
            return Unreadable(doc, "binary")
        text, blocks = extract(decode_html(raw), self.main_content)
        if not text.strip():
            return Unreadable(doc, "empty_extraction")
        doc.text, doc.language = text, "markdown"
        doc.metadata.update(code_blocks=blocks, lang=natural_language(text))
        return doc

    def _warc(self, source: str, file: Path) -> Iterator[Any]:
        """Per response record, a thunk making its document (so other shards skip the extraction)."""
        try:
            from warcio.archiveiterator import ArchiveIterator
            from warcio.exceptions import ArchiveLoadFailed
        except ImportError as e:
            raise DataError("WARC files need warcio: pip install 'codelm[data]'") from e
        name = file.name.removesuffix(".gz").removesuffix(".warc")
        index = 0
        try:
            with open(file, "rb") as stream:
                # digests checked: a record cut short (a truncated download) is caught, not extracted
                for record in ArchiveIterator(stream, check_digests="raise"):
                    if record.rec_type not in ("response", "resource"):
                        self.stats.counters[f"warc_records_skipped:{record.rec_type}"] += int(self.rank == 0)
                        continue
                    doc = Document(text="", id=f"{name}#{index}", repo=name)
                    doc.metadata["url"] = record.rec_headers.get_header("WARC-Target-URI")
                    doc.path = doc.metadata["url"]
                    index += 1
                    ctype = (
                        record.http_headers.get_header("Content-Type")
                        if record.http_headers is not None
                        else record.rec_headers.get_header("Content-Type")
                    ) or ""
                    if "html" not in ctype.lower():
                        doc.metadata["content_type"] = ctype
                        yield Unreadable(doc, "not_html")
                        continue
                    try:
                        raw = record.content_stream().read(self.max_bytes + 1)
                    except ArchiveLoadFailed as e:
                        doc.metadata["error"] = str(e)[:500]
                        yield Unreadable(doc, "digest_mismatch")
                        continue
                    if len(raw) > self.max_bytes:
                        yield Unreadable(doc, "too_large")
                        continue
                    yield lambda doc=doc, raw=raw: self._page(doc, raw)
        except (ArchiveLoadFailed, OSError, EOFError, ValueError) as e:
            log.warning("damaged WARC file %s after %d records: %s", file, index, e)
            doc = Document(text="", id=f"{name}#invalid", repo=name, metadata={"error": str(e)[:500]})
            if self.rank == 0:
                yield Unreadable(doc, "invalid_warc")


class MarkupReader(_FileReader):
    """One document per reStructuredText or Markdown source, kept as written (module docstring)."""

    suffixes = MARKUP_SUFFIXES

    def read(self) -> Iterator[Document | Unreadable]:
        for i, (source, file, rel) in enumerate(_files(self.paths, self.suffixes)):
            if i % self.world_size != self.rank:
                continue
            doc = Document(text="", id=f"{source}/{rel}", repo=source, path=rel)
            raw = self._raw(doc, file)
            if isinstance(raw, Unreadable):
                yield raw
                continue
            decoded = decode_text(raw, self.max_bytes)
            if isinstance(decoded, tuple):
                doc.metadata["error"] = decoded[1]
                yield Unreadable(doc, decoded[0])
                continue
            doc.text = decoded
            doc.language = "markdown" if rel.lower().endswith((".md", ".markdown")) else "restructuredtext"
            doc.metadata.update(size=len(raw), lang=natural_language(decoded))
            yield doc
