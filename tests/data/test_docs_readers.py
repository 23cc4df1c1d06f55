"""HTML (files, directories, WARC) and reST/Markdown readers: main text, verbatim code, language, drops."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from codelm.data import DataError, run_pipeline
from codelm.data.readers.docs import HtmlReader, MarkupReader
from codelm.data.readers.extract import fence

from .doc_pages import CODE, PAGE, PY_DOCS, needs_py_docs
from .helpers import write_tree

pytest.importorskip("resiliparse", reason="resiliparse is not installed (pip install 'codelm[data]')")


def test_fence_is_longer_than_any_backtick_run():
    assert fence("a ``` b") == "\n````\na ``` b\n````\n"
    assert fence("x\n") == "\n```\nx\n```\n"


def test_html_files_and_directories(tmp_path):
    site = write_tree(
        tmp_path / "site",
        {
            "guide/greet.html": PAGE,
            "latin1.htm": '<html><head><meta charset="iso-8859-1"></head><body><p>Caf\xe9 cr\xe8me au lait, '
            "une boisson chaude que les gens aiment boire le matin avec du pain.</p></body></html>".encode(
                "latin-1"
            ),
            "empty.html": "<html><body><nav>x</nav></body></html>",
            "img.html": b"\x89PNG\x00\x00binary",
            "notes.txt": "not html",
        },
    )
    out, stats = run_pipeline([HtmlReader(str(site))])
    docs = {d.id: d for d in out}
    reader = stats["html_reader"]
    assert sorted(docs) == ["site/guide/greet.html", "site/latin1.htm"]
    assert dict(reader.dropped) == {"binary": 1, "empty_extraction": 1}
    greet = docs["site/guide/greet.html"]
    assert f"````\n{CODE}````" in greet.text  # verbatim, entities decoded, blank lines kept
    assert "How to greet people" in greet.text and "Blog" not in greet.text  # navigation is not content
    assert (
        greet.language == "markdown" and greet.metadata["lang"] == "en" and greet.metadata["code_blocks"] == 1
    )
    assert "Café crème" in docs["site/latin1.htm"].text and docs["site/latin1.htm"].metadata["lang"] == "fr"
    single, _ = run_pipeline([HtmlReader(str(site / "guide" / "greet.html"))])
    assert [d.id for d in single] == ["guide/greet.html"]


def _warc(path: Path, records: list[tuple[str, str, bytes]], gzip: bool = True) -> Path:
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    with open(path, "wb") as f:
        writer = WARCWriter(f, gzip=gzip)
        writer.write_record(writer.create_warcinfo_record(path.name, {"software": "test"}))
        for url, ctype, body in records:
            headers = StatusAndHeaders("200 OK", [("Content-Type", ctype)], protocol="HTTP/1.1")
            writer.write_record(
                writer.create_warc_record(url, "response", payload=io.BytesIO(body), http_headers=headers)
            )
    return path


def test_warc_records_sharded_and_counted(tmp_path):
    pytest.importorskip("warcio", reason="warcio is not installed (pip install 'codelm[data]')")
    warc = _warc(
        tmp_path / "crawl.warc.gz",
        [
            ("https://example.org/greet", "text/html; charset=utf-8", PAGE.encode()),
            ("https://example.org/logo.png", "image/png", b"\x89PNG"),
            ("https://example.org/again", "text/html", PAGE.replace("Python", "Python 3").encode()),
        ],
    )
    out, stats = run_pipeline([HtmlReader(str(warc))])
    docs = list(out)
    reader = stats["html_reader"]
    assert [d.id for d in docs] == ["crawl#0", "crawl#2"] and docs[0].metadata[
        "url"
    ] == "https://example.org/greet"
    assert dict(reader.dropped) == {"not_html": 1} and reader.counters["warc_records_skipped:warcinfo"] == 1
    assert f"````\n{CODE}````" in docs[0].text
    ids = []
    for rank in range(2):
        part, _ = run_pipeline([HtmlReader(str(warc), shard=(rank, 2))])
        ids += [d.id for d in part]
    assert sorted(ids) == ["crawl#0", "crawl#2"]
    plain = _warc(
        tmp_path / "plain.warc", [("https://example.org/a", "text/html", PAGE.encode())] * 2, gzip=False
    )
    corrupt = tmp_path / "corrupt.warc"  # one payload byte changed: its recorded digest no longer matches
    corrupt.write_bytes(plain.read_bytes().replace(b"Blog", b"Bxog", 1))
    out, stats = run_pipeline([HtmlReader(str(corrupt))])
    assert [d.id for d in out] == ["corrupt#1"] and stats["html_reader"].dropped["digest_mismatch"] == 1
    junk = tmp_path / "junk.warc.gz"
    junk.write_bytes(warc.read_bytes() + b"this is no WARC record\n" * 4)
    out, stats = run_pipeline([HtmlReader(str(junk))])
    assert [d.id for d in out] == ["junk#0", "junk#2"] and stats["html_reader"].dropped["invalid_warc"] == 1


def test_markup_sources_and_bad_input(tmp_path):
    docs_dir = write_tree(
        tmp_path / "docs",
        {
            "intro.rst": "Intro\n=====\n\nInstall the package and import it::\n\n"
            "    import greet\n    greet.run()\n",
            "guide.md": "# Guide\n\n```python\nprint('hi')\n```\n",
            "bad.md": b"caf\xe9\n",
            "skip.txt": "not markup",
        },
    )
    out, stats = run_pipeline([MarkupReader(str(docs_dir))])
    docs = {d.id: d for d in out}
    assert sorted(docs) == ["docs/guide.md", "docs/intro.rst"]
    assert (
        docs["docs/intro.rst"].language == "restructuredtext"
        and "    greet.run()\n" in docs["docs/intro.rst"].text
    )
    assert docs["docs/guide.md"].language == "markdown"
    assert dict(stats["markup_reader"].dropped) == {"invalid_utf8": 1}
    with pytest.raises(DataError, match="no such file"):
        MarkupReader(str(tmp_path / "missing"))


@needs_py_docs
def test_debian_python_docs():
    out, stats = run_pipeline([HtmlReader(str(PY_DOCS / "library"), shard=(0, 8))])
    docs = list(out)
    assert len(docs) > 20 and sum(d.metadata["lang"] == "en" for d in docs) > 0.9 * len(docs)
    assert sum(d.metadata["code_blocks"] for d in docs) > 50
    out, _ = run_pipeline([HtmlReader(str(PY_DOCS / "library" / "json.html"))])
    [json_page] = list(out)
    assert "```\n>>> import json\n>>> json.dumps(['foo', {'bar': ('baz', None, 1.0, 2)}])\n" in json_page.text
    out, _ = run_pipeline([MarkupReader(str(PY_DOCS / "_sources" / "library" / "json.rst.txt"))])
    assert "json.dumps" in next(out).text
