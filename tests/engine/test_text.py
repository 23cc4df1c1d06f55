import random
import re
import time
import tracemalloc

import pytest
from transformers import AutoTokenizer

from codelm.engine.text import IncrementalDecoder, StopMatcher


def feed_all(matcher, pieces):
    out, hit = "", False
    for p in pieces:
        emitted, hit = matcher.feed(p)
        out += emitted
        if hit:
            break
    if not hit:
        out += matcher.flush()
    return out, hit


def test_stop_string_split_across_pieces_is_never_emitted():
    out, hit = feed_all(StopMatcher(["<|fim_middle|>"]), ["x = 1<|fim", "_mid", "dle|>junk"])
    assert (out, hit) == ("x = 1", True)


def test_partial_prefix_that_turns_out_not_a_stop_is_released():
    m = StopMatcher(["\n\n"])
    assert m.feed("a\n") == ("a", False)
    assert m.feed("b") == ("\nb", False)


def test_overlapping_prefixes():
    out, hit = feed_all(StopMatcher(["aab"]), ["a", "a", "a", "b", "c"])
    assert (out, hit) == ("a", True)


def test_no_stop_flushes_everything():
    assert feed_all(StopMatcher(["STOP"]), ["ST", "OR", "Y"]) == ("STORY", False)


def test_incremental_decoder_matches_full_decode(tiny_checkpoint):
    tok = AutoTokenizer.from_pretrained(tiny_checkpoint("llama"))
    text = "def f(x):\n    return 'héllo wörld ✓'  # 日本語\n"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    dec = IncrementalDecoder(tok, context_ids=tok("prompt", add_special_tokens=False)["input_ids"])
    assert "".join(dec.push(i) for i in ids) == text


def test_codegen_truncation_while_streaming_matches_post_hoc():
    from codelm.engine.text import CodegenTruncatingMatcher
    from codelm.models.codegen_truncate import codegen_truncate

    patterns = [r"\n\n^#", "^'''", "\n\n\n"]
    text = "    x = 1\n    return x\n\n\n# test\nprint(f())\n"
    m = CodegenTruncatingMatcher([], patterns)
    out, hit = "", False
    for ch in text:  # one character at a time: the worst case for hold-back
        piece, hit = m.feed(ch)
        out += piece
        if hit:
            break
    assert hit and out == codegen_truncate(text, patterns) == "    x = 1\n    return x"


def test_codegen_truncation_streaming_holds_only_the_last_line():
    from codelm.engine.text import CodegenTruncatingMatcher

    m = CodegenTruncatingMatcher([], ["^'''"])
    assert m.feed("a = 1\nb = ") == ("a = 1", False)
    assert m.feed("2\n") == ("\nb = 2", False)
    assert m.feed("'''doc") == ("\n", True)  # a line starting with ''' ends the sample before it
    m2 = CodegenTruncatingMatcher([], ["ZZZ"])
    for piece in ["print(1)\n", "x\n", "print(2)\n"]:
        m2.feed(piece)
    assert m2.flush() == "" and m2.text.startswith("print(1)\nx\n")


# -- stop strings: exact hold-back semantics, linear memory, many strings ------------------------
def reference_steps(stops, pieces):
    """What a stop matcher must emit per piece: everything but the longest tail that is a proper
    prefix of a stop, cut before the earliest whole stop (brute force over every prefix)."""
    stops = [s for s in stops if s]
    pending, steps = "", []
    for p in pieces:
        pending += p
        starts = [i for i in (pending.find(s) for s in stops) if i >= 0]
        if starts:
            return [*steps, (pending[: min(starts)], True)]
        hold = max((k for s in stops for k in range(1, len(s)) if pending.endswith(s[:k])), default=0)
        steps.append((pending[: len(pending) - hold], False))
        pending = pending[len(pending) - hold :]
    return [*steps, (pending, None)]


def matcher_steps(stops, pieces):
    m, steps = StopMatcher(stops), []
    for p in pieces:
        steps.append(m.feed(p))
        if steps[-1][1]:
            return steps
    return [*steps, (m.flush(), None)]


def test_stop_matcher_agrees_with_brute_force_on_random_streams():
    rng = random.Random(0)
    for case in range(3000):
        alphabet = "ab" if case % 2 else "abc"  # small alphabets: many overlaps and borders
        stops = ["".join(rng.choices(alphabet, k=rng.randint(1, 7))) for _ in range(rng.randint(0, 4))]
        text = "".join(rng.choices(alphabet + "x", k=rng.randint(0, 30)))
        cuts = sorted(rng.sample(range(len(text) + 1), k=min(len(text) + 1, rng.randint(0, 8))))
        pieces = [text[i:j] for i, j in zip([0, *cuts], [*cuts, len(text)], strict=True)]
        assert matcher_steps(stops, pieces) == reference_steps(stops, pieces), (stops, pieces)


def _peak_bytes(fn) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("length", [30_000, 1_000_000])
def test_long_stop_string_memory_is_linear_and_shared_by_samples(length):
    # the worst case for hold-back: the output keeps matching the stop's start
    stop = "ab" * (length // 2) + "!"
    text = "ab" * 5_000

    def run():
        matchers = [StopMatcher([stop]) for _ in range(8)]  # n = 8 samples
        for m in matchers:
            for i in range(0, len(text), 7):
                assert m.feed(text[i : i + 7]) == ("", False)  # all of it could still become the stop
        assert matchers[0].pending == text

    # the stop string itself is the caller's; the matcher adds a 4-byte table entry per character
    # once, and the held-back text per sample (the old one kept every prefix: 440 MB for 30 KB)
    assert _peak_bytes(run) < 5 * length + 8 * 4 * len(text) + 2_000_000


def test_ten_thousand_stop_strings_stay_cheap():
    rng = random.Random(1)
    stops = [
        "".join(rng.choices("abcdefghijklmnopqrstuvwxyz_():= \n", k=rng.randint(2, 20)))
        for _ in range(10_000)
    ]
    pieces = ["def", " fib", "(n", "):\n", "   ", " return", " n", " if", " n", " <", " 2", " else"] * 20

    def run():
        m = StopMatcher(stops)
        for p in pieces:
            if m.feed(p)[1]:
                break

    assert _peak_bytes(run) < 20_000_000
    start = time.perf_counter()
    run()
    per_piece = (time.perf_counter() - start) / len(pieces)
    assert per_piece < 0.02, f"{per_piece * 1000:.1f} ms per streamed piece"  # ~0.1 ms here


def test_samples_share_one_prepared_stop_set():
    a, b = StopMatcher(["<|end|>", "\n\n"]), StopMatcher(["<|end|>", "\n\n"])
    assert a._set is b._set
    a.feed("x<|en")
    assert b.feed("y") == ("y", False)  # per-sample state stays per sample


@pytest.mark.parametrize(
    ("stop", "words"),
    [
        (["s"] * 65, "stop has 65 strings; at most 64 are allowed"),
        (["x" * 1_000_000], "a stop string has 1000000 characters; at most 1024 are allowed"),
        ([f"s{i}" for i in range(10_000)], "stop has 10000 strings; at most 64 are allowed"),
    ],
)
def test_engine_refuses_too_many_or_too_long_stop_strings(stop, words):
    from codelm.engine.params import SamplingParams
    from codelm.errors import CodelmError

    with pytest.raises(CodelmError, match=re.escape(words)):
        SamplingParams(stop=stop)
    assert SamplingParams(stop=["s"] * 64, n=2).stop == ("s",) * 64
