"""Document: JSON round trip and the errors of a malformed record."""

import json

import pytest

from codelm.data import DataError, Document


def test_round_trip_through_json():
    d = Document("print(1)\n", "r/a.py", "r", "a.py", "python", {"stars": 3, "tags": ["x"]})
    back = Document.from_dict(json.loads(json.dumps(d.to_dict())))
    assert back == d


def test_unknown_keys_go_to_metadata():
    d = Document.from_dict({"text": "x", "id": 7, "stars": 5, "metadata": {"a": 1}})
    assert d.id == "7"
    assert d.metadata == {"a": 1, "stars": 5}


@pytest.mark.parametrize("record", [{"id": "a"}, {"text": 3, "id": "a"}, {"text": "x"}])
def test_malformed_records_raise_a_clear_error(record):
    with pytest.raises(DataError, match="record has no"):
        Document.from_dict(record)
