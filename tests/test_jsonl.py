"""The one JSONL reader and writer (codelm/jsonl.py): what it reads, and a one-line CodelmError
naming the file and line for everything a user can hand it broken."""

from __future__ import annotations

import gzip
import json

import pytest

from codelm.errors import CodelmError
from codelm.jsonl import iter_records, numbered_records, read_records, write_records

RECORDS = [{"text": "def f():\n    return 'é中😀'\n"}, {"x": 1}, [1, 2], "plain"]


def test_round_trip_through_every_file_kind(tmp_path):
    plain = tmp_path / "a" / "r.jsonl"
    assert write_records(iter(RECORDS), plain) == 4  # parent folders are made
    assert read_records(plain) == RECORDS
    assert "é中😀" in plain.read_text(encoding="utf-8")  # written as UTF-8, not \\u escapes
    zipped = tmp_path / "r.jsonl.gz"
    zipped.write_bytes(gzip.compress(plain.read_bytes()))
    assert read_records(zipped) == RECORDS
    listed = tmp_path / "r.json"
    listed.write_text(json.dumps(RECORDS))
    assert read_records(listed) == RECORDS
    (tmp_path / "r.json.gz").write_bytes(gzip.compress(listed.read_bytes()))
    assert read_records(tmp_path / "r.json.gz") == RECORDS


def test_blank_lines_are_skipped_and_line_numbers_kept(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text('\n{"a": 1}\n   \n{"a": 2}\r\n\n')
    assert list(numbered_records(path)) == [(2, {"a": 1}), (4, {"a": 2})]
    assert list(iter_records(path)) == [{"a": 1}, {"a": 2}]
    path.write_text("")
    assert read_records(path) == []


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("bad.jsonl", b'{"a": 1}\n{"a": \n', r"bad.jsonl:2: not valid JSON \(Expecting value\)"),
        ("bad.jsonl", b'{"a": 1}\n\xff\xfe\n', "bad.jsonl: not UTF-8 text"),
        ("bad.jsonl.gz", gzip.compress(b'{"a": 1}\n' * 1000)[:-40], "bad.jsonl.gz: damaged gzip data"),
        ("bad.jsonl.gz", b"not gzip at all", "cannot read .*bad.jsonl.gz"),
        ("bad.json", b'{"a": 1}', "bad.json: expected a JSON list of records"),
        ("bad.json", b"[1, 2", r"bad.json: not valid JSON \(.* at line 1\)"),
    ],
)
def test_broken_files_are_one_line_errors(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(CodelmError, match=message) as info:
        read_records(path)
    assert "\n" not in str(info.value)


def test_a_missing_file_or_a_directory_is_a_one_line_error(tmp_path):
    with pytest.raises(CodelmError, match="cannot read .*missing.jsonl: "):
        read_records(tmp_path / "missing.jsonl")
    with pytest.raises(CodelmError, match=f"cannot read {tmp_path}: "):
        read_records(tmp_path)


def test_records_before_a_bad_line_are_yielded_first(tmp_path):
    """A reader that streams (tokenizer corpora, data shards) sees the good records, then the error."""
    path = tmp_path / "r.jsonl"
    path.write_text('{"a": 1}\n{"a": 2}\nnot json\n')
    records = iter_records(path)
    assert next(records) == {"a": 1} and next(records) == {"a": 2}
    with pytest.raises(CodelmError, match="r.jsonl:3"):
        next(records)
