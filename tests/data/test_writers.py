"""JsonlWriter: lazy open, gzip, append after close, use as a pass-through step."""

import gzip
import json

from codelm.data import JsonlWriter

from .helpers import doc


def test_nothing_written_means_no_file(tmp_path):
    w = JsonlWriter(tmp_path / "x.jsonl")
    w.close()
    assert not (tmp_path / "x.jsonl").exists()


def test_gzip_and_append_after_close(tmp_path):
    path = tmp_path / "sub" / "out.jsonl.gz"
    w = JsonlWriter(path)
    w.write(doc("a", "1"))
    w.close()
    w.write(doc("b", "2"))
    w.close()
    with gzip.open(path, "rt", encoding="utf-8") as f:
        assert [json.loads(line)["id"] for line in f] == ["1", "2"]


def test_as_a_step_it_passes_documents_through(tmp_path):
    w = JsonlWriter(tmp_path / "o.jsonl")
    docs = [doc("x = 1", "a"), doc("y = 2", "b")]
    assert list(w(iter(docs))) == docs
    assert (tmp_path / "o.jsonl").read_text().count("\n") == 2


def test_gzip_output_depends_only_on_the_documents(tmp_path):
    # gzip.open stamps the file name and the time into the header, so two runs differed
    docs = [doc("a", "1"), doc("b", "2")]
    paths = [tmp_path / "one.jsonl.gz", tmp_path / "sub" / "another-name.tmp-123.jsonl.gz"]
    for path in paths:
        with JsonlWriter(path) as w:
            for d in docs:
                w.write(d)
    first, second = (p.read_bytes() for p in paths)
    assert first == second
    assert first[3] == 0 and first[4:8] == b"\x00\x00\x00\x00"  # FLG: no FNAME; MTIME: 0


def test_lone_surrogates_are_written_as_json_escapes_and_read_back(tmp_path):
    # a surrogate-escaped file name or a JSON record's "\ud800": not encodable as UTF-8
    odd = doc("text \ud800 here", "bad\udcff.py")
    path = tmp_path / "o.jsonl.gz"
    with JsonlWriter(path) as w:
        w.write(odd)
        w.write(doc("ünïcode stays readable", "ok"))
    with gzip.open(path, "rb") as f:
        lines = f.read().splitlines()
    assert json.loads(lines[0]) == odd.to_dict()
    assert "ünïcode".encode() in lines[1]  # only the line that needs escapes gets them
