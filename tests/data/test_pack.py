"""`codelm data pack`: documents -> training shards, with per-document FIM in the family's format."""

import gzip
import json

import numpy as np
import pytest
from transformers import AutoTokenizer

from codelm.cli import main
from codelm.data.document import DataError
from codelm.data.pack import PackConfig, pack
from codelm.train.shards import ShardReader, read_index

TEXTS = [
    "def add(a, b):\n    return a + b\n",
    "import os\n\n\ndef walk(root):\n    for d, _, fs in os.walk(root):\n        yield from fs\n",
    'SECRET = "<fim_middle> is only text here"\n',
    "class Stack:\n    def __init__(self):\n        self.items = []\n",
]


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "docs.jsonl.gz"
    with gzip.open(path, "wt") as f:
        for i, t in enumerate(TEXTS):
            f.write(json.dumps({"id": f"d{i}", "text": t}) + "\n")
        f.write("{not json\n")
    return path


def test_plain_pack_round_trips_every_document(corpus, tmp_path, tiny_checkpoint):
    tok_dir = tiny_checkpoint("llama")
    out = pack([corpus], tok_dir, tmp_path / "shards")
    index = read_index(out)
    assert index["fim_applied"] is False and index["stats"]["documents"] == len(TEXTS)
    assert index["lineage"]["pack"]["dropped"] == {"invalid_json": 1}
    tok = AutoTokenizer.from_pretrained(tok_dir)
    reader = ShardReader(out)
    assert [tok.decode(reader.document(i).tolist()) for i in range(len(reader))] == TEXTS
    # the literal sentinel text stays text: no control token inside a document
    assert tok.convert_tokens_to_ids("<fim_middle>") not in reader.document(2).tolist()


@pytest.mark.parametrize(
    ("family", "spm_rate", "first"), [("llama", 0.0, "<fim_prefix>"), ("seedcoder", None, "<[fim-suffix]>")]
)
def test_fim_pieces_are_the_family_format_and_restore_the_document(
    corpus, tmp_path, tiny_checkpoint, family, spm_rate, first
):
    tok_dir = tiny_checkpoint(family)
    out = pack([corpus], tok_dir, tmp_path / "shards", fim_rate=1.0, fim_spm_rate=spm_rate, seed=3)
    assert read_index(out)["fim_applied"] is True
    tok = AutoTokenizer.from_pretrained(tok_dir)
    reader = ShardReader(out)
    pre, suf, mid = (
        (tok.convert_tokens_to_ids(t) for t in ("<fim_prefix>", "<fim_suffix>", "<fim_middle>"))
        if family == "llama"
        else (tok.convert_tokens_to_ids(t) for t in ("<[fim-prefix]>", "<[fim-suffix]>", "<[fim-middle]>"))
    )
    for i, text in enumerate(TEXTS):
        ids = reader.document(i).tolist()
        assert ids[0] == tok.convert_tokens_to_ids(first)
        cut = {t: ids.index(t) for t in (pre, suf, mid)}
        if family == "llama":  # PSM: <pre> P <suf> S <mid> M
            p, s, m = ids[cut[pre] + 1 : cut[suf]], ids[cut[suf] + 1 : cut[mid]], ids[cut[mid] + 1 :]
        else:  # Seed-Coder SPM: <suf> S <pre> P <mid> M
            s, p, m = ids[cut[suf] + 1 : cut[pre]], ids[cut[pre] + 1 : cut[mid]], ids[cut[mid] + 1 :]
        assert tok.decode(p) + tok.decode(m) + tok.decode(s) == text


def test_line_rate_cuts_whole_lines_and_is_recorded(corpus, tmp_path, tiny_checkpoint):
    tok_dir = tiny_checkpoint("llama")
    out = pack([corpus], tok_dir, tmp_path / "shards", fim_rate=1.0, fim_line_rate=1.0, seed=3)
    assert read_index(out)["lineage"]["fim_line_rate"] == 1.0
    tok = AutoTokenizer.from_pretrained(tok_dir)
    mid = tok.convert_tokens_to_ids("<fim_middle>")
    for i, text in enumerate(TEXTS):
        ids = ShardReader(out).document(i).tolist()
        middle = tok.decode(ids[ids.index(mid) + 1 :])
        assert middle.strip() and (text.startswith(middle) or "\n" + middle in text)  # from a line start
        assert middle.endswith("\n") or text.endswith(middle)  # to a line end
    with pytest.raises(DataError, match="fim_line_rate must be in"):
        PackConfig(fim_rate=0.5, fim_line_rate=1.5)


