"""Formatter-inserted file separators become control ids in `codelm data pack`; look-alikes stay text."""

from __future__ import annotations

import pytest

from codelm.data import DataError, Document
from codelm.data.specials import SPANS_KEY, encode, join_parts, map_plain, segments
from codelm.data.steps import PiiRedactor
from codelm.data.steps.pack_repos import PackRepos

#: a repository whose own files spell the separator and a FIM sentinel (a tokenizer's tests)
FILES = {
    "tok/special.py": 'SEP = "<file_sep>"\nMID = "<fim_middle>"\n',
    "tok/test_special.py": "from tok.special import SEP\n\n\n"
    "def test_sep():\n    assert SEP == '<file_sep>'\n",
}


def packed_repo() -> Document:
    docs = [Document(text, f"r/{p}", repo="r", path=p, language="python") for p, text in FILES.items()]
    [doc] = PackRepos("llama").pack("r", docs)
    return doc


@pytest.fixture(scope="module")
def tok(tiny_checkpoint):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_checkpoint("llama"))


def test_separators_become_ids_and_look_alikes_stay_text(tok):
    doc = packed_repo()
    assert doc.text.count("<file_sep>") == 4  # two put there by the formatter, two inside the files
    ids = encode(tok, doc)
    sep, mid = tok.convert_tokens_to_ids("<file_sep>"), tok.convert_tokens_to_ids("<fim_middle>")
    assert ids.count(sep) == 2 and mid not in ids
    assert [doc.text[a:b] for a, b in doc.metadata[SPANS_KEY]] == ["<file_sep>", "<file_sep>"]
    assert ids[0] == sep and tok.decode(ids) == doc.text  # nothing lost: the text round-trips
    # without spans (a document from elsewhere) every separator is text, as before
    plain = encode(tok, Document(doc.text, "x"))
    assert sep not in plain and tok.decode(plain) == doc.text


def test_pii_redaction_keeps_the_spans_on_the_separators(tok):
    doc = packed_repo()
    doc.text, doc.metadata[SPANS_KEY] = join_parts(
        [("<file_sep>", True), ("a.py\n# by jane.roe@corp-mail.net\n", False)]
        + [("<file_sep>", True), ("b.py\nx = 1\n", False)]
    )
    [out] = PiiRedactor()([doc])
    assert "<EMAIL>" in out.text and "jane.roe" not in out.text
    assert [out.text[a:b] for a, b in out.metadata[SPANS_KEY]] == ["<file_sep>", "<file_sep>"]
    assert encode(tok, out).count(tok.convert_tokens_to_ids("<file_sep>")) == 2


def test_text_edited_without_map_plain_is_an_error_not_text(tok):
    doc = packed_repo()
    doc.text = "# header\n" + doc.text  # shifts every span by 9 characters
    with pytest.raises(DataError, match="no token of this tokenizer"):
        encode(tok, doc)
    doc.metadata[SPANS_KEY] = [[5, 99_999]]
    with pytest.raises(DataError, match="bad special_spans entry"):
        segments(doc)


def test_map_plain_edits_only_plain_text():
    doc = Document("", "d")
    doc.text, doc.metadata[SPANS_KEY] = join_parts([("<s>", True), ("ab", False), ("<s>", True)])
    map_plain(doc, str.upper)
    assert doc.text == "<s>AB<s>" and doc.metadata[SPANS_KEY] == [[0, 3], [5, 8]]
    assert segments(Document("", "e")) == [("", False)]


@pytest.mark.parametrize("fmt", ["jsonl.gz", "parquet"])
def test_pack_of_a_curation_output_writes_the_separator_ids(tmp_path, tiny_checkpoint, tok, fmt):
    """Curation outputs nest metadata (Parquet as a JSON string); pack still finds the spans."""
    from codelm.data.executors.shard_io import write_docs
    from codelm.data.pack import pack
    from codelm.train.shards import ShardReader

    (tmp_path / "in").mkdir()
    write_docs([packed_repo()], tmp_path / "in" / f"repos.{fmt}", fmt)
    out = pack([tmp_path / "in"], tiny_checkpoint("llama"), tmp_path / "shards")
    ids = ShardReader(out).document(0).tolist()
    assert ids.count(tok.convert_tokens_to_ids("<file_sep>")) == 2
    assert tok.decode(ids) == packed_repo().text
