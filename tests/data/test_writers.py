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