def test_pack_is_deterministic_and_refuses_to_clobber(corpus, tmp_path, tiny_checkpoint):
    tok_dir = tiny_checkpoint("codegemma")
    a = pack([corpus], tok_dir, tmp_path / "a", fim_rate=0.5, seed=1)
    b = pack([corpus], tok_dir, tmp_path / "b", fim_rate=0.5, seed=1)
    for name in ("shard-00000.tokens", "shard-00000.offsets"):
        assert np.array_equal(np.fromfile(a / name, np.uint8), np.fromfile(b / name, np.uint8))
    with pytest.raises(DataError, match="already holds packed shards"):
        pack([corpus], tok_dir, a)
    pack([corpus], tok_dir, a, overwrite=True)


def test_fim_needs_a_family_and_codegen1_has_none(corpus, tmp_path, tiny_checkpoint):
    from codelm.errors import UnsupportedFeatureError

    with pytest.raises(UnsupportedFeatureError, match="codegen1 has no FIM sentinels"):
        pack([corpus], tiny_checkpoint("codegen1"), tmp_path / "x", fim_rate=0.5)
    with pytest.raises(DataError, match="neither a directory nor"):
        pack([tmp_path / "nothing-here"], tiny_checkpoint("llama"), tmp_path / "y")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no .jsonl"):
        pack([tmp_path / "empty"], tiny_checkpoint("llama"), tmp_path / "y")


def test_cli_pack_of_a_curation_output_dir(tmp_path, tiny_checkpoint, capsys):
    cur = tmp_path / "cur"
    (cur / "data").mkdir(parents=True)
    (cur / "stats.json").write_text(json.dumps({"steps": []}))
    with gzip.open(cur / "data" / "shard-00000.jsonl.gz", "wt") as f:
        for i, t in enumerate(TEXTS):
            f.write(json.dumps({"id": f"d{i}", "text": t}) + "\n")
    code = main(
        [
            "data",
            "pack",
            str(cur),
            "--tokenizer",
            str(tiny_checkpoint("stablecode")),
            "--out",
            str(tmp_path / "s"),
            "--fim-rate",
            "0.5",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0 and "4 documents" in out
    assert read_index(tmp_path / "s")["lineage"]["curation"][str(cur)] == {"steps": []}


def test_missing_tokenizer_is_a_one_line_error(corpus, tmp_path, capsys):
    with pytest.raises(DataError, match="no such directory"):
        pack([corpus], tmp_path / "missing", tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no tokenizer files"):
        pack([corpus], tmp_path / "empty", tmp_path / "out")
    code = main(["data", "pack", str(corpus), "--tokenizer", "/missing", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 1 and err == "codelm: error: --tokenizer /missing: no such directory\n"
    assert not (tmp_path / "out").exists()


def test_tokenizer_lacking_the_family_fim_sentinels_writes_nothing(corpus, tmp_path, tiny_checkpoint, capsys):
    """The llama tokenizer has no unk token, so the missing Seed-Coder sentinels once read as None,
    passed the check and crashed mid-pack, leaving a partial shard behind."""
    out = tmp_path / "out"
    args = ["data", "pack", str(corpus), "--tokenizer", str(tiny_checkpoint("llama")), "--out", str(out)]
    code = main([*args, "--family", "seedcoder", "--fim-rate", "0.5"])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1
    assert "lacks seedcoder's FIM sentinels <[fim-prefix]>, <[fim-suffix]>, <[fim-middle]>" in err
    assert list(tmp_path.iterdir()) == [corpus]  # neither OUT nor a partial directory


def test_a_pack_that_fails_midway_leaves_no_partial_shards(corpus, tmp_path, tiny_checkpoint, monkeypatch):
    from codelm.train import shards

    tok_dir, out = tiny_checkpoint("llama"), tmp_path / "out"
    pack([corpus], tok_dir, out)
    before = (out / "index.json").read_text()
    real_add, calls = shards.ShardWriter.add, []

    def add_until_the_disk_fills(self, ids):
        calls.append(1)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        real_add(self, ids)

    monkeypatch.setattr(shards.ShardWriter, "add", add_until_the_disk_fills)
    with pytest.raises(OSError, match="No space left"):
        pack([corpus], tok_dir, out, overwrite=True)
    assert (out / "index.json").read_text() == before  # the finished pack survives its failed successor
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([corpus.name, "out"])
    calls.clear()
    with pytest.raises(OSError, match="No space left"):
        pack([corpus], tok_dir, tmp_path / "fresh")
    assert not (tmp_path / "fresh").exists() and not (tmp_path / ".fresh.partial").exists()


def test_out_holding_other_files_is_refused_before_any_work(corpus, tmp_path, tiny_checkpoint):
    out = tmp_path / "notes"
    out.mkdir()
    (out / "todo.txt").write_text("keep me")
    with pytest.raises(DataError, match="holds other files than packed shards"):
        pack([corpus], tiny_checkpoint("llama"), out, overwrite=True)
    assert (out / "todo.txt").read_text() == "keep me"
