"""FIM on the fly: the family's sentinels and order, character-level splits, never across documents."""

from __future__ import annotations

import numpy as np
import pytest

from codelm.errors import UnsupportedFeatureError
from codelm.models import get_family
from codelm.models.formats import render_fim
from codelm.train.fim import FimTransform, chunk_text, line_split_points

TEXT = "import os\n\n\ndef walk(root):\n    for d, _, files in os.walk(root):\n        yield d, files\n"


def transform(tokenizer_of, family, rate=1.0, spm=None, max_tokens=2048, line=0.0):
    tok = tokenizer_of(family)
    return tok, FimTransform(get_family(family), tok, rate, spm, line, max_tokens=max_tokens)


@pytest.mark.parametrize("family", ["llama", "codegemma", "stablecode", "seedcoder"])
def test_fim_example_is_the_engines_infill_prompt_plus_middle(tokenizer_of, family):
    tok, fim = transform(tokenizer_of, family)
    fam = get_family(family)
    ids = np.asarray(tok(TEXT, add_special_tokens=False)["input_ids"])
    cuts = [(a, b) for a in range(len(TEXT) + 1) for b in range(a, len(TEXT) + 1)]
    for seed in range(5):
        rng = np.random.default_rng(seed)
        (piece,) = fim(ids, rng)
        assert piece.eos  # the model learns to stop after the middle
        text = tok.decode(piece.ids)
        # a character-level split of this document only, laid out as the engine's infill prompt
        # (the family's order) followed by the middle
        split = [(a, b) for a, b in cuts if render_fim(fam, TEXT[:a], TEXT[b:]) + TEXT[a:b] == text]
        assert split, text


def test_llama_family_trains_and_infills_the_fim_papers_spm(tokenizer_of):
    tok, fim = transform(tokenizer_of, "llama")
    ids = np.asarray(tok(TEXT, add_special_tokens=False)["input_ids"])
    (piece,) = fim(ids, np.random.default_rng(0))
    text = tok.decode(piece.ids)
    assert text.startswith("<fim_prefix><fim_suffix>")
    suffix, rest = text.removeprefix("<fim_prefix><fim_suffix>").split("<fim_middle>")
    assert rest + suffix == TEXT  # prefix and middle are one run of the document's text


def test_spm_share_for_a_psm_family_uses_the_fim_papers_variant(tokenizer_of):
    tok, fim = transform(tokenizer_of, "stablecode", spm=1.0)
    ids = np.asarray(tok(TEXT, add_special_tokens=False)["input_ids"])
    (piece,) = fim(ids, np.random.default_rng(0))
    text = tok.decode(piece.ids)
    assert text.startswith("<fim_prefix><fim_suffix>")
    suffix, rest = text.removeprefix("<fim_prefix><fim_suffix>").split("<fim_middle>")
    assert rest + suffix == TEXT


def test_rate_and_determinism(tokenizer_of):
    tok, fim = transform(tokenizer_of, "llama", rate=0.5)
    ids = np.asarray(tok(TEXT, add_special_tokens=False)["input_ids"])
    draws = [fim(ids, np.random.default_rng([0, 0, i]))[0].ids for i in range(400)]
    share = sum(d[0] == fim.pre for d in draws) / len(draws)
    assert 0.4 < share < 0.6
    again = [fim(ids, np.random.default_rng([0, 0, i]))[0].ids for i in range(400)]
    assert draws == again  # a resumed run re-draws the same splits
    plain = [d for d in draws if d[0] != fim.pre][0]
    assert plain == ids.tolist()  # no FIM: the stored tokens, untouched


def test_long_documents_are_chunked_at_line_ends(tokenizer_of):
    tok, fim = transform(tokenizer_of, "llama", rate=1.0, max_tokens=16)
    text = TEXT * 4
    ids = np.asarray(tok(text, add_special_tokens=False)["input_ids"])
    pieces = fim(ids, np.random.default_rng(0))
    assert len(pieces) > 2 and all(p.eos for p in pieces)
    assert all(p.ids[0] == fim.pre and p.ids.count(fim.mid) == 1 for p in pieces)
    assert chunk_text("ab\ncd\nef", 4) == ["ab\n", "cd\n", "ef"]
    assert "".join(chunk_text(text, 10)) == text


def test_codegen1_refuses_fim(tokenizer_of):
    with pytest.raises(UnsupportedFeatureError, match="no FIM sentinels"):
        transform(tokenizer_of, "codegen1", rate=0.5)
    tok, fim = transform(tokenizer_of, "codegen1", rate=0.0)
    assert fim(np.arange(5), np.random.default_rng(0))[0].ids == [0, 1, 2, 3, 4]


def test_line_spans_are_whole_non_blank_lines_half_of_them_single():
    lines = TEXT.splitlines(keepends=True)
    starts = {sum(map(len, lines[:i])) for i in range(len(lines) + 1)}
    single = 0
    for seed in range(400):
        a, b = line_split_points(TEXT, np.random.default_rng(seed))
        assert a in starts and b in starts and a < b  # cut at line starts: the middle is whole lines
        middle = TEXT[a:b]
        assert middle.splitlines()[0].strip()  # it starts at a non-blank line
        single += middle.count("\n") == 1
    assert 0.45 < single / 400 < 0.75  # half are single lines, plus multi-line draws of one line
    assert line_split_points("\n  \n", np.random.default_rng(0)) is None
    assert line_split_points("x = 1", np.random.default_rng(0)) == (0, 5)  # no final newline


def test_line_rate_makes_line_middles(tokenizer_of):
    tok, mixed = transform(tokenizer_of, "llama", rate=1.0, line=0.5)
    _, lines = transform(tokenizer_of, "llama", rate=1.0, line=1.0)
    ids = np.asarray(tok(TEXT, add_special_tokens=False)["input_ids"])

    def middles(fim):
        out = []
        for i in range(200):
            text = tok.decode(fim(ids, np.random.default_rng([1, i]))[0].ids)
            out.append(text.split("<fim_middle>")[1] if "<fim_middle>" in text else text)
        return out

    whole = middles(lines)
    assert all(m.endswith("\n") and TEXT.count(m) >= 1 for m in whole)
    assert all(TEXT.startswith(m) or "\n" + m in TEXT for m in whole)  # starts at a line start
    share = sum(m.endswith("\n") for m in middles(mixed)) / 200
    assert 0.4 < share < 0.8  # line middles plus character middles that happen to end a line
    with pytest.raises(Exception, match="line share"):
        transform(tokenizer_of, "llama", line=1.5)


SENTINEL_TEXT = "<fim_prefix><fim_suffix><fim_middle><|fim_begin|><|fim_hole|><|fim_end|><|endoftext|><s></s>"
ODD = ["é", "中文", "😀", "\u0300", "\u2028", "\u00a0", "\r\n", "\t\t", "   ", "\n\n\n", "'s", "123456"]
ODD.append(SENTINEL_TEXT)


def random_documents(n, seed):
    """Stdlib-like code with unicode, whitespace runs and spelled-out sentinels mixed in."""
    from codelm.models.tiny import stdlib_sources

    lines = "".join(stdlib_sources(60_000)).splitlines(keepends=True)
    rng = np.random.default_rng(seed)
    docs = []
    for _ in range(n):
        start = int(rng.integers(len(lines) - 80))
        parts = lines[start : start + int(rng.integers(1, 80))]
        for _ in range(int(rng.integers(0, 6))):
            at = int(rng.integers(len(parts) + 1))
            parts.insert(at, ODD[int(rng.integers(len(ODD)))])
        docs.append("".join(parts))
    return docs + ["", "\n", "x", SENTINEL_TEXT, "é\n中\n😀"]


FAMILIES = ["llama", "codegemma", "stablecode", "seedcoder"]


@pytest.mark.parametrize("family", FAMILIES)
def test_fast_codec_gives_the_wrappers_ids_on_random_documents(tokenizer_of, family):
    """The Rust-direct path (FastCodec) against the straightforward transformers calls: same pieces
    for random documents, cut points, orders, line spans and chunking, sentinel text included."""
    same_pieces(tokenizer_of, family, 8)


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_fast_codec_gives_the_wrappers_ids_on_many_random_documents(tokenizer_of, family):
    same_pieces(tokenizer_of, family, 150)


def same_pieces(tokenizer_of, family, n):
    tok = tokenizer_of(family)
    fam = get_family(family)
    for max_tokens in (2048, 48):
        fast = FimTransform(fam, tok, 0.7, 0.5, 0.3, max_tokens=max_tokens)
        slow = FimTransform(fam, tok, 0.7, 0.5, 0.3, max_tokens=max_tokens)
        slow.codec = None
        assert fast.codec is not None  # the tiny tokenizers qualify for the fast path
        for i, text in enumerate(random_documents(n, seed=max_tokens)):
            # stored ids with sentinel text as control ids (no split) and as text (split)
            for split in (False, True):
                ids = np.asarray(tok(text, add_special_tokens=False, split_special_tokens=split)["input_ids"])
                a = fast(ids, np.random.default_rng([7, i]))
                b = slow(ids, np.random.default_rng([7, i]))
                assert [(p.ids, p.eos) for p in a] == [(p.ids, p.eos) for p in b]
        assert fast.codec.encode(ODD) == slow._encode(ODD)


def test_fast_codec_is_refused_where_it_cannot_be_shown_equal(tokenizer_of):
    from codelm.train.fim import FastCodec

    assert FastCodec.of(tokenizer_of("codegen1")) is None  # CodeGenTokenizer overrides decode
    tok = tokenizer_of("llama")
    assert FastCodec.of(tok) is not None
    tok.clean_up_tokenization_spaces = True
    try:
        assert FastCodec.of(tok) is None  # decoding would differ by the clean-up
    finally:
        tok.clean_up_tokenization_spaces = False
